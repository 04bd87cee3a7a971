"""Structures: stored once by content hash, with their labels, read back as records.

Functions take an open :class:`~sqlalchemy.orm.Session` (from
:func:`interphase.db.session.transaction`) so a caller decides what one
transaction covers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from sqlalchemy import Table, select, text
from sqlalchemy.orm import Session

from interphase.db import membership
from interphase.db.bulk import bulk_insert, encode_arrays
from interphase.db.labels import LABEL_ARRAYS, insert_labels, label_row
from interphase.db.models import Iteration, Label, MembershipRole, Structure
from interphase.records import LabelRecord, StructureRecord, formula, subset_key_of

#: Positions and cells are rounded to this many decimals (Å) before hashing, so
#: float noise from a text round trip does not make a "new" structure.
HASH_DECIMALS = 6

#: PostgreSQL advisory lock serialising structure inserts ("ipst" as a number).
STRUCTURE_INSERT_LOCK = 0x69707374

_STRUCTURE_ARRAYS = {"numbers": "<i2", "positions_angstrom": "<f8", "cell_angstrom": "<f8"}


def content_hash(record: StructureRecord) -> str:
    """SHA-256 of what makes a structure itself: atoms, geometry, cell, charge, spin."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(record.numbers, dtype="<i2").tobytes())
    positions = np.round(np.asarray(record.positions_angstrom, dtype="<f8"), HASH_DECIMALS) + 0.0
    digest.update(positions.tobytes())
    if record.cell_angstrom is not None and record.is_periodic:
        cell = np.round(np.asarray(record.cell_angstrom, dtype="<f8"), HASH_DECIMALS) + 0.0
        digest.update(cell.tobytes())
    digest.update(pbc_string(record.pbc).encode())
    digest.update(f"{int(record.charge)}|{int(record.multiplicity)}".encode())
    return digest.hexdigest()


def pbc_string(pbc: Sequence[bool] | np.ndarray) -> str:
    return "".join("p" if bool(p) else "n" for p in pbc)


def structure_row(
    record: StructureRecord,
    *,
    generator: str,
    generator_params: dict[str, Any] | None = None,
    seed: int | None = None,
    parent_id: int | None = None,
    campaign_id: int | None = None,
    iteration_id: int | None = None,
    content_hash_: str | None = None,
) -> dict[str, Any]:
    """Column values of a new :class:`Structure` row for ``record``."""
    numbers = np.asarray(record.numbers)
    formula_ = formula(numbers)
    return {
        "content_hash": content_hash_ or content_hash(record),
        "n_atoms": len(numbers),
        "formula": formula_,
        "subset_key": subset_key_of(formula_, len(numbers), record.pbc),
        "numbers": numbers,
        "positions_angstrom": np.asarray(record.positions_angstrom, dtype=float),
        "cell_angstrom": None if record.cell_angstrom is None else record.cell_angstrom,
        "pbc": pbc_string(record.pbc),
        "charge": int(record.charge),
        "multiplicity": int(record.multiplicity),
        "generator": generator,
        "generator_params": generator_params or {},
        "seed": seed,
        "parent_id": parent_id,
        "source_key": record.key,
        "campaign_id": campaign_id,
        "iteration_id": iteration_id,
    }


@dataclass
class StoreResult:
    """Ids of stored structures, in input order, and which of them were new."""

    ids: list[int]
    new: list[bool]


@dataclass
class PreparedStructures:
    """Insert-ready rows of a batch of records, built without a session (picklable).

    Arrays are already encoded to bytes, so handing a batch to another process
    costs little.
    """

    hashes: list[str]
    structure_rows: list[dict[str, Any]]
    #: Per record: (level name, label row without structure and level ids).
    label_rows: list[list[tuple[str, dict[str, Any]]]]


def prepare_structures(
    records: Sequence[StructureRecord],
    *,
    generator: str,
    generator_params: dict[str, Any] | None = None,
    seeds: Sequence[int | None] | None = None,
    parent_ids: Sequence[int | None] | None = None,
    campaign_id: int | None = None,
    iteration_id: int | None = None,
    with_labels: bool = True,
    label_provenance: dict[str, Any] | None = None,
    hashes: Sequence[str] | None = None,
) -> PreparedStructures:
    """Rows for :func:`insert_prepared`; see :func:`store_structures` for the arguments."""
    hashes = list(hashes) if hashes is not None else [content_hash(r) for r in records]
    structure_rows = [
        encode_arrays(
            structure_row(
                record,
                generator=generator,
                generator_params=generator_params,
                seed=None if seeds is None else seeds[i],
                parent_id=None if parent_ids is None else parent_ids[i],
                campaign_id=campaign_id,
                iteration_id=iteration_id,
                content_hash_=hashes[i],
            ),
            _STRUCTURE_ARRAYS,
        )
        for i, record in enumerate(records)
    ]
    provenance = label_provenance or {}
    label_rows = [
        [
            (name, encode_arrays(label_row(0, 0, label, provenance=provenance), LABEL_ARRAYS))
            for name, label in record.labels.items()
        ]
        if with_labels
        else []
        for record in records
    ]
    return PreparedStructures(hashes, structure_rows, label_rows)


def insert_prepared(session: Session, prepared: PreparedStructures) -> StoreResult:
    """Insert prepared rows, never storing a structure twice (see :func:`store_structures`).

    On PostgreSQL the transaction first takes an advisory lock (held until it
    ends): two transactions storing the same new structure (two campaigns
    generating at once) would otherwise both find it missing and the second
    would fail on the unique content hash. SQLite serialises writers anyway.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": STRUCTURE_INSERT_LOCK})
    hashes = prepared.hashes
    existing = dict(
        session.execute(
            select(Structure.content_hash, Structure.id).where(
                Structure.content_hash.in_(set(hashes))
            )
        ).all()
    )
    first_seen: dict[str, int] = {}
    rows = []
    for i, digest in enumerate(hashes):
        if digest not in existing and digest not in first_seen:
            first_seen[digest] = i
            rows.append(prepared.structure_rows[i])
    new_ids: dict[str, int] = {}
    if rows:
        # Core executemany (batched multi-row INSERTs) and one SELECT for the new ids:
        # much faster than ORM inserts with RETURNING, which SQLite runs row by row.
        bulk_insert(session, cast(Table, Structure.__table__), rows)
        new_ids = dict(
            session.execute(
                select(Structure.content_hash, Structure.id).where(
                    Structure.content_hash.in_(list(first_seen))
                )
            ).all()
        )
    ids = [existing.get(h) or new_ids[h] for h in hashes]
    new = [h in new_ids and first_seen[h] == i for i, h in enumerate(hashes)]
    insert_labels(session, prepared.label_rows, ids)
    return StoreResult(ids=ids, new=new)


def store_structures(
    session: Session,
    records: Sequence[StructureRecord],
    *,
    generator: str,
    generator_params: dict[str, Any] | None = None,
    seeds: Sequence[int | None] | None = None,
    parent_ids: Sequence[int | None] | None = None,
    campaign_id: int | None = None,
    iteration_id: int | None = None,
    with_labels: bool = True,
    label_provenance: dict[str, Any] | None = None,
    hashes: Sequence[str] | None = None,
    role: MembershipRole | None = None,
) -> StoreResult:
    """Insert ``records`` (and their labels) in bulk, never storing a structure twice.

    A structure whose content hash exists already keeps its row; labels at
    levels it lacks are added, labels it already has are left alone. ``hashes``
    may carry precomputed :func:`content_hash` values. With ``campaign_id`` and
    ``role`` every structure, new or not, joins the campaign in that role
    (``campaign_id`` alone is only the provenance of new rows).
    """
    prepared = prepare_structures(
        records,
        generator=generator,
        generator_params=generator_params,
        seeds=seeds,
        parent_ids=parent_ids,
        campaign_id=campaign_id,
        iteration_id=iteration_id,
        with_labels=with_labels,
        label_provenance=label_provenance,
        hashes=hashes,
    )
    result = insert_prepared(session, prepared)
    if campaign_id is not None and role is not None:
        index = 0
        if iteration_id is not None:
            index = session.get_one(Iteration, iteration_id).index
        membership.join(session, campaign_id, result.ids, role, index)
    return result


def record_from_row(structure: Structure, labels: Iterable[Label] = ()) -> StructureRecord:
    """The plain record of a stored structure (labels keyed by level name)."""
    return StructureRecord(
        numbers=np.asarray(structure.numbers, dtype=int),
        positions_angstrom=structure.positions_angstrom,
        cell_angstrom=structure.cell_angstrom,
        pbc=structure.pbc_flags,
        charge=structure.charge,
        multiplicity=structure.multiplicity,
        labels={
            label.level.name: LabelRecord(
                level=label.level.name,
                total_energy_hartree=label.total_energy_hartree,
                atomization_energy_hartree=label.atomization_energy_hartree,
                gradient_hartree_per_angstrom=label.gradient_hartree_per_angstrom,
                dipole_e_angstrom=label.dipole_e_angstrom,
                charges_e=label.charges_e,
                provenance=dict(label.provenance),
            )
            for label in labels
        },
        key=structure.source_key if structure.source_key is not None else str(structure.id),
    )


def iter_records(
    session: Session,
    *,
    batch_size: int = 1000,
    campaign_id: int | None = None,
    labeled_only: bool = False,
) -> Iterator[StructureRecord]:
    """Every stored structure with its labels, in id order, a batch at a time.

    ``campaign_id`` keeps one campaign's structures; ``labeled_only`` leaves out
    structures without a reference label (candidates, synthetic copies).
    """
    last_id = 0
    while True:
        query = select(Structure).where(Structure.id > last_id)
        if campaign_id is not None:
            query = query.where(membership.holds(campaign_id))
        if labeled_only:
            query = query.where(Structure.id.in_(select(Label.structure_id)))
        batch = session.scalars(query.order_by(Structure.id).limit(batch_size)).all()
        if not batch:
            return
        ids = [s.id for s in batch]
        by_structure: dict[int, list[Label]] = {i: [] for i in ids}
        for label in session.scalars(select(Label).where(Label.structure_id.in_(ids))):
            by_structure[label.structure_id].append(label)
        for structure in batch:
            yield record_from_row(structure, by_structure[structure.id])
        last_id = ids[-1]
        session.expunge_all()


def lineage(session: Session, structure_id: int) -> list[Structure]:
    """The structure and its ancestors, child first."""
    chain: list[Structure] = []
    current = session.get(Structure, structure_id)
    while current is not None:
        chain.append(current)
        current = session.get(Structure, current.parent_id) if current.parent_id else None
    return chain
