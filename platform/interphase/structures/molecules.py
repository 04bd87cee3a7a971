"""Electrolyte molecules from SMILES, Li atoms/ions, and random molecular clusters.

3D structures come from RDKit (ETKDG embedding, then MMFF94 relaxation, UFF
where MMFF has no parameters). Clusters place whole molecules with random
orientations at random centres in a sphere or box, rejecting any placement
that brings two atoms of different molecules closer than a minimum distance.
Charge is the sum of the species' formal charges; the multiplicity is the
lowest the electron count allows (singlet for even, doublet for odd).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from ase import Atoms
from ase.geometry import get_distances
from scipy.spatial.transform import Rotation

from interphase.records import StructureRecord

#: The carbonate electrolytes of the transfer-learning paper, by common abbreviation.
ELECTROLYTE_SMILES: dict[str, str] = {
    "EC": "C1COC(=O)O1",  # ethylene carbonate
    "PC": "CC1COC(=O)O1",  # propylene carbonate
    "VC": "O=C1OC=CO1",  # vinylene carbonate
    "DMC": "COC(=O)OC",  # dimethyl carbonate
    "DEC": "CCOC(=O)OCC",  # diethyl carbonate
    "EMC": "CCOC(=O)OC",  # ethyl methyl carbonate
    "FEC": "O=C1OCC(F)O1",  # fluoroethylene carbonate
}
#: Lithium species: the neutral atom and the cation.
LITHIUM_SPECIES: dict[str, int] = {"Li": 0, "Li+": 1}


class MoleculeError(ValueError):
    """A species name or SMILES cannot be turned into a 3D structure."""


class PlacementError(RuntimeError):
    """Molecules could not be placed without overlap in the region given."""


@dataclass(frozen=True)
class Molecule:
    """One 3D molecule (or Li atom/ion): atoms centred at the origin and its charge (e)."""

    name: str
    atoms: Atoms
    charge: int


def lowest_multiplicity(numbers: np.ndarray, charge: int) -> int:
    """Singlet for an even electron count, doublet for an odd one."""
    return 1 + (int(np.sum(numbers)) - int(charge)) % 2


def molecule(species: str, seed: int = 0) -> Molecule:
    """A 3D structure of ``species``: an electrolyte name (``"EC"``), ``"Li"``, ``"Li+"`` or SMILES.

    Parameters
    ----------
    species
        Key of :data:`ELECTROLYTE_SMILES` or :data:`LITHIUM_SPECIES`, or any SMILES.
    seed
        Seed of the RDKit embedding (different seeds give different conformers).

    Raises
    ------
    MoleculeError
        For a SMILES RDKit cannot parse or embed.
    """
    if species in LITHIUM_SPECIES:
        return Molecule(species, Atoms("Li", positions=[[0.0, 0.0, 0.0]]), LITHIUM_SPECIES[species])
    numbers, positions, charge = _embed(ELECTROLYTE_SMILES.get(species, species), int(seed))
    atoms = Atoms(numbers=list(numbers), positions=positions - positions.mean(axis=0))
    return Molecule(species, atoms, charge)


@lru_cache(maxsize=256)
def _embed(smiles: str, seed: int) -> tuple[tuple[int, ...], np.ndarray, int]:
    from rdkit import Chem
    from rdkit import RDLogger as _RDLogger
    from rdkit.Chem import AllChem as _AllChem

    AllChem: Any = _AllChem  # rdkit's bundled stubs miss most of AllChem

    RDLogger: Any = _RDLogger
    RDLogger.DisableLog("rdApp.*")
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise MoleculeError(
            f"{smiles!r} is neither a known species ({', '.join(known_species())}) nor valid SMILES"
        )
    mol = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    if AllChem.EmbedMolecule(mol, params) != 0:
        raise MoleculeError(f"RDKit could not embed {smiles!r} in 3D (seed {seed})")
    if AllChem.MMFFHasAllMoleculeParams(mol):
        AllChem.MMFFOptimizeMolecule(mol, maxIters=2000)
    else:
        AllChem.UFFOptimizeMolecule(mol, maxIters=2000)
    numbers = tuple(atom.GetAtomicNum() for atom in mol.GetAtoms())
    positions = np.array(mol.GetConformer().GetPositions(), dtype=float)
    positions.setflags(write=False)  # cached: callers must copy
    return numbers, positions, int(Chem.GetFormalCharge(mol))


def known_species() -> list[str]:
    """Names accepted by :func:`molecule` besides SMILES."""
    return [*ELECTROLYTE_SMILES, *LITHIUM_SPECIES]


def molecule_record(species: str, seed: int = 0) -> StructureRecord:
    """One molecule (or Li atom/ion) as a non-periodic record with charge and multiplicity."""
    mol = molecule(species, seed)
    return StructureRecord(
        numbers=mol.atoms.numbers.copy(),
        positions_angstrom=mol.atoms.positions.copy(),
        charge=mol.charge,
        multiplicity=lowest_multiplicity(mol.atoms.numbers, mol.charge),
    )


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3x3 rotation matrix."""
    return np.asarray(Rotation.random(random_state=rng).as_matrix())


def place_molecules(
    molecules: Sequence[Atoms],
    sample_centre: Callable[[np.random.Generator], np.ndarray],
    rng: np.random.Generator,
    *,
    min_distance_angstrom: float,
    fixed: Atoms | None = None,
    max_attempts: int = 200,
) -> tuple[Atoms, list[np.ndarray]]:
    """Place whole molecules, randomly rotated, at sampled centres without overlap.

    Parameters
    ----------
    molecules
        Molecules to place, each centred at the origin.
    sample_centre
        Draws a centre (Å) for the next molecule.
    rng
        Source of rotations and of the centres.
    min_distance_angstrom
        Smallest allowed distance between atoms of different molecules (and
        to ``fixed``); minimum images when ``fixed`` is periodic.
    fixed
        Atoms already present (e.g. a Li slab); its cell and pbc are used.
    max_attempts
        Tries per molecule before :class:`PlacementError` is raised.

    Returns
    -------
    atoms, fragments
        All atoms (``fixed`` first) and, per placed molecule, its atom indices.
    """
    system = fixed.copy() if fixed is not None else Atoms()
    cell, pbc = (system.cell, system.pbc) if fixed is not None else (None, None)
    fragments = []
    for index, mol in enumerate(molecules):
        for _ in range(max_attempts):
            positions = mol.positions @ random_rotation(rng).T + sample_centre(rng)
            if len(system) == 0:
                break
            distances = get_distances(positions, system.positions, cell=cell, pbc=pbc)[1]
            if distances.min() >= min_distance_angstrom:
                break
        else:
            raise PlacementError(
                f"could not place molecule {index} ({mol.get_chemical_formula()}) after"
                f" {max_attempts} attempts at {min_distance_angstrom} Å minimum distance;"
                " enlarge the region or place fewer molecules"
            )
        fragments.append(np.arange(len(system), len(system) + len(mol)))
        system += Atoms(numbers=mol.numbers, positions=positions)
    return system, fragments


def molecular_cluster(
    species: Sequence[str],
    rng: np.random.Generator,
    *,
    region: str = "sphere",
    size_angstrom: float = 6.0,
    min_distance_angstrom: float = 2.0,
    max_attempts: int = 200,
) -> tuple[StructureRecord, list[np.ndarray]]:
    """A random non-periodic cluster of several molecules and Li.

    Parameters
    ----------
    species
        One entry per molecule, e.g. ``["EC", "EC", "Li+"]``.
    region
        ``"sphere"`` (centres uniform in a ball of radius ``size_angstrom``)
        or ``"box"`` (uniform in a cube of edge ``size_angstrom``).
    min_distance_angstrom
        Smallest distance between atoms of different molecules.

    Returns
    -------
    record, fragments
        The centred cluster and the atom indices of each molecule.
    """
    if region not in ("sphere", "box"):
        raise MoleculeError(f"region must be 'sphere' or 'box', got {region!r}")
    if size_angstrom <= 0 or min_distance_angstrom <= 0:
        raise MoleculeError("size_angstrom and min_distance_angstrom must be > 0")
    if not species:
        raise MoleculeError("a cluster needs at least one species")
    molecules = [molecule(name, int(rng.integers(2**31))) for name in species]

    def sample_centre(generator: np.random.Generator) -> np.ndarray:
        if region == "box":
            return generator.uniform(-size_angstrom / 2, size_angstrom / 2, 3)
        direction = generator.normal(size=3)
        radius = size_angstrom * generator.uniform() ** (1 / 3)
        return np.asarray(direction / np.linalg.norm(direction) * radius)

    atoms, fragments = place_molecules(
        [m.atoms for m in molecules],
        sample_centre,
        rng,
        min_distance_angstrom=min_distance_angstrom,
        max_attempts=max_attempts,
    )
    charge = sum(m.charge for m in molecules)
    record = StructureRecord(
        numbers=atoms.numbers.copy(),
        positions_angstrom=atoms.positions - atoms.positions.mean(axis=0),
        charge=charge,
        multiplicity=lowest_multiplicity(atoms.numbers, charge),
    )
    return record, fragments
