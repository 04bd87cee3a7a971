"""Provenance database: storage, deduplication, binary arrays, lineage, transactions."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from interphase.db.levels import get_or_create_level
from interphase.db.models import Label, LabelingJob, Structure
from interphase.db.session import DatabaseNotInitialisedError, require_schema, transaction, upgrade
from interphase.db.structures import content_hash, iter_records, lineage, store_structures
from interphase.labeling.queue.enqueue import create_jobs
from interphase.records import LabelRecord, StructureRecord


def water(shift: float = 0.0, key: str | None = None) -> StructureRecord:
    positions = np.array([[0.0, 0.0, 0.0], [0.0, 0.757, 0.586], [0.0, -0.757, 0.586]])
    return StructureRecord(
        numbers=np.array([8, 1, 1]),
        positions_angstrom=positions + shift,
        labels={
            "GFN2-xTB": LabelRecord(
                level="GFN2-xTB",
                total_energy_hartree=-5.0703698218662331,
                gradient_hartree_per_angstrom=np.array(
                    [[0.0, 0.0, -4.5e-3], [0.0, -9.0e-3, 2.3e-3], [0.0, 9.0e-3, 2.3e-3]]
                ),
                charges_e=np.array([-0.56, 0.28, 0.28]),
            )
        },
        key=key,
    )


def li_cell() -> StructureRecord:
    a = 3.49
    return StructureRecord(
        numbers=np.array([3, 3]),
        positions_angstrom=np.array([[0.0, 0.0, 0.0], [a / 2, a / 2, a / 2]]),
        cell_angstrom=np.eye(3) * a,
        pbc=(True, True, True),
        labels={"PBE-D3": LabelRecord(level="PBE-D3", total_energy_hartree=-14.9)},
    )


def count(url: str, model: type) -> int:
    with transaction(url) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_store_and_read_back_is_exact(db_url: str) -> None:
    records = [water(key="w"), li_cell()]
    with transaction(db_url) as session:
        result = store_structures(session, records, generator="test")
    assert result.new == [True, True]
    with transaction(db_url) as session:
        back = list(iter_records(session))
    assert [r.key for r in back] == ["w", str(result.ids[1])]
    np.testing.assert_array_equal(back[0].positions_angstrom, records[0].positions_angstrom)
    label = back[0].labels["GFN2-xTB"]
    assert label.total_energy_hartree == -5.0703698218662331
    assert label.gradient_hartree_per_angstrom is not None
    np.testing.assert_array_equal(
        label.gradient_hartree_per_angstrom,
        records[0].labels["GFN2-xTB"].gradient_hartree_per_angstrom,
    )
    assert label.dipole_e_angstrom is None  # missing stays missing
    assert back[1].pbc == (True, True, True)
    np.testing.assert_array_equal(back[1].cell_angstrom, np.eye(3) * 3.49)


def test_arrays_are_stored_as_bytes_not_json(db_url: str) -> None:
    with transaction(db_url) as session:
        store_structures(session, [water()], generator="test")
    with transaction(db_url) as session:
        raw = session.execute(
            select(Structure.__table__.c.positions_angstrom)  # type: ignore[attr-defined]
        ).scalar_one()
    assert isinstance(raw, np.ndarray)  # decoded by the column type ...
    assert raw.dtype == np.float64 and raw.shape == (3, 3)


def test_duplicates_are_not_stored_twice(db_url: str) -> None:
    with transaction(db_url) as session:
        first = store_structures(session, [water(), water(), water(1.0)], generator="test")
    assert first.new == [True, False, True]
    assert first.ids[0] == first.ids[1] != first.ids[2]
    # Float noise below the hash resolution is the same structure.
    noisy = water(1e-9)
    noisy.labels["PBE-D3"] = LabelRecord(level="PBE-D3", total_energy_hartree=-1.0)
    with transaction(db_url) as session:
        second = store_structures(session, [noisy], generator="test")
    assert second.new == [False] and second.ids[0] == first.ids[0]
    assert count(db_url, Structure) == 2
    assert count(db_url, Label) == 3  # the new level was added to the existing structure


def test_content_hash_sees_charge_and_cell() -> None:
    base = water()
    charged = water()
    charged.charge = 1
    assert content_hash(base) != content_hash(charged)
    cell = li_cell()
    bigger = li_cell()
    bigger.cell_angstrom = np.eye(3) * 3.5
    assert content_hash(cell) != content_hash(bigger)


def test_failed_transaction_leaves_nothing(db_url: str) -> None:
    with pytest.raises(RuntimeError), transaction(db_url) as session:
        store_structures(session, [water()], generator="test")
        raise RuntimeError("crash in the middle of a step")
    assert count(db_url, Structure) == 0
    assert count(db_url, Label) == 0


def test_lineage_walks_parents(db_url: str) -> None:
    with transaction(db_url) as session:
        root = store_structures(session, [water()], generator="lattice_noise", seeds=[7]).ids[0]
        child = store_structures(session, [water(0.1)], generator="afir", parent_ids=[root]).ids[0]
        grandchild = store_structures(
            session, [water(0.2)], generator="md", parent_ids=[child]
        ).ids[0]
    with transaction(db_url) as session:
        chain = lineage(session, grandchild)
        assert [s.generator for s in chain] == ["md", "afir", "lattice_noise"]
        assert chain[-1].seed == 7


def test_create_jobs_skips_labeled_and_open(db_url: str) -> None:
    unlabeled = water(2.0)
    unlabeled.labels = {}
    with transaction(db_url) as session:
        ids = store_structures(session, [water(), unlabeled], generator="test").ids
        level = get_or_create_level(session, "GFN2-xTB")
        assert level.engine == "tblite"  # defaults of a known level
        jobs = create_jobs(session, ids, level)
        assert [job.structure_id for job in jobs] == [ids[1]]
        assert create_jobs(session, ids, level) == []  # already pending
    assert count(db_url, LabelingJob) == 1


def test_upgrade_is_idempotent_and_missing_schema_is_reported(db_url: str, tmp_path) -> None:
    upgrade(db_url)
    require_schema(db_url)
    with pytest.raises(DatabaseNotInitialisedError, match="interphase db upgrade"):
        require_schema(f"sqlite:///{tmp_path / 'empty.sqlite'}")


def test_create_jobs_returns_only_what_it_created_and_validates_first(db_url: str) -> None:
    from interphase.labeling.job_settings import JobSettingsError

    bare = [water(float(i)) for i in range(3)]
    for record in bare:
        record.labels = {}
    with transaction(db_url) as session:
        ids = store_structures(session, bare, generator="test").ids
        level = get_or_create_level(session, "GFN2-xTB")
        first = create_jobs(session, ids[:2], level, campaign_id=None)
        assert [job.structure_id for job in first] == ids[:2]
        assert all(job.settings == {} and job.state.value == "pending" for job in first)
        second = create_jobs(session, ids, level)  # the first two are open already
        assert [job.structure_id for job in second] == ids[2:]
        level.settings = {"max_iterations": -1}
        with pytest.raises(JobSettingsError, match="max_iterations=-1"):
            create_jobs(session, ids, level)
    assert count(db_url, LabelingJob) == 3


def test_get_or_create_level_creates_once_from_the_defaults(db_url: str) -> None:
    from interphase.db.models import LevelOfTheory

    with transaction(db_url) as session:
        made = get_or_create_level(session, "PBE-D3")
        again = get_or_create_level(session, "PBE-D3")
        assert made.id == again.id and made.engine == "gpaw" and made.periodic
        assert made.settings["kpts_slab"] == [3, 3, 1]
        bare = get_or_create_level(session, "from-a-file")
        assert bare.engine is None and bare.settings == {}
    assert count(db_url, LevelOfTheory) == 2


def test_insert_label_once_keeps_the_first_label(db_url: str) -> None:
    from interphase.db.labels import insert_label_once, label_row

    with transaction(db_url) as session:
        (structure_id,) = store_structures(session, [water()], generator="test").ids
        level_id = get_or_create_level(session, "GFN2-xTB").id  # water() has a label there
        label = LabelRecord(level="GFN2-xTB", total_energy_hartree=-1.0)
        existing, created = insert_label_once(session, label_row(structure_id, level_id, label))
        assert not created
        other = get_or_create_level(session, "other").id
        new, created = insert_label_once(session, label_row(structure_id, other, label))
        assert created and new != existing
    with transaction(db_url) as session:
        energies = sorted(session.scalars(select(Label.total_energy_hartree)))
    assert energies == [-5.0703698218662331, -1.0]
