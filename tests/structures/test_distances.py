"""Tests of interphase.structures.distances: the neighbour pairs behind the overlap guard."""

from __future__ import annotations

import numpy as np
import pytest

from interphase.models.neighbours import BACKEND_ENV
from interphase.structures.distances import close_pairs, dense_squared_distances
from interphase.structures.validate import InvalidStructureError, validate_structure
from tests.structures.test_validate import bcc_li


@pytest.mark.parametrize("pbc", [(True, True, True), (True, True, False)])
def test_close_pairs_match_the_dense_minimum_image(pbc: tuple[bool, bool, bool]) -> None:
    rng = np.random.default_rng(3)
    li = bcc_li(2)
    positions = li.positions_angstrom + rng.normal(scale=0.3, size=li.positions_angstrom.shape)
    cutoff = 2.9
    i, _, dist = close_pairs(positions, li.cell_angstrom, pbc, cutoff)
    d2 = dense_squared_distances(positions, li.cell_angstrom, pbc, cutoff)
    nearest = np.full(len(positions), np.inf)
    np.minimum.at(nearest, i, dist)
    expected = np.sqrt(d2.min(axis=1))
    close = expected < cutoff
    np.testing.assert_allclose(nearest[close], expected[close], rtol=1e-12)


@pytest.mark.parametrize("backend", ["vesin", "ase"])
def test_large_cell_overlap_names_the_same_atoms_with_either_backend(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BACKEND_ENV, backend)
    li = bcc_li(9)  # 1458 atoms: the neighbour-list path
    li.positions_angstrom = li.positions_angstrom.copy()
    li.positions_angstrom[7] = li.positions_angstrom[3] + 0.4
    with pytest.raises(InvalidStructureError) as info:
        validate_structure(li)
    assert info.value.reason == "too_close" and "atoms 3 (Li) and 7 (Li)" in str(info.value)
