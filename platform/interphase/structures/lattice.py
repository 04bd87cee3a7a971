"""Lithium lattice noise: crystal packings, scaled and with Gaussian position noise.

The transfer-learning paper samples metallic Li clusters and bulk cells from
BCC, FCC and SC packings "supplemented with scaling and Gaussian noise". By
default every packing has the atomic volume of BCC Li at a = 3.49 Å, so the
packings differ in arrangement, not density.

Outputs: non-periodic clusters (:func:`lithium_cluster`), periodic bulk
supercells (:func:`lithium_bulk`); slabs live in :mod:`interphase.structures.slab`.
Scaling is isotropic (one factor) times an optional anisotropic stretch (one
factor per Cartesian axis of the conventional cubic cell).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from ase import Atoms
from ase.build import bulk

from interphase.records import StructureRecord

LI = 3
BCC_LATTICE_CONSTANT_ANGSTROM = 3.49
_ATOMS_PER_CUBIC_CELL = {"bcc": 2, "fcc": 4, "sc": 1}
#: Packings the lattice generators know.
PACKINGS = tuple(_ATOMS_PER_CUBIC_CELL)


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
    #: Largest relative per-axis deviation of the anisotropic stretch (0: isotropic).
    anisotropy: float = 0.0

    def __post_init__(self) -> None:
        for packing in self.packings:
            _check_packing(packing)
        if self.n_atoms < 1:
            raise LatticeParameterError(f"n_atoms must be >= 1, got {self.n_atoms}")
        if self.noise_angstrom < 0:
            raise LatticeParameterError(
                f"noise_angstrom must be >= 0 (a Gaussian width), got {self.noise_angstrom}"
            )
        check_scaling(self.scale_range, self.anisotropy)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def check_scaling(scale_range: tuple[float, float], anisotropy: float) -> None:
    """Raise :class:`LatticeParameterError` for a meaningless scale range or anisotropy."""
    low, high = scale_range
    if not 0 < low <= high:
        raise LatticeParameterError(f"scale_range must satisfy 0 < low <= high, got {scale_range}")
    if not 0 <= anisotropy < 1:
        raise LatticeParameterError(f"anisotropy must be in [0, 1), got {anisotropy}")


def draw_stretch(rng: np.random.Generator, anisotropy: float) -> np.ndarray:
    """Per-axis stretch factors, uniform in ``[1 - anisotropy, 1 + anisotropy]``.

    Draws nothing from ``rng`` when ``anisotropy`` is 0, so isotropic runs
    reproduce the structures made before anisotropy existed.
    """
    if anisotropy == 0:
        return np.ones(3)
    return rng.uniform(1 - anisotropy, 1 + anisotropy, 3)


def cubic_cell(
    packing: str, lattice_constant_angstrom: float, stretch: np.ndarray | None = None
) -> Atoms:
    """Conventional cubic Li cell of ``packing``, stretched per axis if asked."""
    _check_packing(packing)
    if lattice_constant_angstrom <= 0:
        raise LatticeParameterError(
            f"lattice constant must be > 0 Å, got {lattice_constant_angstrom}"
        )
    cell = bulk("Li", packing, a=lattice_constant_angstrom, cubic=True)
    if stretch is not None:
        cell.set_cell(np.diag(np.asarray(stretch) * lattice_constant_angstrom), scale_atoms=True)
    return cell


def lithium_bulk(
    packing: str,
    repeats: tuple[int, int, int],
    lattice_constant_angstrom: float,
    noise_angstrom: float,
    rng: np.random.Generator,
    *,
    stretch: np.ndarray | None = None,
) -> StructureRecord:
    """A periodic Li supercell: cubic cell repeated, stretched, Gaussian noise on every atom.

    Parameters
    ----------
    packing
        ``"bcc"``, ``"fcc"`` or ``"sc"``.
    repeats
        Supercell repeats of the conventional cubic cell along a, b, c.
    lattice_constant_angstrom
        Cubic lattice constant (Å) after isotropic scaling.
    noise_angstrom
        Standard deviation of the isotropic Gaussian displacement (Å).
    rng
        Source of the noise.
    stretch
        Optional per-axis stretch factors (anisotropic scaling).
    """
    if noise_angstrom < 0:
        raise LatticeParameterError(f"noise_angstrom must be >= 0, got {noise_angstrom}")
    if len(repeats) != 3 or min(repeats) < 1:
        raise LatticeParameterError(f"repeats must be three integers >= 1, got {repeats}")
    crystal = cubic_cell(packing, lattice_constant_angstrom, stretch).repeat(tuple(repeats))
    return noisy_periodic_lithium(crystal, noise_angstrom, rng)


def noisy_periodic_lithium(
    atoms: Atoms, noise_angstrom: float, rng: np.random.Generator
) -> StructureRecord:
    """The periodic Li record of ``atoms``, every position displaced by Gaussian noise.

    ``noise_angstrom`` is the standard deviation (Å); the multiplicity is the
    lowest the electron count allows.
    """
    positions = atoms.positions + rng.normal(0.0, noise_angstrom, atoms.positions.shape)
    n_atoms = len(atoms)
    return StructureRecord(
        numbers=np.full(n_atoms, LI),
        positions_angstrom=positions,
        cell_angstrom=np.array(atoms.cell),
        pbc=(True, True, True),
        multiplicity=1 + (LI * n_atoms) % 2,
    )


def lithium_cluster(
    packing: str,
    n_atoms: int,
    lattice_constant_angstrom: float,
    noise_angstrom: float,
    rng: np.random.Generator,
    *,
    stretch: np.ndarray | None = None,
    source_repeats: int | None = None,
) -> StructureRecord:
    """A compact, centred, non-periodic Li cluster cut from a noisy cubic packing.

    The ``n_atoms`` lattice sites closest to the centre of the repeated cell
    are kept (in order of distance, so atom ``i`` is the same site in every
    cluster of a packing), then the cluster is stretched per axis (if
    ``stretch`` is given) and every atom displaced by isotropic Gaussian noise.

    Parameters
    ----------
    source_repeats
        Repeats of the cubic cell the cluster is cut from; by default just
        large enough. A cluster larger than its source raises
        :class:`LatticeParameterError`.
    """
    _check_packing(packing)
    if n_atoms < 1:
        raise LatticeParameterError(f"n_atoms must be >= 1, got {n_atoms}")
    if noise_angstrom < 0:
        raise LatticeParameterError(f"noise_angstrom must be >= 0, got {noise_angstrom}")
    repeats = source_repeats or (
        int(np.ceil((n_atoms / _ATOMS_PER_CUBIC_CELL[packing]) ** (1 / 3))) + 2
    )
    n_source = _ATOMS_PER_CUBIC_CELL[packing] * repeats**3
    if n_atoms > n_source:
        raise LatticeParameterError(
            f"a cluster of {n_atoms} atoms is larger than its source, a"
            f" {repeats}x{repeats}x{repeats} {packing} supercell of {n_source} atoms;"
            " increase the source repeats"
        )
    # Sites are ordered on the unit lattice with rounded distances, so that ties
    # between equidistant sites break the same way for every lattice constant.
    unit = bulk("Li", packing, a=1.0, cubic=True).repeat(repeats)
    unit_distances = np.round(np.linalg.norm(unit.positions - unit.cell.sum(axis=0) / 2, axis=1), 9)
    order = np.argsort(unit_distances, kind="stable")[:n_atoms]
    centre = unit.cell.sum(axis=0) / 2 * lattice_constant_angstrom
    positions = unit.positions[order] * lattice_constant_angstrom
    if stretch is not None:
        positions = (positions - centre) * np.asarray(stretch)
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
        stretch = draw_stretch(rng, params.anisotropy) if params.anisotropy else None
        records.append(
            lithium_cluster(
                packing, params.n_atoms, base * scale, params.noise_angstrom, rng, stretch=stretch
            )
        )
    return records
