"""Li lattice noise: packings, coordination, noise statistics, slabs, bad parameters."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.neighborlist import neighbor_list
from pydantic import ValidationError

from interphase.structures.config import LatticeConfig
from interphase.structures.lattice import (
    LatticeNoiseParams,
    LatticeParameterError,
    lattice_noise_clusters,
    lithium_bulk,
    lithium_cluster,
)
from interphase.structures.recipes import lattice_batch
from interphase.structures.slab import lithium_slab
from interphase.structures.validate import validate_structure

A = 3.49
NEAREST = {"bcc": A * np.sqrt(3) / 2, "fcc": A / np.sqrt(2), "sc": A}
COORDINATION = {"bcc": 8, "fcc": 12, "sc": 6}


def _atoms(record) -> Atoms:  # type: ignore[no-untyped-def]
    return Atoms(
        numbers=record.numbers,
        positions=record.positions_angstrom,
        cell=record.cell_angstrom,
        pbc=record.pbc,
    )


@pytest.mark.parametrize("packing", ["bcc", "fcc", "sc"])
def test_noise_free_bulk_has_the_packing_neighbour_shell(packing: str) -> None:
    record = lithium_bulk(packing, (3, 3, 3), A, 0.0, np.random.default_rng(0))
    i, d = neighbor_list("id", _atoms(record), NEAREST[packing] * 1.05)
    assert np.allclose(d, NEAREST[packing], atol=1e-9)
    assert np.all(np.bincount(i, minlength=record.n_atoms) == COORDINATION[packing])
    validate_structure(record)


def test_noise_width_is_recovered() -> None:
    ideal = lithium_bulk("bcc", (6, 6, 6), A, 0.0, np.random.default_rng(0))
    noisy = lithium_bulk("bcc", (6, 6, 6), A, 0.1, np.random.default_rng(1))
    displacement = noisy.positions_angstrom - ideal.positions_angstrom
    assert displacement.std() == pytest.approx(0.1, rel=0.06)
    assert abs(displacement.mean()) < 0.01


def test_same_seed_same_structures_different_seed_differs() -> None:
    config = LatticeConfig(n_per_packing=1, anisotropy=0.05, seed=3)
    first, again = lattice_batch(config), lattice_batch(config)
    other = lattice_batch(config.model_copy(update={"seed": 4}))
    assert len(first.items) == len(again.items) == 3 * (1 + 1 + 3)
    for a, b, c in zip(first.items, again.items, other.items, strict=True):
        assert np.array_equal(a.record.positions_angstrom, b.record.positions_angstrom)
        assert a.params == b.params
        assert not np.allclose(a.record.positions_angstrom, c.record.positions_angstrom)


def test_batch_outputs_are_periodic_bulk_clusters_and_slabs() -> None:
    batch = lattice_batch(LatticeConfig(packings=["bcc"], n_per_packing=1, cluster_n_atoms=15))
    by_kind = {item.generator: item.record for item in batch.items}
    assert by_kind["lattice_bulk"].is_periodic and by_kind["lattice_bulk"].n_atoms == 16
    cluster = by_kind["lattice_cluster"]
    assert not cluster.is_periodic and cluster.n_atoms == 15
    assert np.allclose(cluster.positions_angstrom.mean(axis=0), 0.0, atol=1e-9)
    assert cluster.multiplicity == 2  # 45 electrons
    assert by_kind["lattice_slab"].is_periodic
    assert not batch.rejected


def test_anisotropic_stretch_scales_axes_independently() -> None:
    record = lithium_bulk(
        "sc", (2, 2, 2), A, 0.0, np.random.default_rng(0), stretch=np.array([1.1, 1.0, 0.9])
    )
    assert np.allclose(np.diag(record.cell_angstrom), [2 * A * 1.1, 2 * A, 2 * A * 0.9])


def test_slab_has_vacuum_along_the_normal() -> None:
    slab = lithium_slab("fcc", (1, 1, 1), 3, 7.0, 4.4, 0.02, np.random.default_rng(0))
    z = slab.positions_angstrom[:, 2]
    assert slab.cell_angstrom[2, 2] - (z.max() - z.min()) > 13.0
    validate_structure(slab)


def test_demo_clusters_keep_site_order() -> None:
    records = lattice_noise_clusters(4, LatticeNoiseParams(n_atoms=9, packings=("bcc",)), seed=1)
    shifts = records[0].positions_angstrom - records[1].positions_angstrom
    assert np.abs(shifts).max() < 1.5  # same site, different scale and noise


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"noise_angstrom": -0.1}, "noise_angstrom"),
        ({"packings": ["hcp"]}, "packings"),
        ({"scale_range": (1.1, 0.9)}, "scale_range"),
        ({"anisotropy": 1.5}, "anisotropy"),
        ({"mystery": 1}, "mystery"),
    ],
)
def test_bad_config_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LatticeConfig.model_validate(changes)


def test_bad_library_parameters_raise_clear_errors() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(LatticeParameterError, match="noise_angstrom must be >= 0"):
        lithium_bulk("bcc", (2, 2, 2), A, -0.1, rng)
    with pytest.raises(LatticeParameterError, match="unknown packing 'hcp'"):
        lithium_bulk("hcp", (2, 2, 2), A, 0.1, rng)
    with pytest.raises(LatticeParameterError, match="larger than its source"):
        lithium_cluster("bcc", 20, A, 0.1, rng, source_repeats=2)
    with pytest.raises(LatticeParameterError, match="Miller"):
        lithium_slab("bcc", (0, 0, 0), 3, 5.0, A, 0.0, rng)
    with pytest.raises(LatticeParameterError, match="larger than its source"):
        lattice_batch(
            LatticeConfig(kinds=["cluster"], cluster_n_atoms=30, cluster_source_repeats=2)
        )
