"""aenet-style XSF files: one structure and one level of theory per file.

The GPR-ANN data (and aenet's ``generate.x``) use XCrySDen structure files
with the total energy in a leading comment::

    # total energy = -2043.8571932 eV

    CRYSTAL                      (or ATOMS for a molecule, no cell blocks)
    PRIMVEC
      3.49 0.00 0.00             lattice vectors as rows, Å
      ...
    PRIMCOORD
      2 1
    Li  0.0 0.0 0.0  fx fy fz    Å and eV/Å: *forces* = minus the gradient
    ...

Units are converted with ``interphase.units.HARTREE_TO_EV`` (ASE's ``Hartree``):
energy_eV = energy_hartree * HARTREE_TO_EV, force_eV_per_angstrom =
-gradient_hartree_per_angstrom * HARTREE_TO_EV.
Floats are written with ``repr``; the eV <-> Hartree conversion itself may
change the last bit, so a round trip is exact to ~2 ulp (relative 1e-15).

What XSF cannot hold: charge, multiplicity, key, dipole, charges, other
levels. The writer names each file after ``record.key`` (characters outside
``[A-Za-z0-9._-]`` replaced by ``_``, a leading ``.`` or an empty key
prefixed with ``_``, cut to 200 characters) or the running index; the reader sets
``key`` to the file stem, ``charge`` 0 and the lowest multiplicity that fits
the electron count of a neutral molecule (1 or 2; 1 for periodic cells).
A structure without an energy is written without the comment and read back
with ``total_energy_hartree=None``; atoms without force columns give
``gradient=None``. ASE's XSF reader is not used because it ignores the
energy comment and does not return forces.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from interphase.io.errors import DatasetFormatError, EntryProblem, OnUnwritable, text_or_report
from interphase.records import LabelRecord, StructureRecord
from interphase.units import HARTREE_TO_EV

__all__ = ["format_xsf", "iter_xsf", "iter_xsf_entries", "parse_xsf", "write_xsf", "xsf_file_stem"]

_ENERGY_COMMENT = re.compile(r"total\s+energy\s*=\s*(\S+)\s*(\S*)", re.IGNORECASE)
_PERIODIC_KEYWORDS = {
    "CRYSTAL": (True, True, True),
    "SLAB": (True, True, False),
    "POLYMER": (True, False, False),
}
_KEYWORDS = {
    *_PERIODIC_KEYWORDS,
    "PRIMVEC",
    "CONVVEC",
    "PRIMCOORD",
    "ATOMS",
    "ANIMSTEPS",
    "MOLECULE",
}
_KEYWORD_OF_PBC = {pbc: keyword for keyword, pbc in _PERIODIC_KEYWORDS.items()}
_SAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")
#: Longest file stem written (file names are limited to 255 bytes).
MAX_STEM_CHARS = 200


# --------------------------------------------------------------------------- writing


def write_xsf(
    records: Iterable[StructureRecord],
    directory: str | Path,
    level: str,
    *,
    on_unwritable: OnUnwritable | None = None,
) -> int:
    """Write one ``<key>.xsf`` file per record with the energy and forces of ``level``.

    Parameters
    ----------
    records
        Structures with a label at ``level``.
    directory
        Output folder, created if needed.
    level
        Level of theory whose energy and gradient are written.
    on_unwritable
        When given, a record that cannot be written is passed to it and left
        out instead of raising.

    Returns
    -------
    int
        Number of files written.

    Raises
    ------
    DatasetFormatError
        Two records mapping to the same file name, or (without
        ``on_unwritable``) a record without a label at ``level`` or a partly
        periodic cell XSF cannot express.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written: set[str] = set()
    for index, record in enumerate(records):
        name = xsf_file_stem(record.key) if record.key is not None else str(index)
        if name in written:
            raise DatasetFormatError(f"file name {name}.xsf is already used", record.key)
        text = text_or_report(partial(format_xsf, level=level), record, on_unwritable)
        if text is None:
            continue
        written.add(name)
        (directory / f"{name}.xsf").write_text(text, encoding="utf-8")
    return len(written)


def xsf_file_stem(key: str) -> str:
    """The file stem of an entry key: characters outside ``[A-Za-z0-9._-]`` become ``_``.

    Stems are cut to 200 characters (file names have a limit of 255 bytes).
    """
    stem = _SAFE_FILENAME.sub("_", key)[:MAX_STEM_CHARS]
    return "_" + stem if stem.startswith(".") or not stem else stem


def format_xsf(record: StructureRecord, level: str) -> str:
    """aenet XSF text of one record at one level (energy in eV, forces in eV/Å)."""
    label = record.labels.get(level)
    if label is None:
        raise DatasetFormatError(
            f"has no label at level {level!r} (has {sorted(record.labels)})", record.key
        )
    lines = []
    if label.total_energy_hartree is not None:
        lines += [f"# total energy = {label.total_energy_hartree * HARTREE_TO_EV!r} eV", ""]
    atom_lines = _atom_lines(record, label)
    if record.is_periodic:
        keyword = _KEYWORD_OF_PBC.get(record.pbc)
        if keyword is None or record.cell_angstrom is None:
            raise DatasetFormatError(
                f"XSF cannot hold pbc={record.pbc} with cell"
                f" {'missing' if record.cell_angstrom is None else 'given'}",
                record.key,
            )
        lines += [keyword, "PRIMVEC"]
        for vector in np.asarray(record.cell_angstrom, dtype=float).tolist():
            lines.append(" ".join(map(repr, vector)))
        lines += ["PRIMCOORD", f"{record.n_atoms} 1", *atom_lines]
    else:
        lines += ["ATOMS", *atom_lines]
    return "\n".join(lines) + "\n"


def _atom_lines(record: StructureRecord, label: LabelRecord) -> list[str]:
    positions = np.asarray(record.positions_angstrom, dtype=float).tolist()
    symbols = record.symbols
    if label.gradient_hartree_per_angstrom is None:
        return [f"{s} {' '.join(map(repr, p))}" for s, p in zip(symbols, positions, strict=True)]
    forces = (
        -np.asarray(label.gradient_hartree_per_angstrom, dtype=float) * HARTREE_TO_EV
    ).tolist()
    return [
        f"{s} {' '.join(map(repr, p))} {' '.join(map(repr, f))}"
        for s, p, f in zip(symbols, positions, forces, strict=True)
    ]


# --------------------------------------------------------------------------- reading


def iter_xsf(paths: str | Path | Iterable[str | Path], level: str) -> Iterator[StructureRecord]:
    """Read XSF files, one structure each, labelled at ``level``.

    Parameters
    ----------
    paths
        A directory (all ``*.xsf`` in it, numeric stems in numeric order),
        one file, or an iterable of files.
    level
        Level-of-theory key given to the energy and forces.

    Yields
    ------
    StructureRecord
        With ``key`` = file stem and one label at ``level``.

    Raises
    ------
    DatasetFormatError
        Naming the file (as ``key``) and the line at fault.
    """
    for entry in iter_xsf_entries(paths, level):
        if isinstance(entry, EntryProblem):
            raise entry.error()
        yield entry


def iter_xsf_entries(
    paths: str | Path | Iterable[str | Path], level: str
) -> Iterator[StructureRecord | EntryProblem]:
    """Like :func:`iter_xsf`, but a file that cannot be parsed is yielded as a problem.

    Each file is one entry: binary or non-UTF-8 content and every parse error
    are problems of that file. A directory without ``.xsf`` files raises
    :class:`DatasetFormatError`; a file that cannot be opened raises ``OSError``.
    """
    for path in _expand(paths):
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            yield EntryProblem(
                path.stem,
                f"file {path.name} is not a text XSF file (byte 0x{data[exc.start]:02x} on line"
                f" {line} is not UTF-8)",
                path.stem,
            )
            continue
        try:
            yield parse_xsf(text, level, key=path.stem)
        except DatasetFormatError as error:
            yield EntryProblem(path.stem, f"file {path.name}: {error.problem}", path.stem)


def _expand(paths: str | Path | Iterable[str | Path]) -> Iterator[Path]:
    if isinstance(paths, str | Path):
        path = Path(paths)
        if path.is_dir():
            files = sorted(
                path.glob("*.xsf"), key=lambda p: (not p.stem.isdigit(), _natural(p.stem))
            )
            if not files:
                raise DatasetFormatError(f"directory {path} holds no .xsf files")
            yield from files
        else:
            yield path
    else:
        for item in paths:
            yield Path(item)


def _natural(stem: str) -> tuple[int, str]:
    return (int(stem), "") if stem.isdigit() else (0, stem)


def parse_xsf(text: str, level: str, *, key: str | None = None) -> StructureRecord:
    """Parse the text of one aenet XSF file (see the module docstring)."""
    parser = _XsfParser(text, key)
    return parser.record(level)


class _XsfParser:
    """Line-oriented parser of a single-structure XSF file."""

    def __init__(self, text: str, key: str | None) -> None:
        self.key = key
        self.energy_ev: float | None = None
        self.pbc: tuple[bool, bool, bool] = (False, False, False)
        self.cell: list[list[float]] | None = None
        self.atoms: list[tuple[int, list[float]]] = []
        self.lines = [
            (number, line.split("#", 1)[0].strip(), line)
            for number, line in enumerate(text.splitlines(), start=1)
        ]
        self.position = 0
        self._parse()

    def fail(self, number: int, problem: str) -> DatasetFormatError:
        return DatasetFormatError(f"line {number}: {problem}", self.key)

    def _next(self, what: str) -> tuple[int, str]:
        while self.position < len(self.lines):
            number, content, _ = self.lines[self.position]
            self.position += 1
            if content:
                return number, content
        raise DatasetFormatError(f"unexpected end of file, expected {what}", self.key)

    def _parse(self) -> None:
        for number, _, raw in self.lines:
            match = _ENERGY_COMMENT.search(raw) if raw.lstrip().startswith("#") else None
            if match is not None:
                self.energy_ev = self._energy(number, *match.groups())
        while self.position < len(self.lines):
            number, content, _ = self.lines[self.position]
            self.position += 1
            if not content:
                continue
            keyword = content.split()[0].upper()
            if keyword in _PERIODIC_KEYWORDS:
                self.pbc = _PERIODIC_KEYWORDS[keyword]
            elif keyword in ("PRIMVEC", "CONVVEC"):
                vectors = [self._floats(*self._next("a lattice vector"), 3) for _ in range(3)]
                if keyword == "PRIMVEC":
                    self.cell = vectors
            elif keyword == "PRIMCOORD":
                count_line, count_text = self._next("the atom count")
                n_atoms = self._count(count_line, count_text)
                for _ in range(n_atoms):
                    self.atoms.append(self._atom(*self._next("an atom line")))
            elif keyword == "ATOMS":
                self._atoms_block()
            elif keyword in ("ANIMSTEPS", "MOLECULE"):
                raise self.fail(number, f"{keyword} is not supported (one structure per file)")
            else:
                raise self.fail(number, f"unexpected {content!r}")

    def _atoms_block(self) -> None:
        while self.position < len(self.lines):
            number, content, _ = self.lines[self.position]
            if content and content.split()[0].upper() in _KEYWORDS:
                return
            self.position += 1
            if content:
                self.atoms.append(self._atom(number, content))

    def _energy(self, number: int, value: str, unit: str) -> float:
        if unit and unit.lower() != "ev":
            raise self.fail(number, f"total energy unit must be eV, got {unit!r}")
        try:
            return float(value)
        except ValueError:
            raise self.fail(number, f"total energy {value!r} is not a number") from None

    def _count(self, number: int, text: str) -> int:
        try:
            return int(text.split()[0])
        except ValueError:
            raise self.fail(number, f"expected the atom count, got {text!r}") from None

    def _floats(self, number: int, text: str, count: int) -> list[float]:
        fields = text.split()
        if len(fields) != count:
            raise self.fail(number, f"expected {count} numbers, got {text!r}")
        try:
            return [float(field) for field in fields]
        except ValueError:
            raise self.fail(number, f"expected numbers, got {text!r}") from None

    def _atom(self, number: int, text: str) -> tuple[int, list[float]]:
        fields = text.split()
        if len(fields) not in (4, 7):
            raise self.fail(number, f"atom line needs 'symbol x y z [fx fy fz]', got {text!r}")
        element = fields[0]
        if element.isdigit() and 1 <= int(element) < len(chemical_symbols):
            z = int(element)
        elif element in atomic_numbers and element != "X":
            z = atomic_numbers[element]
        else:
            raise self.fail(number, f"unknown element {element!r}")
        return z, self._floats(number, " ".join(fields[1:]), len(fields) - 1)

    def record(self, level: str) -> StructureRecord:
        if not self.atoms:
            raise DatasetFormatError("no atoms found (need an ATOMS or PRIMCOORD block)", self.key)
        if any(self.pbc) and self.cell is None:
            raise DatasetFormatError("periodic structure without PRIMVEC", self.key)
        widths = {len(values) for _, values in self.atoms}
        if len(widths) > 1:
            raise DatasetFormatError("some atom lines have forces and others not", self.key)
        numbers = np.array([z for z, _ in self.atoms], dtype=np.int64)
        values = np.array([v for _, v in self.atoms], dtype=float)
        label = LabelRecord(level=level)
        if self.energy_ev is not None:
            label.total_energy_hartree = self.energy_ev / HARTREE_TO_EV
        if values.shape[1] == 6:
            label.gradient_hartree_per_angstrom = -values[:, 3:] / HARTREE_TO_EV
        periodic = any(self.pbc)
        n_electrons = int(numbers.sum())
        return StructureRecord(
            numbers=numbers,
            positions_angstrom=values[:, :3].copy(),
            cell_angstrom=np.array(self.cell, dtype=float) if periodic else None,
            pbc=self.pbc,
            charge=0,
            multiplicity=1 if periodic else 1 + n_electrons % 2,
            labels={level: label},
            key=self.key,
        )
