"""Single-point calculations on a structure file (``interphase calc``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms

from interphase.labeling.engines import get_engine
from interphase.labeling.engines.contract import Calculation
from interphase.labeling.levels import DEFAULT_LEVELS
from interphase.records import LabelRecord, StructureRecord
from interphase.structures.validate import validate_structure


class CalcRequestError(ValueError):
    """The calculation request is incomplete or contradictory."""


class StructureFileError(ValueError):
    """A structure file cannot be read: empty, truncated, a directory, an unknown element …"""


def read_structure(
    path: str | Path, *, charge: int = 0, multiplicity: int | None = None
) -> StructureRecord:
    """Read the first structure of any file ASE understands into a record.

    The multiplicity defaults to the lowest one the electron count allows
    (singlet for even, doublet for odd electron counts).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    StructureFileError
        ``path`` is a directory, empty, or not a structure ASE can read.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"structure file {path} does not exist")
    atoms = _first_structure(path)
    periodic = bool(atoms.pbc.any())
    n_electrons = int(atoms.numbers.sum()) - charge
    record = StructureRecord(
        numbers=atoms.numbers.copy(),
        positions_angstrom=atoms.positions.copy(),
        cell_angstrom=np.array(atoms.cell) if periodic else None,
        pbc=(bool(atoms.pbc[0]), bool(atoms.pbc[1]), bool(atoms.pbc[2])),
        charge=charge,
        multiplicity=multiplicity if multiplicity is not None else 1 + n_electrons % 2,
        key=path.name,
    )
    validate_structure(record)
    return record


def _first_structure(path: Path) -> Atoms:
    from ase.io import read
    from ase.io.formats import UnknownFileTypeError

    if path.is_dir():
        raise StructureFileError(f"{path} is a directory; give one structure file (xyz, cif, …)")
    if path.stat().st_size == 0:
        raise StructureFileError(f"structure file {path} is empty")
    try:
        atoms = read(path, index=0)
    except KeyError as exc:
        raise StructureFileError(
            f"structure file {path} names an unknown element {exc.args[0]!r}"
            " (expected a symbol such as H, Li, C, O)"
        ) from None
    except UnicodeDecodeError:
        raise StructureFileError(f"structure file {path} is not a text file ASE can read") from None
    except (UnknownFileTypeError, ValueError, IndexError, OSError, RuntimeError) as exc:
        raise StructureFileError(
            f"cannot read structure file {path} (truncated, or not a format ASE knows?): {exc}"
        ) from None
    if not isinstance(atoms, Atoms) or len(atoms) == 0:
        raise StructureFileError(f"structure file {path} holds no atoms")
    return atoms


def resolve_calculation(
    level: str | None, engine: str | None, method: str | None, basis: str | None
) -> tuple[str, str, Calculation]:
    """(level name, engine name, calculation) from ``--level`` or ``--engine/--method``."""
    if level is not None:
        if engine or method or basis:
            raise CalcRequestError("give either --level or --engine/--method/--basis, not both")
        if level not in DEFAULT_LEVELS:
            raise CalcRequestError(
                f"unknown level {level!r}; known levels: {', '.join(DEFAULT_LEVELS)}"
            )
        spec = DEFAULT_LEVELS[level]
        return level, spec.engine, Calculation(spec.method, spec.basis, dict(spec.settings))
    if engine is None or method is None:
        raise CalcRequestError("give --level, or --engine together with --method (and --basis)")
    name = f"{method}_{basis}" if basis else method
    return name, engine, Calculation(method, basis)


def single_point(
    path: str | Path,
    *,
    level: str | None = None,
    engine: str | None = None,
    method: str | None = None,
    basis: str | None = None,
    charge: int = 0,
    multiplicity: int | None = None,
) -> LabelRecord:
    """Energy (Hartree), gradient (Hartree/Å) and, where available, charges and dipole."""
    level_name, engine_name, calculation = resolve_calculation(level, engine, method, basis)
    structure = read_structure(path, charge=charge, multiplicity=multiplicity)
    label = get_engine(engine_name).compute(structure, calculation)
    label.level = level_name
    return label
