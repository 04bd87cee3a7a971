"""Phonon band structures from any ASE calculator by finite displacements (phonopy).

phonopy builds the displaced supercells, the calculator gives their forces
(eV/Å), and the force constants give frequencies (THz) along a path through the
high-symmetry points of the primitive cell (found by spglib). The default path
for bcc is the one the paper plots for Li, Γ–H–P–Γ–N.

phonopy is imported inside the functions that need it (the ``phonons`` extra).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator

if TYPE_CHECKING:
    from ase.dft.kpoints import BandPath

PHONOPY_HINT = "pip install 'interphase[phonons]'"
#: The paper's Li path (bcc special points of Setyawan & Curtarolo).
BCC_PATH = "GHPGN"


class PhonopyMissingError(ImportError):
    """phonopy (the ``phonons`` extra) is not installed."""


class PhononSettingsError(ValueError):
    """A phonon setting (supercell, path, displacement) is invalid for the structure."""


@dataclass(frozen=True)
class PhononBands:
    """Frequencies along a band path; negative values stand for imaginary modes.

    Attributes
    ----------
    path
        Special-point letters, ``,`` between disconnected segments (ASE notation).
    qpoints_fractional
        (Q, 3) q-points in the reciprocal basis of ``primitive_cell_angstrom``.
    distances_per_angstrom
        (Q,) position of each q-point along the plotted axis (ASE's linear axis).
    frequencies_thz
        (Q, bands) frequencies in THz.
    special_distances_per_angstrom, special_labels
        Axis positions and labels of the special points, in path order.
    special_frequencies_thz
        Frequencies (THz) at each special point in ``path``, by letter.
    primitive_cell_angstrom
        (3, 3) the primitive cell the q-points refer to.
    """

    path: str
    qpoints_fractional: np.ndarray
    distances_per_angstrom: np.ndarray
    frequencies_thz: np.ndarray
    special_distances_per_angstrom: np.ndarray
    special_labels: list[str]
    special_frequencies_thz: dict[str, np.ndarray]
    primitive_cell_angstrom: np.ndarray


def bcc_lithium(lattice_constant_angstrom: float = 3.44) -> Atoms:
    """The conventional (cubic, two-atom) cell of bcc Li."""
    return bulk("Li", "bcc", a=lattice_constant_angstrom, cubic=True)


def _phonopy() -> Any:
    try:
        import phonopy
    except ImportError as error:
        raise PhonopyMissingError(
            f"phonon band structures need phonopy ({error}); {PHONOPY_HINT}"
        ) from error
    return phonopy


def phonon_bands(
    atoms: Atoms,
    calculator: Calculator,
    *,
    supercell: Sequence[int] = (3, 3, 3),
    path: str | None = None,
    npoints: int = 121,
    displacement_angstrom: float = 0.01,
    progress: Any = None,
) -> PhononBands:
    """Phonon band structure of ``atoms`` with forces from ``calculator``.

    Parameters
    ----------
    atoms
        A periodic unit cell (any cell; phonopy finds the primitive one).
    calculator
        ASE calculator giving forces in eV/Å; it is attached to copies.
    supercell
        Repeats of ``atoms`` along its cell vectors for the displaced supercells.
    path
        Special-point letters (ASE notation); default Γ–H–P–Γ–N for bcc and
        ASE's standard path for other lattices.
    npoints
        Number of q-points along the whole path.
    displacement_angstrom
        Finite displacement of phonopy's displaced atoms.
    progress
        Called with no arguments after each displaced supercell.

    Returns
    -------
    PhononBands
    """
    phonon = _displaced_phonopy(atoms, supercell, displacement_angstrom)
    forces = []
    for displaced in phonon.supercells_with_displacements:
        cell = Atoms(
            displaced.symbols,
            cell=displaced.cell,
            scaled_positions=displaced.scaled_positions,
            pbc=True,
        )
        cell.calc = calculator
        total = cell.get_forces()
        # Remove the net force (numerical drift), as phonopy's own drift correction does.
        forces.append(total - total.mean(axis=0))
        if progress is not None:
            progress()
    phonon.forces = forces
    phonon.produce_force_constants()
    phonon.symmetrize_force_constants()
    return _bands_along_path(phonon, path, npoints)


def count_displacements(
    atoms: Atoms, supercell: Sequence[int] = (3, 3, 3), displacement_angstrom: float = 0.01
) -> int:
    """How many displaced supercells :func:`phonon_bands` will evaluate."""
    return len(_displaced_phonopy(atoms, supercell, displacement_angstrom).displacements)


def _displaced_phonopy(atoms: Atoms, supercell: Sequence[int], displacement_angstrom: float) -> Any:
    phonopy = _phonopy()
    from phonopy.structure.atoms import PhonopyAtoms

    if not all(atoms.pbc):
        raise PhononSettingsError(
            f"phonons need a structure periodic in all three directions; got pbc={atoms.pbc}"
        )
    if len(supercell) != 3 or min(supercell) < 1:
        raise PhononSettingsError(f"supercell must be three positive integers; got {supercell}")
    if displacement_angstrom <= 0:
        raise PhononSettingsError(f"displacement must be > 0 Å; got {displacement_angstrom}")
    unit = PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=np.asarray(atoms.cell[:]),
        scaled_positions=atoms.get_scaled_positions(),
    )
    with warnings.catch_warnings():
        # phonopy 4 warns that 'auto' differs from v3's identity default; 'auto' is meant.
        warnings.simplefilter("ignore")
        phonon = phonopy.Phonopy(
            unit, supercell_matrix=np.diag([int(n) for n in supercell]), primitive_matrix="auto"
        )
    phonon.generate_displacements(distance=displacement_angstrom)
    return phonon


def _band_path(primitive_cell: np.ndarray, path: str | None, npoints: int) -> BandPath:
    from ase.cell import Cell

    cell = Cell(primitive_cell)
    lattice = cell.get_bravais_lattice()
    if path is None:
        path = BCC_PATH if lattice.name == "BCC" else lattice.special_path
    known = lattice.get_special_points()
    unknown = sorted(set(_path_points(path)) - set(known))
    if unknown:
        raise PhononSettingsError(
            f"path {path!r} names {unknown}, not special points of the {lattice.name} "
            f"lattice ({', '.join(known)})"
        )
    return cell.bandpath(path, npoints=npoints)


def _path_points(path: str) -> list[str]:
    """Special-point names of a path string in order ('GHPGN' -> G, H, P, G, N)."""
    from ase.dft.kpoints import parse_path_string

    return [name for segment in parse_path_string(path) for name in segment]


def _bands_along_path(phonon: Any, path: str | None, npoints: int) -> PhononBands:
    primitive_cell = np.asarray(phonon.primitive.cell)
    band_path = _band_path(primitive_cell, path, npoints)
    distances, special_distances, labels = band_path.get_linear_kpoint_axis()
    phonon.run_qpoints(band_path.kpts)
    frequencies = np.asarray(phonon.qpoints.frequencies)
    letters = _path_points(band_path.path)
    special_q = np.array([band_path.special_points[c] for c in letters])
    phonon.run_qpoints(special_q)
    at_special = np.asarray(phonon.qpoints.frequencies)
    return PhononBands(
        path=band_path.path,
        qpoints_fractional=np.asarray(band_path.kpts),
        distances_per_angstrom=np.asarray(distances),
        frequencies_thz=frequencies,
        special_distances_per_angstrom=np.asarray(special_distances),
        special_labels=[label.replace("G", "Γ") for label in labels],
        special_frequencies_thz={c: at_special[k] for k, c in enumerate(letters)},
        primitive_cell_angstrom=primitive_cell,
    )


def plot_bands(bands: PhononBands, output: str | Path, title: str = "") -> Path:
    """Write the band structure to an image file (PNG, …) with matplotlib's Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.0, 4.0), layout="constrained")
    axes = figure.add_subplot()
    x = bands.distances_per_angstrom
    # A new segment starts where the axis does not advance (ASE puts a path break there).
    breaks = np.flatnonzero(np.diff(x) <= 0) + 1
    for segment in np.split(np.arange(len(x)), breaks):
        axes.plot(x[segment], bands.frequencies_thz[segment], color="tab:blue", lw=1.2)
    for position in bands.special_distances_per_angstrom:
        axes.axvline(position, color="0.6", lw=0.6)
    axes.axhline(0.0, color="0.3", lw=0.6)
    axes.set_xticks(bands.special_distances_per_angstrom, bands.special_labels)
    axes.set_xlim(x[0], x[-1])
    axes.set_ylabel("Frequency (THz)")
    if title:
        axes.set_title(title)
    output = Path(output)
    figure.savefig(output, dpi=150)
    return output


def relax_cell(
    atoms: Atoms, calculator: Calculator, *, fmax_ev_per_angstrom: float = 1e-3, steps: int = 200
) -> Atoms:
    """Relax positions and cell (needs stress from ``calculator``); returns a copy."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    relaxed = atoms.copy()
    relaxed.calc = calculator
    optimizer = BFGS(FrechetCellFilter(relaxed), logfile=None)  # type: ignore[arg-type]
    if not optimizer.run(fmax=fmax_ev_per_angstrom, steps=steps):
        raise PhononSettingsError(
            f"cell relaxation did not reach fmax {fmax_ev_per_angstrom} eV/Å in {steps} steps"
        )
    relaxed.calc = None
    return relaxed
