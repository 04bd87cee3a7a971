"""The labeling job queue: claim a job under a lease, run it, record the outcome, retry.

``claim`` starts an attempt, ``run`` executes claimed jobs and drains the queue,
``outcome`` records how an attempt ended, ``lease`` renews and expires leases,
``retry`` decides whether a failure is tried again, ``release`` hands a job back
when its worker stops, ``parallel`` runs several worker processes.
"""
