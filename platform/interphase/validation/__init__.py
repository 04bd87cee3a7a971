"""Validated potentials: each head's properties against its own reference level.

:mod:`~interphase.validation.crystal` and :mod:`~interphase.validation.molecular`
compute properties with any ASE calculator; :mod:`~interphase.validation.suites`
groups them into suites with tolerances; :mod:`~interphase.validation.run`
runs a suite on a model head and on the head's reference level (cached in the
database) and records the checks; ``interphase validate`` and the campaign's
``validation:`` section call it.
"""
