"""Geometry and consistency checks for :class:`~interphase.records.StructureRecord`.

Every structure that enters the platform (dataset import, AFIR sampling, MD
snapshots) goes through :func:`validate_structure`. The checks are cheap and
vectorised so that validation never limits import throughput: a 20-atom
molecule takes a few tens of microseconds, a 54-atom periodic Li cell well
under a millisecond.

Checks, in order (the first failure raises :class:`InvalidStructureError`
whose ``reason`` is given in brackets):

1. array shapes: ``numbers`` (N,) integers, ``positions_angstrom`` (N, 3),
   N >= 1 [``shape``];
2. finite positions and cell [``non_finite``];
3. atomic numbers in 1..118 [``unknown_element``] and supported by the
   platform, Z <= 86 (GFN2-xTB's range) [``unsupported_element``];
4. periodic structures have a finite 3x3 non-singular cell [``cell``];
5. label arrays match the atom count and are finite [``label_shape``,
   ``label_non_finite``];
6. non-periodic only: charge and multiplicity agree with the electron count
   [``electron_count``];
7. no two atoms (for periodic cells: no two minimum images, including an
   atom and its own periodic image) closer than
   ``min_distance_fraction * (r_cov_i + r_cov_j)`` [``too_close``];
8. optional, non-periodic only: the cluster is one piece [``fragments``].

Fragment rule: two atoms are *in contact* when the gap between their
covalent spheres, ``d_ij - (r_cov_i + r_cov_j)``, is at most
``max_fragment_gap_angstrom``. The structure fails when the contact graph
has more than one connected component, i.e. some group of atoms is further
than that gap from everything else (single-linkage clustering). A bonded pair
has a gap near 0 (bonds sit below 1.3x the covalent sum, a gap of at most
~0.9 Å for C-C), van der Waals contacts in liquid clusters have gaps of
1-2.5 Å; the default 4 Å only trips on molecules that have flown apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase.data import chemical_symbols, covalent_radii

from interphase.records import LabelRecord, StructureRecord
from interphase.structures.distances import (
    close_pairs,
    dense_fragment_labels,
    dense_squared_distances,
    sparse_fragment_labels,
)

#: Largest atomic number that is an element (Og).
MAX_ATOMIC_NUMBER = 118
#: Largest atomic number the platform supports: GFN2-xTB, which labels every
#: molecular structure (charges, pre-screening), is parameterised for H..Rn.
MAX_SUPPORTED_ATOMIC_NUMBER = 86

#: Above this many atoms the O(N^2) dense distance matrix is replaced by
#: neighbour search (cKDTree / ASE neighbour list).
DENSE_DISTANCE_MAX_ATOMS = 1000

_COVALENT_RADII_ANGSTROM = np.asarray(covalent_radii, dtype=float)


class InvalidStructureError(ValueError):
    """A structure or one of its labels is physically or formally inconsistent.

    Parameters
    ----------
    reason
        Short machine-readable cause, e.g. ``"too_close"``, ``"non_finite"``,
        ``"electron_count"`` (see the module docstring for the full list).
    message
        Human-readable explanation naming the atoms / label at fault.
    key
        Dataset key of the structure, if known; prefixed to the message.
    """

    def __init__(self, reason: str, message: str, key: str | None = None) -> None:
        self.reason = reason
        self.key = key
        prefix = f"structure {key!r}: " if key is not None else ""
        super().__init__(prefix + message)


def validate_structure(
    record: StructureRecord,
    *,
    min_distance_fraction: float = 0.5,
    check_fragments: bool = False,
    max_fragment_gap_angstrom: float = 4.0,
) -> None:
    """Raise :class:`InvalidStructureError` if ``record`` is not a sane structure.

    Parameters
    ----------
    record
        The structure with its labels.
    min_distance_fraction
        Two atoms closer than this fraction of the sum of their covalent
        radii (``ase.data.covalent_radii``) are rejected as overlapping.
    check_fragments
        Also reject non-periodic structures that fall apart into fragments
        (see the module docstring for the rule). Ignored for periodic cells.
    max_fragment_gap_angstrom
        Largest allowed gap between covalent spheres that still joins two
        atoms into one fragment.

    Raises
    ------
    InvalidStructureError
        With ``reason`` naming the failed check and a message naming the
        structure key and the atoms or label at fault.
    """
    key = record.key
    numbers, positions = _checked_arrays(record)
    cell = _checked_cell(record) if record.is_periodic else None
    n_atoms = len(numbers)
    for label in record.labels.values():
        validate_label_shapes(label, n_atoms, key=key)
    if cell is None:
        check_electron_count(numbers, record.charge, record.multiplicity, key=key)
    radii = _COVALENT_RADII_ANGSTROM[numbers]
    d2 = _check_min_distance(
        positions, cell, record.pbc, numbers, radii, min_distance_fraction, key
    )
    if check_fragments and cell is None and n_atoms > 1:
        _check_fragments(positions, d2, radii, max_fragment_gap_angstrom, key)


def validate_symbols(
    numbers: np.ndarray, symbols: Sequence[str], *, key: str | None = None
) -> None:
    """Check that element ``symbols`` spell the same elements as ``numbers``.

    Raises
    ------
    InvalidStructureError
        ``reason="shape"`` for different lengths, ``"unknown_element"`` for a
        symbol that is not an element, ``"symbol_mismatch"`` otherwise.
    """
    if len(symbols) != len(numbers):
        raise InvalidStructureError(
            "shape", f"{len(symbols)} element symbols for {len(numbers)} atomic numbers", key
        )
    z_list = np.asarray(numbers).tolist()
    if not z_list:
        return
    if (
        min(z_list) >= 1
        and max(z_list) <= MAX_ATOMIC_NUMBER
        and [chemical_symbols[z] for z in z_list] == list(symbols)
    ):
        return
    for index, (z, symbol) in enumerate(zip(z_list, symbols, strict=True)):
        if 1 <= z <= MAX_ATOMIC_NUMBER and chemical_symbols[z] == symbol:
            continue
        if symbol not in chemical_symbols[1 : MAX_ATOMIC_NUMBER + 1]:
            raise InvalidStructureError(
                "unknown_element", f"atom {index}: {symbol!r} is not an element symbol", key
            )
        raise InvalidStructureError(
            "symbol_mismatch",
            f"atom {index}: element {symbol!r} does not match atomic number {z}"
            f" (Z={chemical_symbols.index(symbol)} for {symbol})",
            key,
        )


def validate_label_shapes(label: LabelRecord, n_atoms: int, *, key: str | None = None) -> None:
    """Check the array shapes and finiteness of one label against the atom count.

    Parameters
    ----------
    label
        The label to check; ``None`` fields are skipped.
    n_atoms
        Number of atoms of the structure the label belongs to.
    key
        Dataset key of the structure, for the error message.

    Raises
    ------
    InvalidStructureError
        ``reason="label_shape"`` or ``"label_non_finite"``.
    """
    expected = {
        "gradient_hartree_per_angstrom": (n_atoms, 3),
        "charges_e": (n_atoms,),
        "dipole_e_angstrom": (3,),
    }
    for name, shape in expected.items():
        value = getattr(label, name)
        if value is None:
            continue
        array = np.asarray(value)
        if array.shape != shape:
            raise InvalidStructureError(
                "label_shape",
                f"label {label.level!r}: {name} has shape {array.shape}, expected {shape}",
                key,
            )
        if array.dtype.kind not in "fiu" or not np.isfinite(array).all():
            raise InvalidStructureError(
                "label_non_finite", f"label {label.level!r}: {name} is not all finite", key
            )
    for name in ("total_energy_hartree", "atomization_energy_hartree"):
        energy = getattr(label, name)
        if energy is not None and not np.isfinite(energy):
            raise InvalidStructureError(
                "label_non_finite", f"label {label.level!r}: {name} is {energy}", key
            )


def check_electron_count(
    numbers: np.ndarray, charge: int, multiplicity: int, *, key: str | None = None
) -> None:
    """Check that charge and spin multiplicity fit the number of electrons.

    With ``n_e = sum(Z) - charge``: ``n_e >= 0``, ``multiplicity >= 1``,
    ``multiplicity - 1 <= n_e`` and ``n_e + multiplicity - 1`` even (the
    number of unpaired electrons has the parity of ``n_e``).

    Raises
    ------
    InvalidStructureError
        ``reason="electron_count"``.
    """
    n_electrons = int(numbers.sum()) - int(charge)
    problem = None
    if n_electrons < 0:
        problem = "a negative electron count"
    elif multiplicity < 1:
        problem = "a multiplicity below 1"
    elif multiplicity - 1 > n_electrons:
        problem = "more unpaired electrons than electrons"
    elif (n_electrons + multiplicity - 1) % 2:
        parity = "odd" if n_electrons % 2 else "even"
        problem = f"an {parity} electron count, which needs an {_other(parity)} multiplicity"
    if problem is not None:
        raise InvalidStructureError(
            "electron_count",
            f"charge {charge} and multiplicity {multiplicity} give {n_electrons} electrons,"
            f" {problem}",
            key,
        )


def _other(parity: str) -> str:
    return "even" if parity == "odd" else "odd"


def _checked_arrays(record: StructureRecord) -> tuple[np.ndarray, np.ndarray]:
    key = record.key
    numbers = np.asarray(record.numbers)
    positions = np.asarray(record.positions_angstrom)
    if numbers.ndim != 1 or numbers.dtype.kind not in "iu":
        raise InvalidStructureError(
            "shape",
            f"numbers must be a 1-D integer array, got {numbers.dtype} {numbers.shape}",
            key,
        )
    if len(numbers) == 0:
        raise InvalidStructureError("shape", "structure has no atoms", key)
    if positions.shape != (len(numbers), 3):
        raise InvalidStructureError(
            "shape",
            f"positions_angstrom has shape {positions.shape} for {len(numbers)} atomic numbers",
            key,
        )
    if positions.dtype.kind not in "fiu" or not np.isfinite(positions).all():
        bad = np.flatnonzero(~np.isfinite(positions).all(axis=1))
        raise InvalidStructureError(
            "non_finite", f"positions of atoms {bad.tolist()} are not finite", key
        )
    if numbers.min() < 1 or numbers.max() > MAX_ATOMIC_NUMBER:
        bad_z = numbers[(numbers < 1) | (numbers > MAX_ATOMIC_NUMBER)]
        raise InvalidStructureError(
            "unknown_element",
            f"atomic numbers {sorted(set(bad_z.tolist()))} are outside 1..{MAX_ATOMIC_NUMBER}",
            key,
        )
    if numbers.max() > MAX_SUPPORTED_ATOMIC_NUMBER:
        unsupported = sorted(
            {chemical_symbols[z] for z in numbers.tolist() if z > MAX_SUPPORTED_ATOMIC_NUMBER}
        )
        raise InvalidStructureError(
            "unsupported_element",
            f"elements {unsupported} are not supported: GFN2-xTB, which labels every structure, "
            f"covers H..Rn (Z <= {MAX_SUPPORTED_ATOMIC_NUMBER})",
            key,
        )
    return numbers, positions.astype(float, copy=False)


def _checked_cell(record: StructureRecord) -> np.ndarray:
    key = record.key
    if record.cell_angstrom is None:
        raise InvalidStructureError("cell", f"periodic (pbc={record.pbc}) but has no cell", key)
    cell = np.asarray(record.cell_angstrom, dtype=float)
    if cell.shape != (3, 3):
        raise InvalidStructureError("cell", f"cell has shape {cell.shape}, expected (3, 3)", key)
    if not np.isfinite(cell).all():
        raise InvalidStructureError("non_finite", "cell is not finite", key)
    lengths = np.linalg.norm(cell, axis=1)
    # Relative test: |det| / (|a||b||c|) is the sine-like "volume fraction".
    if not np.all(lengths > 0) or abs(np.linalg.det(cell)) <= 1e-8 * lengths.prod():
        raise InvalidStructureError("cell", f"cell is singular: {cell.tolist()}", key)
    return cell


def _check_min_distance(
    positions: np.ndarray,
    cell: np.ndarray | None,
    pbc: tuple[bool, bool, bool],
    numbers: np.ndarray,
    radii: np.ndarray,
    fraction: float,
    key: str | None,
) -> np.ndarray | None:
    """Raise if two atoms overlap; return the dense squared distances if computed."""
    n_atoms = len(numbers)
    if n_atoms > DENSE_DISTANCE_MAX_ATOMS:
        cutoff = fraction * 2.0 * float(radii.max())
        i, j, dist = close_pairs(positions, cell, pbc, cutoff)
        ratio = dist / (radii[i] + radii[j])
        if len(ratio) and ratio.min() < fraction:
            # Closest pair first, then the lowest atom indices: the same pair
            # whatever order the neighbour list gives.
            worst = int(np.lexsort((j, i, ratio))[0])
            _raise_too_close(
                int(i[worst]), int(j[worst]), float(dist[worst]), numbers, fraction, key
            )
        return None
    if n_atoms == 1 and cell is None:
        return None
    d2 = dense_squared_distances(positions, cell, pbc, fraction * 2.0 * float(radii.max()))
    limit = fraction * (radii[:, None] + radii[None, :])
    if (d2 < limit * limit).any():
        distance = np.sqrt(np.maximum(d2, 0.0))
        ratio = distance / (radii[:, None] + radii[None, :])
        first, second = np.unravel_index(int(np.argmin(ratio)), ratio.shape)
        _raise_too_close(
            int(first), int(second), float(distance[first, second]), numbers, fraction, key
        )
    return d2


def _raise_too_close(
    i: int, j: int, dist: float, numbers: np.ndarray, fraction: float, key: str | None
) -> None:
    zi, zj = int(numbers[i]), int(numbers[j])
    radius_sum = float(_COVALENT_RADII_ANGSTROM[zi] + _COVALENT_RADII_ANGSTROM[zj])
    what = (
        f"atom {i} ({chemical_symbols[zi]}) and its own periodic image"
        if i == j
        else (f"atoms {i} ({chemical_symbols[zi]}) and {j} ({chemical_symbols[zj]})")
    )
    raise InvalidStructureError(
        "too_close",
        f"{what} are {dist:.3f} Å apart, closer than {fraction} x covalent-radius sum"
        f" {radius_sum:.3f} Å = {fraction * radius_sum:.3f} Å",
        key,
    )


def _check_fragments(
    positions: np.ndarray,
    d2: np.ndarray | None,
    radii: np.ndarray,
    max_gap_angstrom: float,
    key: str | None,
) -> None:
    if d2 is None:
        labels = sparse_fragment_labels(positions, radii, max_gap_angstrom)
    else:
        # gap <= max  <=>  d^2 <= (r_i + r_j + max)^2; the inf diagonal is handled
        # by the identity added in dense_fragment_labels.
        reach = radii[:, None] + radii[None, :] + max_gap_angstrom
        labels = dense_fragment_labels(d2 <= reach * reach)
    sizes = np.unique(labels, return_counts=True)[1]
    if len(sizes) > 1:
        raise InvalidStructureError(
            "fragments",
            f"structure falls apart into {len(sizes)} fragments of {sorted(sizes.tolist())}"
            f" atoms: no contact within a covalent-sphere gap of {max_gap_angstrom} Å joins them",
            key,
        )
