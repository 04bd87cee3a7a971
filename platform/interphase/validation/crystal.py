"""Properties of a cubic metal from any ASE calculator: the periodic validation suite.

Every function takes a :class:`Crystal` and an ASE calculator (energies in eV,
forces in eV/Å) and computes the property at the calculator's *own*
equilibrium lattice constant, so a model head and its reference level are each
judged at their own minimum, as papers compare methods.

- :func:`equation_of_state`: a Birch–Murnaghan fit of E(V) per atom gives the
  lattice constant a₀ (Å) and bulk modulus B (GPa).
- :func:`cubic_elastic_constants`: C11, C12, C44 (GPa) from the energy of two
  volume-conserving strains (Mehl's method): an orthorhombic strain
  ε = diag(δ, −δ, δ²/(1−δ²)) gives ΔE/V = (C11 − C12)δ², a monoclinic shear
  ε_xy = δ/2, ε_zz = δ²/(4−δ²) gives ΔE/V = C44 δ²/2; with B = (C11 + 2C12)/3.
  Atoms of a one-atom Bravais lattice sit on inversion centres, so these
  strains need no internal relaxation.
- :func:`phonons_at_special_points`: finite-displacement phonons (phonopy),
  frequencies (THz) at the lattice's special points and the bands for a plot.
- :func:`vacancy_formation_energy`: E(N−1, relaxed) − (N−1)/N · E(N), in eV.
- :func:`surface_energy_100`: (E_slab − N·ε_bulk) / 2A of an unrelaxed (100)
  slab, in J/m².
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator
from ase.eos import EquationOfState
from ase.optimize import BFGS
from ase.units import GPa, J, m

from interphase.models.phonons import PhononBands, phonon_bands

#: eV/Å² in J/m².
EV_PER_ANGSTROM2_IN_J_PER_M2 = float(1.0 / (J / m**2))
#: Strains (dimensionless) of the elastic fits: small enough to stay harmonic,
#: large enough that a model's energy noise (~0.1 meV/atom) does not dominate.
ELASTIC_STRAINS = (-0.02, -0.01, 0.0, 0.01, 0.02)


@dataclass(frozen=True)
class Crystal:
    """A cubic one-element crystal: ``bulk(symbol, lattice, a=…, cubic=True)``."""

    symbol: str
    lattice: str  # "bcc" or "fcc"
    a_guess_angstrom: float

    def conventional(self, a_angstrom: float) -> Atoms:
        return bulk(self.symbol, self.lattice, a=a_angstrom, cubic=True)

    @property
    def atoms_per_cell(self) -> int:
        return {"bcc": 2, "fcc": 4}[self.lattice]


@dataclass(frozen=True)
class EquationOfStateResult:
    a0_angstrom: float
    bulk_modulus_gpa: float
    energy_ev_per_atom: float  # at the minimum
    volumes_angstrom3_per_atom: list[float]
    energies_ev_per_atom: list[float]


def _energy_per_atom(atoms: Atoms, calculator: Calculator) -> float:
    atoms = atoms.copy()
    atoms.calc = calculator
    return float(atoms.get_potential_energy()) / len(atoms)


def equation_of_state(
    crystal: Crystal,
    calculator: Calculator,
    *,
    span: float = 0.03,
    points: int = 9,
    max_recentres: int = 4,
) -> EquationOfStateResult:
    """a₀ and B from a Birch–Murnaghan fit of E(V), over ±``span`` in lattice constant.

    The scan starts at the crystal's guess and is recentred on the lowest point
    while that lies at an end of the scan.

    Raises
    ------
    ValueError
        No minimum inside the scan after ``max_recentres`` recentrings (the
        calculator's crystal is unstable, or the guess is far off).
    """
    centre = crystal.a_guess_angstrom
    for _ in range(max_recentres + 1):
        lattice = centre * np.linspace(1 - span, 1 + span, points)
        energies = np.array(
            [_energy_per_atom(crystal.conventional(a), calculator) for a in lattice]
        )
        lowest = int(np.argmin(energies))
        if 0 < lowest < points - 1:
            break
        centre = float(lattice[lowest])
    else:
        raise ValueError(
            f"no energy minimum of {crystal.lattice} {crystal.symbol} within ±{span:.0%} of "
            f"a = {centre:.3f} Å after {max_recentres} recentrings"
        )
    volumes = lattice**3 / crystal.atoms_per_cell
    fit = EquationOfState(volumes, energies, eos="birchmurnaghan")
    v0, e0, b = fit.fit()
    return EquationOfStateResult(
        a0_angstrom=float((v0 * crystal.atoms_per_cell) ** (1 / 3)),
        bulk_modulus_gpa=float(b / GPa),
        energy_ev_per_atom=float(e0),
        volumes_angstrom3_per_atom=[float(v) for v in volumes],
        energies_ev_per_atom=[float(e) for e in energies],
    )


def strained(atoms: Atoms, strain: np.ndarray) -> Atoms:
    """``atoms`` with its cell (and atoms, in fractional coordinates) deformed by ``strain``."""
    out = atoms.copy()
    out.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + strain), scale_atoms=True)
    return out


def _orthorhombic(delta: float) -> np.ndarray:
    return np.diag([delta, -delta, delta**2 / (1 - delta**2)])


def _monoclinic(delta: float) -> np.ndarray:
    strain = np.zeros((3, 3))
    strain[0, 1] = strain[1, 0] = delta / 2
    strain[2, 2] = delta**2 / (4 - delta**2)
    return strain


@dataclass(frozen=True)
class ElasticResult:
    c11_gpa: float
    c12_gpa: float
    c44_gpa: float
    bulk_modulus_gpa: float
    a0_angstrom: float


def _curvature(atoms: Atoms, calculator: Calculator, shape: Callable[[float], np.ndarray]) -> float:
    """d²(E/V)/dδ² / 2 from a quadratic fit over :data:`ELASTIC_STRAINS` (eV/Å³)."""
    volume = atoms.get_volume()
    energies = []
    for delta in ELASTIC_STRAINS:
        cell = strained(atoms, shape(delta))
        cell.calc = calculator
        energies.append(float(cell.get_potential_energy()) / volume)
    return float(np.polyfit(ELASTIC_STRAINS, energies, 2)[0])


def cubic_elastic_constants(
    crystal: Crystal, calculator: Calculator, eos: EquationOfStateResult | None = None
) -> ElasticResult:
    """C11, C12, C44 (GPa) at the calculator's own a₀ (from ``eos``, computed if not given)."""
    eos = eos or equation_of_state(crystal, calculator)
    atoms = crystal.conventional(eos.a0_angstrom)
    shear_prime = _curvature(atoms, calculator, _orthorhombic) / GPa  # C11 - C12
    c44 = 2 * _curvature(atoms, calculator, _monoclinic) / GPa
    b = eos.bulk_modulus_gpa
    return ElasticResult(
        c11_gpa=b + 2 * shear_prime / 3,
        c12_gpa=b - shear_prime / 3,
        c44_gpa=c44,
        bulk_modulus_gpa=b,
        a0_angstrom=eos.a0_angstrom,
    )


@dataclass(frozen=True)
class PhononResult:
    frequencies_thz: dict[str, list[float]]  # by special point, sorted, Γ left out
    bands: PhononBands
    supercell: tuple[int, int, int]
    displacement_angstrom: float
    a0_angstrom: float


def phonons_at_special_points(
    crystal: Crystal,
    calculator: Calculator,
    a0_angstrom: float,
    *,
    supercell: Sequence[int] = (3, 3, 3),
    displacement_angstrom: float = 0.01,
    path: str | None = None,
    npoints: int = 121,
) -> PhononResult:
    """Phonon frequencies (THz) at each special point of the path but Γ, at ``a0_angstrom``.

    ``supercell`` repeats the primitive cell (one atom), e.g. (4, 4, 4) for 64 atoms.
    """
    primitive = bulk(crystal.symbol, crystal.lattice, a=a0_angstrom)
    bands = phonon_bands(
        primitive,
        calculator,
        supercell=supercell,
        displacement_angstrom=displacement_angstrom,
        path=path,
        npoints=npoints,
    )
    frequencies = {
        point: sorted(float(f) for f in values)
        for point, values in bands.special_frequencies_thz.items()
        if point != "G"
    }
    a, b, c = (int(n) for n in supercell)
    return PhononResult(frequencies, bands, (a, b, c), displacement_angstrom, a0_angstrom)


def _relaxed_energy(atoms: Atoms, calculator: Calculator, fmax: float, steps: int) -> float:
    atoms.calc = calculator
    BFGS(atoms, logfile=None).run(fmax=fmax, steps=steps)
    return float(atoms.get_potential_energy())


def vacancy_formation_energy(
    crystal: Crystal,
    calculator: Calculator,
    a0_angstrom: float,
    *,
    repeat: int = 3,
    fmax_ev_per_angstrom: float = 0.01,
    max_steps: int = 200,
) -> float:
    """E_vac (eV) in a ``repeat``³ supercell of the conventional cell, positions relaxed."""
    perfect = crystal.conventional(a0_angstrom).repeat(repeat)
    perfect.calc = calculator
    e_perfect = float(perfect.get_potential_energy())
    defect = perfect.copy()
    del defect[0]
    e_defect = _relaxed_energy(defect, calculator, fmax_ev_per_angstrom, max_steps)
    n = len(perfect)
    return e_defect - (n - 1) / n * e_perfect


def surface_energy_100(
    crystal: Crystal,
    calculator: Calculator,
    eos: EquationOfStateResult,
    *,
    cells_thick: int = 3,
    vacuum_angstrom: float = 10.0,
) -> float:
    """γ(100) in J/m² of an unrelaxed slab ``cells_thick`` conventional cells thick."""
    slab = crystal.conventional(eos.a0_angstrom).repeat((1, 1, cells_thick))
    slab.center(vacuum=vacuum_angstrom / 2, axis=2)
    slab.pbc = (True, True, True)  # periodic images separated by the vacuum
    slab.calc = calculator
    energy = float(slab.get_potential_energy())
    area = float(np.linalg.norm(np.cross(slab.cell[0], slab.cell[1])))
    gamma = (energy - len(slab) * eos.energy_ev_per_atom) / (2 * area)
    return gamma * EV_PER_ANGSTROM2_IN_J_PER_M2
