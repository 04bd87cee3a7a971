"""The small API through which the rest of interphase reads and writes the database.

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
import orjson
from sqlalchemy import JSON, Table, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from interphase.db import membership
from interphase.db.models import (
    Iteration,
    Label,
    LabelingJob,
    LevelOfTheory,
    MembershipRole,
    Structure,
)
from interphase.labeling.levels import DEFAULT_LEVELS
from interphase.labeling.settings import validate_job_settings
from interphase.records import LabelRecord, StructureRecord, formula, subset_key_of

#: Positions and cells are rounded to this many decimals (Å) before hashing, so
#: float noise from a text round trip does not make a "new" structure.
HASH_DECIMALS = 6


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


def label_row(
    structure_id: int,
    level_id: int,
    label: LabelRecord,
    *,
    job_id: int | None = None,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Column values of a new :class:`Label` row (``provenance`` adds to the label's own)."""
    return {
        "structure_id": structure_id,
        "level_id": level_id,
        "job_id": job_id,
        "total_energy_hartree": label.total_energy_hartree,
        "atomization_energy_hartree": label.atomization_energy_hartree,
        "gradient_hartree_per_angstrom": label.gradient_hartree_per_angstrom,
        "charges_e": label.charges_e,
        "dipole_e_angstrom": label.dipole_e_angstrom,
        "provenance": {**(provenance or {}), **label.provenance},
    }


class LevelCache:
    """Maps level names to ids within one session, creating unknown levels once."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._ids = {
            name: id_ for id_, name in session.execute(select(LevelOfTheory.id, LevelOfTheory.name))
        }

    def id(self, name: str) -> int:
        if name not in self._ids:
            self._ids[name] = get_or_create_level(self.session, name).id
        return self._ids[name]


def get_or_create_level(session: Session, name: str) -> LevelOfTheory:
    """The level named ``name``; created from the defaults (or bare) when missing.

    Race-free: concurrent first-time creation of one level inserts it once
    (``ON CONFLICT (name) DO NOTHING``) and every caller gets that row.
    """
    level = session.scalar(select(LevelOfTheory).where(LevelOfTheory.name == name))
    if level is not None:
        return level
    values: dict[str, Any] = {"name": name}
    spec = DEFAULT_LEVELS.get(name)
    if spec is not None:
        values.update(
            engine=spec.engine,
            method=spec.method,
            basis=spec.basis,
            periodic=spec.periodic,
            settings=dict(spec.settings),
            reference_energies_hartree=dict(spec.reference_energies_hartree),
        )
    table = cast(Table, LevelOfTheory.__table__)
    insert_level = upsert_insert(session, table).values(**values)
    session.execute(insert_level.on_conflict_do_nothing(index_elements=["name"]))
    return session.scalars(select(LevelOfTheory).where(LevelOfTheory.name == name)).one()


def upsert_insert(session: Session, table: Table) -> Any:
    """An INSERT of ``table`` that supports ``on_conflict_do_nothing`` (SQLite, PostgreSQL)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"interphase supports SQLite and PostgreSQL, not {dialect}")


def insert_label_once(session: Session, row: dict[str, Any]) -> tuple[int, bool]:
    """Insert a label row unless the structure has one at that level already.

    Returns
    -------
    label_id, created
        The id of the new label, or of the one already there (``created`` False).
    """
    table = cast(Table, Label.__table__)
    statement = (
        upsert_insert(session, table)
        .values(**row)
        .on_conflict_do_nothing(index_elements=["structure_id", "level_id"])
        .returning(table.c.id)
    )
    created = session.scalar(statement)
    if created is not None:
        return int(created), True
    existing = session.scalar(
        select(Label.id).where(
            Label.structure_id == row["structure_id"], Label.level_id == row["level_id"]
        )
    )
    return int(existing or 0), False


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


_STRUCTURE_ARRAYS = {"numbers": "<i2", "positions_angstrom": "<f8", "cell_angstrom": "<f8"}
_LABEL_ARRAYS = {
    "gradient_hartree_per_angstrom": "<f8",
    "charges_e": "<f8",
    "dipole_e_angstrom": "<f8",
}


def _encoded(row: dict[str, Any], dtypes: dict[str, str]) -> dict[str, Any]:
    for name, dtype in dtypes.items():
        if row[name] is not None:
            row[name] = np.ascontiguousarray(row[name], dtype=dtype).tobytes()
    return row


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
        _encoded(
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
            (name, _encoded(label_row(0, 0, label, provenance=provenance), _LABEL_ARRAYS))
            for name, label in record.labels.items()
        ]
        if with_labels
        else []
        for record in records
    ]
    return PreparedStructures(hashes, structure_rows, label_rows)


#: PostgreSQL advisory lock serialising structure inserts ("ipst" as a number).
STRUCTURE_INSERT_LOCK = 0x69707374


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
        _bulk_insert(session, cast(Table, Structure.__table__), rows)
        new_ids = dict(
            session.execute(
                select(Structure.content_hash, Structure.id).where(
                    Structure.content_hash.in_(list(first_seen))
                )
            ).all()
        )
    ids = [existing.get(h) or new_ids[h] for h in hashes]
    new = [h in new_ids and first_seen[h] == i for i, h in enumerate(hashes)]
    _insert_labels(session, prepared.label_rows, ids)
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


def _insert_labels(
    session: Session,
    label_rows: Sequence[Sequence[tuple[str, dict[str, Any]]]],
    ids: Sequence[int],
) -> int:
    levels = LevelCache(session)
    have: set[tuple[int, int]] = {
        (sid, lid)
        for sid, lid in session.execute(
            select(Label.structure_id, Label.level_id).where(Label.structure_id.in_(set(ids)))
        )
    }
    rows = []
    for record_rows, structure_id in zip(label_rows, ids, strict=True):
        for name, row in record_rows:
            key = (structure_id, levels.id(name))
            if key in have:
                continue
            have.add(key)
            rows.append({**row, "structure_id": structure_id, "level_id": key[1]})
    if rows:
        _bulk_insert(session, cast(Table, Label.__table__), rows)
    return len(rows)


def _bulk_insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Many rows at once: COPY on PostgreSQL (several times faster), executemany elsewhere.

    Rows must hold every column without a server default; arrays pre-encoded as bytes.
    """
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        session.execute(insert(table), rows)
        return
    columns = [c for c in table.columns if not c.primary_key]
    defaults = {c.name: _column_default(c) for c in columns}
    names = ", ".join(c.name for c in columns)
    raw = connection.connection.driver_connection
    assert raw is not None  # a live psycopg connection inside the session's transaction
    with raw.cursor() as cursor, cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([_copy_value(row.get(c.name, defaults[c.name]), c) for c in columns])


def _column_default(column: Any) -> Any:
    """The Python-side default of a column (called if callable), else None."""
    default = column.default
    if default is None:
        return None
    return default.arg(None) if default.is_callable else default.arg


def _copy_value(value: Any, column: Any) -> Any:
    if isinstance(column.type, JSON) and value is not None:
        return orjson.dumps(value).decode()
    if isinstance(value, np.ndarray):
        return column.type.process_bind_param(value, None)
    return value


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


def level_id(url: str | None, name: str) -> int:
    """Id of the level of theory called ``name`` (``NoResultFound`` when there is none)."""
    from interphase.db.session import transaction

    with transaction(url, read_only=True) as session:
        return session.scalars(select(LevelOfTheory.id).where(LevelOfTheory.name == name)).one()


class UnknownLevelError(KeyError):
    """A level of theory that is neither in the database nor a default level."""


def known_level_id(session: Session, name: str) -> int | None:
    """Id of the level ``name``; ``None`` for a default level not in the database yet.

    Raises
    ------
    UnknownLevelError
        When ``name`` is neither in the database nor one of the default levels.
    """
    level_id = session.scalar(select(LevelOfTheory.id).where(LevelOfTheory.name == name))
    if level_id is None and name not in DEFAULT_LEVELS:
        raise UnknownLevelError(
            f"no level of theory named {name!r} in the database; default levels: "
            f"{', '.join(DEFAULT_LEVELS)}"
        )
    return level_id


def unlabeled_structure_ids(
    session: Session,
    level_id: int | None,
    *,
    generator: str | None = None,
    campaign_id: int | None = None,
    periodic: bool | None = None,
) -> list[int]:
    """Ids of structures with neither a label nor any labeling job at the level.

    ``level_id`` None (a level not in the database yet) has neither. Synthetic
    (``gpr-augment``) copies are never included; ``periodic`` True or False keeps
    only periodic cells or only molecules. Sorted by id.
    """
    labeled = select(Label.structure_id).where(Label.level_id == level_id)
    queued = select(LabelingJob.structure_id).where(LabelingJob.level_id == level_id)
    query = (
        select(Structure.id)
        .where(
            Structure.id.not_in(labeled),
            Structure.id.not_in(queued),
            Structure.generator != "gpr-augment",
        )
        .order_by(Structure.id)
    )
    if generator is not None:
        query = query.where(Structure.generator == generator)
    if campaign_id is not None:
        query = query.where(membership.holds(campaign_id))
    if periodic is not None:
        query = query.where((Structure.pbc != "nnn") if periodic else (Structure.pbc == "nnn"))
    return [int(i) for i in session.scalars(query).all()]


#: Rows per INSERT of :func:`create_jobs` (well under SQLite's bound-parameter limit).
JOB_INSERT_BATCH = 500


def create_jobs(
    session: Session,
    structure_ids: Iterable[int],
    level: LevelOfTheory,
    **fields: Any,
) -> list[LabelingJob]:
    """Pending labeling jobs for structures that have no label or open job at ``level``.

    With a ``campaign_id`` field every structure of ``structure_ids`` joins the
    campaign as picked at ``level``: it trains on the label, whoever computes it.

    Idempotent under concurrency: the partial unique index on open jobs makes a
    job that another transaction created meanwhile a no-op (``ON CONFLICT DO
    NOTHING``). Returns only the jobs this call created, oldest first.

    Raises
    ------
    JobSettingsError
        When the level's settings are not valid for its engine (nothing is stored).
    """
    settings = validate_job_settings(level.engine, level.settings or {})
    wanted = list(dict.fromkeys(structure_ids))
    if fields.get("campaign_id") is not None:  # the campaign trains on these labels
        iteration_id = fields.get("iteration_id")
        index = 0 if iteration_id is None else session.get_one(Iteration, iteration_id).index
        membership.join(
            session, fields["campaign_id"], wanted, MembershipRole.picked, index, level.id
        )
    done: set[int] = set()
    for chunk in _batches(wanted, JOB_INSERT_BATCH):
        done.update(
            session.scalars(
                select(Label.structure_id).where(
                    Label.level_id == level.id, Label.structure_id.in_(chunk)
                )
            )
        )
    # In structure-id order: two transactions inserting overlapping jobs then wait for
    # each other in one order, never in opposite orders (a deadlock on PostgreSQL).
    rows = [
        {"structure_id": sid, "level_id": level.id, "settings": settings, **fields}
        for sid in sorted(wanted)
        if sid not in done
    ]
    table = cast(Table, LabelingJob.__table__)
    jobs: list[LabelingJob] = []
    for chunk in _batches(rows, JOB_INSERT_BATCH):
        statement = upsert_insert(session, table).values(chunk)
        statement = statement.on_conflict_do_nothing().returning(table.c.id)
        ids = list(session.scalars(statement))
        if ids:
            jobs += session.scalars(
                select(LabelingJob).where(LabelingJob.id.in_(ids)).order_by(LabelingJob.id)
            )
    return sorted(jobs, key=lambda job: job.id)


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
