"""train_multihead on a tiny mixed dataset: overfitting, determinism, checkpoint and resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from interphase.models.multihead import evaluate_structure
from interphase.training.checkpoint import CheckpointError
from interphase.training.dataset import TrainingDataError
from interphase.training.settings import (
    TrainingSettings,
    TrainingSettingsError,
    load_training_settings,
)
from interphase.training.trainer import (
    EpochReport,
    TrainingCallbacks,
    load_model,
    save_model,
    train_multihead,
)
from tests.training.labeled import MOLECULAR_LEVEL, SHARED_LEVEL, mixed_dataset

ROOT = Path(__file__).parents[2]
SMALL = {"model": {"hidden_sizes": [16], "charge_hidden_sizes": [8]}}


def settings(**overrides: object) -> TrainingSettings:
    return TrainingSettings.model_validate({**SMALL, **overrides})


@pytest.mark.slow
def test_tiny_model_overfits_a_tiny_mixed_dataset() -> None:
    """Molecules at two levels with charges plus periodic Li cells at one level."""
    examples = list(mixed_dataset())
    config = TrainingSettings.model_validate(
        {
            "epochs": 250,
            "batch_size": 11,
            "learning_rate": 1e-2,
            "schedule": "constant",
            "gradient_clip_norm": None,
            "validation_fraction": 0.0,
            "model": {"hidden_sizes": [32, 32], "charge_hidden_sizes": [16]},
            "loss": {"charge_weight": 1.0},
        }
    )
    result = train_multihead(examples, settings=config)
    history = result.loss_history
    assert history[-1] < history[0] / 1000  # orders of magnitude
    final = result.final["train"]
    assert final.charge_rmse_e is not None and final.charge_rmse_e < 0.02
    for head in (MOLECULAR_LEVEL, SHARED_LEVEL):
        metrics = final.heads[head]
        assert metrics.energy_mae_mev_per_atom is not None
        assert metrics.energy_mae_mev_per_atom < 10
        assert metrics.force_mae_mev_per_angstrom is not None
        assert metrics.force_mae_mev_per_angstrom < 20
    assert final.heads[SHARED_LEVEL].n_energies == len(examples)
    assert final.heads[MOLECULAR_LEVEL].n_energies == 8  # periodic cells lack it
    assert "validation" not in result.final


def test_same_seed_same_result_and_a_validation_split() -> None:
    config = settings(epochs=3, batch_size=4, validation_fraction=0.25)
    first = train_multihead(list(mixed_dataset()), settings=config)
    second = train_multihead(list(mixed_dataset()), settings=config)
    assert first.loss_history == second.loss_history
    np.testing.assert_array_equal(first.validation_indices, second.validation_indices)
    assert len(first.validation_indices) == 3 and len(first.train_indices) == 8
    assert first.final["validation"].heads[SHARED_LEVEL].n_energies == 3
    # The same operations replayed in one process: equal to float64 round-off (the
    # tolerance only guards against thread-count dependent reductions).
    for a, b in zip(first.model.parameters(), second.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def _trained_state(result) -> list[torch.Tensor]:  # type: ignore[no-untyped-def]
    return [p.detach().clone() for p in result.model.parameters()]


def test_resume_continues_the_interrupted_run_exactly(tmp_path: Path) -> None:
    examples = list(mixed_dataset())
    config = settings(epochs=4, batch_size=4, validation_fraction=0.2)
    straight = train_multihead(examples, settings=config)

    def interrupt(report: EpochReport) -> None:
        if report.epoch == 2:
            raise KeyboardInterrupt

    checkpoint = tmp_path / "checkpoint.pt"
    with pytest.raises(KeyboardInterrupt):
        train_multihead(
            examples,
            settings=config,
            callbacks=TrainingCallbacks(on_epoch=interrupt),
            checkpoint_path=checkpoint,
        )
    epochs: list[int] = []
    resumed = train_multihead(
        examples,
        settings=config,
        callbacks=TrainingCallbacks(on_epoch=lambda r: epochs.append(r.epoch)),
        checkpoint_path=checkpoint,
        resume=True,
    )
    assert epochs == [3, 4]  # the epoch counter continues
    assert resumed.loss_history == straight.loss_history  # same batches, optimiser state
    assert resumed.best_epoch == straight.best_epoch
    # A resume replays the same batches from the checkpoint: equal to round-off.
    for a, b in zip(_trained_state(resumed), _trained_state(straight), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    # A checkpoint belongs to its data: other structures are refused.
    with pytest.raises(CheckpointError, match="different training data"):
        train_multihead(examples[:-1], settings=config, checkpoint_path=checkpoint, resume=True)
    with pytest.raises(CheckpointError, match="does not exist"):
        train_multihead(
            examples, settings=config, checkpoint_path=tmp_path / "none.pt", resume=True
        )


def test_best_model_saved_and_loaded_predicts_identically(tmp_path: Path) -> None:
    examples = list(mixed_dataset())
    result = train_multihead(examples, settings=settings(epochs=2, validation_fraction=0.2))
    path = save_model(result, tmp_path / "model.pt")
    loaded = load_model(path)
    assert loaded.heads == [SHARED_LEVEL, MOLECULAR_LEVEL] and loaded.species == [1, 3, 8]
    for example in (examples[0], examples[-1]):  # a molecule and a periodic cell
        for head in loaded.heads:
            args = (example.numbers, example.positions_angstrom, example.cell_angstrom, example.pbc)
            a = evaluate_structure(result.model, *args, head)
            b = evaluate_structure(loaded, *args, head)
            assert a.energy_hartree == b.energy_hartree
            np.testing.assert_array_equal(
                a.gradient_hartree_per_angstrom, b.gradient_hartree_per_angstrom
            )


def test_energy_only_mode_trains_without_force_terms() -> None:
    result = train_multihead(
        list(mixed_dataset()), settings=settings(mode="energy_only", epochs=2, batch_size=6)
    )
    train = result.history[-1]["train"]["heads"][SHARED_LEVEL]
    assert train["n_energies"] > 0 and train["n_forces"] == 0
    # Forces are still evaluated on the final model (parity and metrics).
    assert result.final["train"].heads[SHARED_LEVEL].force_mae_mev_per_angstrom is not None


def test_bad_inputs_are_named() -> None:
    examples = list(mixed_dataset())
    with pytest.raises(TrainingDataError, match="head 'CCSD' has no energy label"):
        train_multihead(examples, ["CCSD"], settings(epochs=1))
    with pytest.raises(TrainingDataError, match="no training examples"):
        train_multihead([], ["x"], settings(epochs=1))


def test_settings_files_json_toml_and_errors(tmp_path: Path) -> None:
    toml = tmp_path / "train.toml"
    toml.write_text('mode = "energy_only"\nepochs = 5\n[model]\nhidden_sizes = [8]\n')
    loaded = load_training_settings(toml)
    assert loaded.mode == "energy_only" and loaded.model.hidden_sizes == [8]
    assert loaded.uses_synthetic and loaded.batch_size == 128  # paper default
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"epochs": 5, "learning_rat": 0.1}))
    with pytest.raises(TrainingSettingsError, match="learning_rat"):
        load_training_settings(bad)
    bad.write_text(json.dumps({"model": {"radial_cutoff_angstrom": 3.0}}))
    with pytest.raises(TrainingSettingsError, match="angular_cutoff_angstrom"):
        load_training_settings(bad)
    with pytest.raises(TrainingSettingsError, match="does not exist"):
        load_training_settings(tmp_path / "missing.json")
    example = load_training_settings(ROOT / "examples" / "train_small.json")
    assert example.epochs <= 200 and example.model.hidden_sizes == [32, 32]
