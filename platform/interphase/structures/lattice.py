"""Lithium lattice noise: crystal packings, scaled and with Gaussian position noise.

The transfer-learning paper samples metallic Li clusters and bulk cells from
BCC, FCC and SC packings "supplemented with scaling and Gaussian noise". By
default every packing has the atomic volume of BCC Li at a = 3.49 Å, so the
packings differ in arrangement, not density.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from ase.build import bulk

from interphase.records import StructureRecord

LI = 3
BCC_LATTICE_CONSTANT_ANGSTROM = 3.49
_ATOMS_PER_CUBIC_CELL = {"bcc": 2, "fcc": 4, "sc": 1}


class LatticeParameterError(ValueError):
    """A lattice-noise parameter is out of its meaningful range."""


def equal_volume_lattice_constant(packing: str, bcc_constant_angstrom: float) -> float:
    """Cubic lattice constant (Å) of ``packing`` with the atomic volume of BCC at ``a``."""
    _check_packing(packing)
    volume_per_atom = bcc_constant_angstrom**3 / 2
    return float((volume_per_atom * _ATOMS_PER_CUBIC_CELL[packing]) ** (1 / 3))


def _check_packing(packing: str) -> None:
    if packing not in _ATOMS_PER_CUBIC_CELL:
        raise LatticeParameterError(
            f"unknown packing {packing!r}; choose one of {', '.join(_ATOMS_PER_CUBIC_CELL)}"
        )


@dataclass(frozen=True)
class LatticeNoiseParams:
    """Parameters of Li lattice-noise clusters (recorded with every structure)."""

    n_atoms: int = 8
    packings: tuple[str, ...] = ("bcc", "fcc", "sc")
    bcc_lattice_constant_angstrom: float = BCC_LATTICE_CONSTANT_ANGSTROM
    scale_range: tuple[float, float] = (0.95, 1.05)
    noise_angstrom: float = 0.1
    extra: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for packing in self.packings:
            _check_packing(packing)
        if self.n_atoms < 1:
            raise LatticeParameterError(f"n_atoms must be >= 1, got {self.n_atoms}")
        if self.noise_angstrom < 0:
            raise LatticeParameterError(
                f"noise_angstrom must be >= 0 (a Gaussian width), got {self.noise_angstrom}"
            )
        low, high = self.scale_range
        if not 0 < low <= high:
            raise LatticeParameterError(
                f"scale_range must satisfy 0 < low <= high, got {self.scale_range}"
            )

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def lithium_cluster(
    packing: str,
    n_atoms: int,
    lattice_constant_angstrom: float,
    noise_angstrom: float,
    rng: np.random.Generator,
) -> StructureRecord:
    """A compact, centred, non-periodic Li cluster cut from a noisy cubic packing.

    The ``n_atoms`` lattice sites closest to the centre of the repeated cell
    are kept (in order of distance, so atom ``i`` is the same site in every
    cluster of a packing), then every atom is displaced by isotropic Gaussian
    noise.
    """
    _check_packing(packing)
    repeats = int(np.ceil((n_atoms / _ATOMS_PER_CUBIC_CELL[packing]) ** (1 / 3))) + 2
    crystal = bulk("Li", packing, a=lattice_constant_angstrom, cubic=True).repeat(repeats)
    centre = crystal.cell.sum(axis=0) / 2
    distances = np.linalg.norm(crystal.positions - centre, axis=1)
    positions = crystal.positions[np.argsort(distances, kind="stable")[:n_atoms]]
    positions = positions + rng.normal(0.0, noise_angstrom, positions.shape)
    positions -= positions.mean(axis=0)
    n_electrons = LI * n_atoms
    return StructureRecord(
        numbers=np.full(n_atoms, LI),
        positions_angstrom=positions,
        multiplicity=1 + n_electrons % 2,
    )


def lattice_noise_clusters(
    n_structures: int, params: LatticeNoiseParams, seed: int
) -> list[StructureRecord]:
    """``n_structures`` Li clusters, packings cycled, scale drawn uniformly in range.

    Deterministic for a given ``seed``.
    """
    if n_structures < 0:
        raise LatticeParameterError(f"n_structures must be >= 0, got {n_structures}")
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n_structures):
        packing = params.packings[i % len(params.packings)]
        base = equal_volume_lattice_constant(packing, params.bcc_lattice_constant_angstrom)
        scale = rng.uniform(*params.scale_range)
        records.append(
            lithium_cluster(packing, params.n_atoms, base * scale, params.noise_angstrom, rng)
        )
    return records
