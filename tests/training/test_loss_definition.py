"""The reported training and validation losses have one definition.

Both are ``Σ_t w_t · mean_t``: each term's mean squared scaled error over every
label of that term in the split, weighted by the fixed task weights. Batching
must not change it (a batch without a head's labels once dropped that head's
term from the batch, and batches were weighted by their size), and the same
structures seen as training and as validation give the same loss.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import interphase.training.trainer as trainer
from interphase.training.dataset import fit_target_scales, prepare
from interphase.training.evaluate import evaluate_split
from interphase.training.loss import LossWeighting
from interphase.training.settings import LossSettings, TrainingSettings
from interphase.training.trainer import build_model, train_multihead
from tests.training.labeled import MOLECULAR_LEVEL, SHARED_LEVEL, mixed_dataset

HEADS = [SHARED_LEVEL, MOLECULAR_LEVEL]
SMALL = {"model": {"hidden_sizes": [16], "charge_hidden_sizes": [8]}}


def test_the_split_loss_does_not_depend_on_the_batch_size() -> None:
    """Molecules carry both heads and charges, periodic cells one head: batches differ."""
    examples = list(mixed_dataset())
    settings = TrainingSettings.model_validate(SMALL)
    torch.manual_seed(0)
    model = build_model([1, 3, 8], HEADS, settings)
    data = prepare(examples, HEADS, model.pair_cutoff_angstrom)
    everything = np.arange(len(data))
    scales = fit_target_scales(data, everything)
    model.set_energy_reference(scales.self_energy_hartree, scales.energy_hartree)
    weighting = LossWeighting(HEADS, LossSettings(charge_weight=1.0))
    losses = {
        size: evaluate_split(model, data, everything, scales, weighting, batch_size=size).loss
        for size in (1, 2, 4, len(data))
    }
    assert all(loss is not None and loss > 0 for loss in losses.values())
    whole = losses[len(data)]
    for size, loss in losses.items():
        assert loss == pytest.approx(whole, rel=1e-9), (size, losses)


def test_the_same_structures_as_both_splits_give_the_same_loss(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Training and validation on the same 11 structures, learning rate ~0: equal losses.

    The training loss is summed while the epoch trains (in batches of 4, shuffled),
    the validation loss after it (in batches of 4, in order); with the weights kept
    (learning rate 1e-12) the two must agree.
    """

    def both_splits(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        everything = np.arange(n)
        return everything, everything.copy()

    monkeypatch.setattr(trainer, "split_indices", both_splits)
    config = TrainingSettings.model_validate(
        {
            **SMALL,
            "epochs": 2,
            "batch_size": 4,
            "learning_rate": 1e-12,
            "schedule": "constant",
            "validation_fraction": 0.1,
            "loss": {"charge_weight": 1.0},
        }
    )
    result = train_multihead(list(mixed_dataset()), settings=config)
    for report in result.history:
        train: dict[str, Any] = report["train"]
        validation: dict[str, Any] = report["validation"]
        assert train["loss"] == pytest.approx(validation["loss"], rel=1e-6), report["epoch"]
        assert train["n_structures"] == validation["n_structures"] == 11
    final = result.final
    assert final["train"].loss == pytest.approx(final["validation"].loss, rel=1e-9)
