"""Masked multi-task loss: missing labels give no gradient; weighting; energy-only mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interphase.models.multihead import MultiHeadPotential
from interphase.training.dataset import TrainingExample, fit_target_scales, prepare
from interphase.training.loss import LossWeighting, batch_loss_terms
from interphase.training.settings import LossSettings
from tests.training.labeled import MOLECULAR_LEVEL, SHARED_LEVEL, mixed_dataset

HEADS = [SHARED_LEVEL, MOLECULAR_LEVEL]


def model_and_data(examples: list[TrainingExample]):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = MultiHeadPotential([1, 3, 8], HEADS, (8, 8), charge_hidden_sizes=(8,))
    data = prepare(examples, HEADS, model.pair_cutoff_angstrom)
    scales = fit_target_scales(data, np.arange(len(data)))
    model.set_energy_reference(scales.self_energy_hartree, scales.energy_hartree)
    return model, data, scales


@pytest.mark.parametrize("weighting", ["fixed", "uncertainty"])
def test_a_head_without_labels_in_the_batch_gets_no_gradient(weighting: str) -> None:
    """Periodic Li cells carry only GFN1-xTB: the GFN2-xTB output rows get exactly 0."""
    examples = list(mixed_dataset())
    model, data, scales = model_and_data(examples)
    periodic = np.array([k for k, ex in enumerate(examples) if any(ex.pbc)])
    assert len(periodic) >= 2
    inputs, targets = data.batch(periodic, model, requires_grad=True, device="cpu")
    terms, _ = batch_loss_terms(model, inputs, targets, scales, forces=True, create_graph=True)
    assert set(terms) == {f"energy:{SHARED_LEVEL}", f"force:{SHARED_LEVEL}"}
    loss = LossWeighting(HEADS, LossSettings(weighting=weighting))(terms)  # type: ignore[arg-type]
    loss.backward()
    masked, trained = model.head_index(MOLECULAR_LEVEL), model.head_index(SHARED_LEVEL)
    lithium = model.element_networks[model.species.index(3)]
    for network in model.element_networks:
        assert network.output.weight.grad is not None and network.output.bias.grad is not None
        assert torch.all(network.output.weight.grad[masked] == 0)
        assert network.output.bias.grad[masked] == 0
        assert torch.isfinite(network.output.weight.grad).all()  # NaN targets never leak
    assert torch.any(lithium.output.weight.grad[trained] != 0)
    assert torch.any(lithium.hidden[0].weight.grad != 0)  # shared layers learn


def test_molecules_train_both_heads_and_charges() -> None:
    examples = list(mixed_dataset())
    model, data, scales = model_and_data(examples)
    molecular = np.array([k for k, ex in enumerate(examples) if not any(ex.pbc)])
    inputs, targets = data.batch(molecular[:3], model, requires_grad=True, device="cpu")
    terms, prediction = batch_loss_terms(
        model, inputs, targets, scales, forces=True, create_graph=False
    )
    assert set(terms) == {f"{k}:{h}" for k in ("energy", "force") for h in HEADS} | {"charge"}
    assert all(float(v.detach()) > 0 for v in terms.values())
    assert prediction.gradients is not None and torch.isfinite(prediction.gradients).all()


def test_energy_only_mode_uses_synthetic_energies_and_no_forces() -> None:
    examples = [
        TrainingExample(
            ex.numbers,
            ex.positions_angstrom,
            ex.cell_angstrom,
            ex.pbc,
            energies_hartree=dict(ex.energies_hartree),
            gradients_hartree_per_angstrom=dict(ex.gradients_hartree_per_angstrom),
            synthetic_energies_hartree={SHARED_LEVEL: ex.energies_hartree[SHARED_LEVEL] + 1e-3},
        )
        for ex in mixed_dataset()
    ]
    model, data, scales = model_and_data(examples)
    inputs, targets = data.batch(np.arange(4), model, requires_grad=False, device="cpu")
    terms, prediction = batch_loss_terms(
        model, inputs, targets, scales, forces=False, create_graph=False
    )
    assert f"synthetic:{SHARED_LEVEL}" in terms
    assert not any(name.startswith("force:") for name in terms)
    assert prediction.gradients is None
    fixed = LossWeighting(HEADS, LossSettings(synthetic_weight=0.25, energy_weight=1.0))
    expected = sum(
        (0.25 if name.startswith("synthetic") else 1.0 if name.startswith("energy") else 0.1)
        * float(value.detach())
        for name, value in terms.items()
    )
    assert float(fixed(terms).detach()) == pytest.approx(expected)


def test_uncertainty_weighting_learns_one_log_variance_per_task() -> None:
    weighting = LossWeighting(HEADS, LossSettings(weighting="uncertainty"))
    terms = {f"energy:{SHARED_LEVEL}": torch.tensor(4.0, dtype=torch.float64)}
    loss = weighting(terms)
    assert float(loss.detach()) == pytest.approx(0.5 * 4.0)  # s = 0 at the start
    loss.backward()
    assert weighting.log_variance.grad is not None
    index = weighting.tasks.index(f"energy:{SHARED_LEVEL}")
    assert float(weighting.log_variance.grad[index]) == pytest.approx(-0.5 * 4.0 + 0.5)
    assert np.count_nonzero(weighting.log_variance.grad.numpy()) == 1
