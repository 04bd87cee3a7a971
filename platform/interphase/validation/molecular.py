"""Properties of electrolyte molecules from any ASE calculator: the molecular validation suite.

Each geometry is optimised on the calculator's own surface before the
property is taken, so a head and its reference are compared at their own minima.

- :func:`harmonic_frequencies`: EC's vibrational wavenumbers (cm⁻¹) by finite
  differences of the forces (ASE's ``Vibrations``), the six rigid-body modes left out.
- :func:`dmc_conformer_energy`: E(cis-trans) − E(cis-cis) of dimethyl carbonate
  (kcal/mol), both optimised from dihedrals set on one RDKit geometry.
- :func:`lithium_binding_energy`: E(Li⁺–EC) − E(EC) − E(Li⁺) (kcal/mol), the cation
  started 1.9 Å from the carbonyl O along the C=O axis.

Energies are in eV from ASE and converted to kcal/mol with ``ase.units``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.optimize import BFGS
from ase.units import kcal, mol
from ase.vibrations import Vibrations

from interphase.structures.molecules import molecule

#: eV in kcal/mol.
EV_IN_KCAL_PER_MOL = float(mol / kcal)
FMAX_EV_PER_ANGSTROM = 0.005
MAX_STEPS = 1000

#: A calculator for a given total charge (e): molecular engines and models need it up front.
CalculatorFor = Callable[[int], Calculator]


@dataclass(frozen=True)
class Optimised:
    atoms: Atoms
    energy_ev: float
    converged: bool


def optimise(atoms: Atoms, calculator: Calculator) -> Optimised:
    """``atoms`` relaxed to :data:`FMAX_EV_PER_ANGSTROM` (at most :data:`MAX_STEPS` steps)."""
    atoms = atoms.copy()
    atoms.calc = calculator
    converged = bool(BFGS(atoms, logfile=None).run(fmax=FMAX_EV_PER_ANGSTROM, steps=MAX_STEPS))
    return Optimised(atoms, float(atoms.get_potential_energy()), converged)


def harmonic_frequencies(calculator_for: CalculatorFor, species: str = "EC") -> list[float]:
    """Vibrational wavenumbers (cm⁻¹, ascending; imaginary ones negative) of ``species``."""
    start = molecule(species).atoms
    minimum = optimise(start, calculator_for(0)).atoms
    minimum.calc = calculator_for(0)
    with tempfile.TemporaryDirectory(prefix="interphase-vib-") as scratch:
        vibrations = Vibrations(minimum, name=f"{scratch}/vib", delta=0.01, nfree=2)
        vibrations.run()
        energies = vibrations.get_frequencies()  # cm⁻¹, complex for imaginary modes
    wavenumbers = np.where(np.abs(energies.imag) > 0, -np.abs(energies.imag), energies.real)
    # The six smallest in magnitude are translations and rotations.
    order = np.argsort(np.abs(wavenumbers))
    return sorted(float(w) for w in wavenumbers[order[6:]])


def _set_dihedral(atoms: Atoms, indices: tuple[int, int, int, int], degrees: float) -> None:
    """Turn the group on the last atom's side of the middle bond to ``degrees``."""
    a, b, c, d = indices
    bonded = _side(atoms, c, d)
    mask = [i in bonded for i in range(len(atoms))]
    atoms.set_dihedral(a, b, c, d, degrees, mask=mask)


def _side(atoms: Atoms, pivot: int, start: int) -> set[int]:
    """Atoms reached from ``start`` without passing through ``pivot`` (1.6 Å bonds)."""
    distances = atoms.get_all_distances()
    seen, frontier = {start}, [start]
    while frontier:
        i = frontier.pop()
        for j in np.flatnonzero((distances[i] < 1.6) & (distances[i] > 0)):
            if int(j) != pivot and int(j) not in seen:
                seen.add(int(j))
                frontier.append(int(j))
    return seen


def dmc_conformers() -> tuple[Atoms, Atoms]:
    """Cis-cis and cis-trans dimethyl carbonate (SMILES ``COC(=O)OC``: C0 O1 C2 O3 O4 C5)."""
    base = molecule("DMC").atoms
    cis_cis, cis_trans = base.copy(), base.copy()
    for atoms, second in ((cis_cis, 0.0), (cis_trans, 180.0)):
        _set_dihedral(atoms, (3, 2, 1, 0), 0.0)  # methyl C0 cis to the carbonyl O3
        _set_dihedral(atoms, (3, 2, 4, 5), second)
    return cis_cis, cis_trans


def dmc_conformer_energy(calculator_for: CalculatorFor) -> float:
    """E(cis-trans) − E(cis-cis) of DMC in kcal/mol, each optimised on the surface."""
    cis_cis, cis_trans = dmc_conformers()
    low = optimise(cis_cis, calculator_for(0)).energy_ev
    high = optimise(cis_trans, calculator_for(0)).energy_ev
    return (high - low) * EV_IN_KCAL_PER_MOL


def lithium_ec_complex(ec: Atoms, distance_angstrom: float = 1.9) -> Atoms:
    """Li⁺ on the C=O axis of ``ec``, ``distance_angstrom`` beyond the carbonyl O."""
    numbers = ec.numbers
    carbonyl = next(
        i
        for i in np.flatnonzero(numbers == 8)
        if sum(1 for j in range(len(ec)) if j != i and ec.get_distance(i, j) < 1.6) == 1
    )
    carbon = min(np.flatnonzero(numbers == 6), key=lambda j: ec.get_distance(int(carbonyl), int(j)))
    axis = ec.positions[carbonyl] - ec.positions[carbon]
    axis /= np.linalg.norm(axis)
    complex_ = ec.copy()
    complex_.append("Li")
    complex_.positions[-1] = ec.positions[carbonyl] + distance_angstrom * axis
    return complex_


def lithium_binding_energy(calculator_for: CalculatorFor) -> float:
    """E(Li⁺–EC) − E(EC) − E(Li⁺) in kcal/mol (negative: bound), each optimised."""
    ec = optimise(molecule("EC").atoms, calculator_for(0))
    complex_ = optimise(lithium_ec_complex(ec.atoms), calculator_for(1))
    cation = Atoms("Li", positions=[[0.0, 0.0, 0.0]])
    cation.calc = calculator_for(1)
    e_cation = float(cation.get_potential_energy())
    return (complex_.energy_ev - ec.energy_ev - e_cation) * EV_IN_KCAL_PER_MOL
