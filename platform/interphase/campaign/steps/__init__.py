"""The steps of one iteration, one module each: ``run(ctx) -> outputs``.

Each step reads what it needs, computes outside any write transaction
(engines, fits and training take minutes), then stores its outputs and its
own completion in one transaction (:func:`interphase.campaign.records.complete_step`).
"""
