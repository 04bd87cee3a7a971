"""vesin's neighbour list against ASE's: the same pairs on periodic, mixed and molecular cells."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, fcc111, molecule
from ase.neighborlist import primitive_neighbor_list

from interphase.models import neighbours
from interphase.models.descriptors import build_structure_graph


def _pair_set(i: np.ndarray, j: np.ndarray, shifts: np.ndarray) -> set[tuple[int, ...]]:
    return {(int(a), int(b), *map(int, s)) for a, b, s in zip(i, j, shifts, strict=True)}


def _cases() -> list[tuple[str, object, float]]:
    rng = np.random.default_rng(0)
    lithium = bulk("Li", "bcc", a=3.44, cubic=True).repeat((3, 3, 3))
    lithium.rattle(0.1, seed=1)
    tiny = bulk("Cu", "fcc", a=3.6)  # one atom: the cutoff spans many images
    triclinic = bulk("Li", "bcc", a=3.44).repeat((2, 3, 2))
    triclinic.set_cell(np.asarray(triclinic.cell) + rng.normal(scale=0.3, size=(3, 3)), True)
    slab = fcc111("Cu", size=(3, 3, 3), vacuum=6.0)  # periodic in x and y only
    water = molecule("H2O")
    cluster = molecule("C6H6")
    cluster.positions += rng.normal(scale=0.05, size=cluster.positions.shape)
    return [
        ("bulk", lithium, 5.2),
        ("one-atom cell", tiny, 8.0),
        ("triclinic", triclinic, 6.5),
        ("slab", slab, 5.0),
        ("molecule", water, 5.2),
        ("cluster", cluster, 3.0),
    ]


@pytest.mark.parametrize(("name", "atoms", "cutoff"), _cases(), ids=[c[0] for c in _cases()])
def test_vesin_lists_the_same_pairs_as_ase(name: str, atoms: object, cutoff: float) -> None:
    assert neighbours.backend() == "vesin"
    pbc, cell, positions = atoms.pbc, np.asarray(atoms.cell), atoms.positions  # type: ignore[attr-defined]
    if not pbc.any():
        cell = np.zeros((3, 3))
    expected = primitive_neighbor_list("ijS", pbc, cell, positions, cutoff)
    got = neighbours.neighbour_pairs(pbc, cell, positions, cutoff)
    assert _pair_set(*got) == _pair_set(*expected), name
    # Same vectors: x_j - x_i + S @ cell.
    i, j, s = got
    vectors = positions[j] - positions[i] + s @ cell
    assert np.all(np.linalg.norm(vectors, axis=1) <= cutoff + 1e-9)


def test_the_ase_fallback_is_chosen_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERPHASE_NEIGHBOURS", "ase")
    assert neighbours.backend() == "ase"


@pytest.mark.parametrize(("name", "atoms", "cutoff"), _cases(), ids=[c[0] for c in _cases()])
def test_structure_graph_is_the_same_with_either_backend(
    name: str, atoms: object, cutoff: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    def graph() -> set[tuple[int, ...]]:
        g = build_structure_graph(
            atoms.numbers,
            atoms.positions,
            np.asarray(atoms.cell),
            atoms.pbc,
            cutoff,  # type: ignore[attr-defined]
        )
        return _pair_set(g.pair_a, g.pair_b, g.pair_cell_shift.astype(int))

    fast = graph()
    monkeypatch.setenv("INTERPHASE_NEIGHBOURS", "ase")
    assert graph() == fast, name
