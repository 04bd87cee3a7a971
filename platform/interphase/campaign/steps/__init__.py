"""The steps of one iteration, one module each: ``run(ctx, inputs) -> Outputs``.

Each step declares its ``Outputs`` (a typed model, see :mod:`.contract`) and its
``Inputs`` (the outputs of earlier steps it reads); :mod:`interphase.campaign.loop`
lists the steps in order and what each reads. A step reads what it needs,
computes outside any write transaction (engines, fits and training take
minutes), then stores its outputs and its own completion in one transaction
(:func:`interphase.campaign.records.complete_step`).
"""
