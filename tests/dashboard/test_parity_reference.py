"""The per-element reference energies that parity plots subtract (least squares on counts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from interphase.dashboard.queries.parity import (
    EnergyReference,
    fit_element_energies,
    run_parity,
)
from interphase.db.session import transaction
from interphase.db.structures import store_structures
from interphase.records import StructureRecord
from interphase.training.metrics import write_parity
from interphase.units import HARTREE_TO_MEV
from tests.dashboard.test_parity_pages import LEVEL, collector

#: Per-element energies (eV) of H, C, O and Li.
MU_EV = np.array([-13.6, -1030.0, -2040.0, -202.0])


def compositions(rng: np.random.Generator, n: int) -> np.ndarray:
    """Element counts of ``n`` structures, each with at least one atom."""
    one_atom = np.eye(len(MU_EV), dtype=int)[rng.integers(0, len(MU_EV), n)]
    return rng.integers(0, 12, (n, len(MU_EV))) + one_atom


def test_energies_made_of_element_energies_are_near_zero_relative_to_the_fit() -> None:
    rng = np.random.default_rng(3)
    counts = compositions(rng, 200)
    n_atoms = counts.sum(axis=1)
    noise_ev_per_atom = rng.normal(0.0, 0.002, len(counts))  # 2 meV/atom
    energy_ev = counts @ MU_EV + noise_ev_per_atom * n_atoms
    mu = fit_element_energies(counts, energy_ev)
    assert mu == pytest.approx(MU_EV, abs=0.01)
    relative_mev_per_atom = (energy_ev - counts @ mu) / n_atoms * 1000.0
    assert np.abs(relative_mev_per_atom).max() < 10.0  # within the noise, not tens of eV
    assert np.std(relative_mev_per_atom) == pytest.approx(2.0, rel=0.3)


def test_one_composition_subtracts_the_mean_energy() -> None:
    counts = np.tile([2, 0, 1, 0], (5, 1))  # water only
    energy_ev = np.array([-2067.2, -2067.25, -2067.3, -2067.21, -2067.24])
    mu = fit_element_energies(counts, energy_ev)
    assert counts @ mu == pytest.approx(np.full(5, energy_ev.mean()), abs=1e-9)


def test_elements_in_a_fixed_ratio_still_fit_the_energies() -> None:
    counts = np.array([[2, 0, 1, 0], [4, 0, 2, 0], [6, 0, 3, 0], [8, 0, 4, 0]])  # (H2O)n
    energy_ev = counts @ MU_EV  # μ_H and μ_O are not separable; their sum per H2O is
    mu = fit_element_energies(counts, energy_ev)
    assert counts @ mu == pytest.approx(energy_ev, abs=1e-9)


def test_a_run_of_one_composition_shows_energies_minus_their_mean_per_atom(
    local_env: str, tmp_path: Path
) -> None:
    rng = np.random.default_rng(9)
    records = [
        StructureRecord(
            numbers=np.array([3, 3, 8, 1, 1]), positions_angstrom=rng.uniform(0.0, 6.0, (5, 3))
        )
        for _ in range(8)
    ]
    with transaction(local_env) as session:
        ids = store_structures(session, records, generator="parity-test").ids
    errors = rng.normal(0.0, 10.0, len(records))
    train = collector(rng, ids, records, errors, np.zeros((40, 3)))
    path = write_parity(tmp_path / "parity.npz", {"train": train})
    with transaction(local_env, read_only=True) as session:
        parity = run_parity(session, {"parity_path": str(path)}, [LEVEL])
    (head,) = parity.heads
    assert head.energy_reference == EnergyReference.per_element and head.notes == []
    (series,) = head.energy_mev_per_atom
    arrays = train.as_arrays()
    per_atom = arrays[f"{LEVEL}/energy_reference_hartree"] / 5 * HARTREE_TO_MEV
    assert series.reference == pytest.approx(per_atom - per_atom.mean(), abs=1e-3)
    assert np.subtract(series.predicted, series.reference) == pytest.approx(errors, abs=1e-3)
