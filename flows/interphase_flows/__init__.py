"""Prefect flows of interphase (installed as ``interphase_flows``; the library is ``interphase``).

Call :func:`interphase_flows.runtime.configure_local_prefect` before importing
a flow module: Prefect reads its settings on first import.
"""
