"""EC/Li-metal interfaces and non-periodic clusters cut from them.

:func:`build_interface` packs whole electrolyte molecules above a periodic Li
slab. :func:`extract_cluster` cuts a non-periodic cluster around a centre
from a periodic snapshot: Li atoms within the cutoff are kept one by one (the
metal has no molecules to keep whole); every molecule with any atom within
the cutoff is kept whole, unwrapped across periodic boundaries by walking its
covalent bonds, so no covalent bond is ever cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.geometry import find_mic

from interphase.records import StructureRecord
from interphase.structures.connectivity import molecule_labels, unwrapped_positions
from interphase.structures.lattice import LI, LatticeParameterError
from interphase.structures.molecules import lowest_multiplicity, molecule, place_molecules
from interphase.structures.slab import slab_atoms


class InterfaceError(ValueError):
    """An interface or cluster-extraction setting is invalid."""


@dataclass
class Interface:
    """A periodic Li slab with molecules above it (slab atoms first).

    ``slab_top_angstrom`` is the z of the highest Li atom: the interface plane.
    """

    atoms: Atoms
    n_slab_atoms: int
    slab_top_angstrom: float


def build_interface(
    rng: np.random.Generator,
    *,
    species: Sequence[str] = ("EC", "EC"),
    packing: str = "bcc",
    miller: tuple[int, int, int] = (1, 0, 0),
    layers: int = 3,
    repeats_xy: tuple[int, int] = (3, 3),
    lattice_constant_angstrom: float = 3.49,
    gap_angstrom: float = 2.0,
    region_height_angstrom: float = 6.0,
    vacuum_angstrom: float = 8.0,
    min_distance_angstrom: float = 2.0,
) -> Interface:
    """A Li slab with the ``species`` molecules packed in a layer above it.

    Parameters
    ----------
    rng
        Source of molecule conformers, orientations and positions.
    species
        One entry per molecule (electrolyte names, ``"Li+"`` or SMILES).
    packing, miller, layers, repeats_xy, lattice_constant_angstrom
        The Li slab (see :func:`interphase.structures.slab.slab_atoms`).
    gap_angstrom
        Lowest molecule centre sits this far above the top Li layer plus the
        molecule's radius.
    region_height_angstrom
        Height of the layer the molecule centres are drawn from.
    vacuum_angstrom
        Empty space above the molecules (the cell is periodic along z too).
    min_distance_angstrom
        Smallest distance between atoms of different molecules or the slab.
    """
    if gap_angstrom < 0 or region_height_angstrom <= 0 or vacuum_angstrom <= 0:
        raise InterfaceError("gap must be >= 0 Å, region height and vacuum > 0 Å")
    try:
        slab = slab_atoms(
            packing, miller, layers, 0.5, lattice_constant_angstrom, repeats_xy=repeats_xy
        )
    except LatticeParameterError as error:
        raise InterfaceError(f"Li slab: {error}") from error
    slab.positions[:, 2] -= slab.positions[:, 2].min()
    top = float(slab.positions[:, 2].max())
    molecules = [molecule(name, int(rng.integers(2**31))).atoms for name in species]
    radius = max((float(np.linalg.norm(m.positions, axis=1).max()) for m in molecules), default=0)
    z_low = top + gap_angstrom + radius
    z_high = z_low + region_height_angstrom
    cell = np.array(slab.cell)
    cell[2] = [0.0, 0.0, z_high + radius + vacuum_angstrom]
    slab.set_cell(cell, scale_atoms=False)

    def sample_centre(generator: np.random.Generator) -> np.ndarray:
        fractional = generator.uniform(0.0, 1.0, 2)
        xy = fractional @ cell[:2, :2]
        return np.array([xy[0], xy[1], generator.uniform(z_low, z_high)])

    atoms, _ = place_molecules(
        molecules, sample_centre, rng, min_distance_angstrom=min_distance_angstrom, fixed=slab
    )
    return Interface(atoms=atoms, n_slab_atoms=len(slab), slab_top_angstrom=top)


def interface_centre(
    atoms: Atoms,
    slab_top_angstrom: float,
    rng: np.random.Generator,
    *,
    below_angstrom: float = 2.0,
    above_angstrom: float = 3.0,
) -> np.ndarray:
    """A random point (Å) in the interface region: anywhere in-plane, z around the Li surface."""
    fractional = rng.uniform(0.0, 1.0, 2)
    xy = fractional @ np.array(atoms.cell)[:2, :2]
    z = rng.uniform(slab_top_angstrom - below_angstrom, slab_top_angstrom + above_angstrom)
    return np.array([xy[0], xy[1], z])


def extract_cluster(
    atoms: Atoms,
    centre_angstrom: np.ndarray,
    cutoff_angstrom: float,
    *,
    charge: int = 0,
    metal_numbers: Sequence[int] = (LI,),
) -> tuple[StructureRecord, list[np.ndarray]]:
    """A non-periodic cluster around ``centre_angstrom`` with whole molecules.

    Parameters
    ----------
    atoms
        Periodic (or not) snapshot.
    centre_angstrom
        Cluster centre (Å); the cluster is returned centred on it.
    cutoff_angstrom
        Metal atoms within this distance are kept; molecules with any atom
        within it are kept whole.
    charge
        Total charge given to the cluster; the multiplicity is the lowest
        the electron count allows.
    metal_numbers
        Elements kept atom by atom and excluded from covalent bonding.

    Returns
    -------
    record, molecules
        The cluster and, per kept molecule, its atom indices in the cluster.
    """
    if cutoff_angstrom <= 0:
        raise InterfaceError(f"cutoff_angstrom must be > 0, got {cutoff_angstrom}")
    labels = molecule_labels(atoms, exclude_elements=metal_numbers)
    whole = unwrapped_positions(atoms, exclude_elements=metal_numbers)
    periodic = bool(atoms.pbc.any())
    offsets = atoms.positions - centre_angstrom
    if periodic:
        offsets, distances = find_mic(offsets, atoms.cell, atoms.pbc)
    else:
        distances = np.linalg.norm(offsets, axis=1)
    metal = np.isin(atoms.numbers, np.asarray(metal_numbers))
    inside = distances < cutoff_angstrom
    keep_index: list[np.ndarray] = [np.flatnonzero(metal & inside)]
    keep_positions: list[np.ndarray] = [offsets[metal & inside]]
    molecules: list[np.ndarray] = []
    n_kept = len(keep_index[0])
    for label in np.unique(labels[~metal & inside]):
        members = np.flatnonzero(labels == label)
        anchor = members[np.argmin(distances[members])]
        # Shift the unwrapped molecule so that its closest atom is at its minimum image.
        shifted = whole[members] - whole[anchor] + offsets[anchor]
        keep_index.append(members)
        keep_positions.append(shifted)
        molecules.append(np.arange(n_kept, n_kept + len(members)))
        n_kept += len(members)
    index = np.concatenate(keep_index)
    numbers = atoms.numbers[index].copy()
    record = StructureRecord(
        numbers=numbers,
        positions_angstrom=np.concatenate(keep_positions),
        charge=int(charge),
        multiplicity=lowest_multiplicity(numbers, charge),
    )
    return record, molecules
