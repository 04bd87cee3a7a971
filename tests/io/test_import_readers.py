"""Imports large enough to be parsed by two reader processes keep file order and atomicity."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from interphase.db.models import Structure
from interphase.db.session import transaction
from interphase.io.importer import (
    BATCH_SIZE,
    DatasetImportError,
    _reader_count,
    export_dataset,
    import_dataset,
)

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
from make_paper_dataset import generate_paper_dataset

N_ENTRIES = 2 * BATCH_SIZE + 500  # three blocks: reader 0 gets two, reader 1 one


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.json"
    generate_paper_dataset(path, N_ENTRIES, seed=3, workers=1)
    return path


def n_structures(url: str) -> int:
    with transaction(url) as session:
        return int(session.scalar(select(func.count()).select_from(Structure)) or 0)


@pytest.mark.slow
def test_two_readers_keep_file_order(db_url: str, big_file: Path, tmp_path: Path) -> None:
    assert _reader_count(str(big_file), None) == 2
    report = import_dataset(big_file, url=db_url)
    assert (report.n_read, report.n_new_structures) == (N_ENTRIES, N_ENTRIES)
    out = tmp_path / "out.json"
    assert export_dataset(out, "paper-json", url=db_url).n_written == N_ENTRIES
    original = json.loads(big_file.read_text())
    exported = json.loads(out.read_text())
    assert list(exported) == list(original)  # insertion (id) order is file order
    assert exported == original


@pytest.mark.slow
def test_invalid_entry_in_second_readers_block(db_url: str, big_file: Path, tmp_path: Path) -> None:
    entries = json.loads(big_file.read_text())
    bad_key = str(BATCH_SIZE + 7)  # in block 1, read by the second reader
    positions = entries[bad_key]["positions"]
    positions[1] = list(positions[0])  # two atoms on top of each other
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(entries))
    with pytest.raises(DatasetImportError, match=f"'{bad_key}'"):
        import_dataset(bad, url=db_url)
    assert n_structures(db_url) == 0
    report = import_dataset(bad, url=db_url, skip_invalid=True)
    assert [key for key, _ in report.skipped] == [bad_key]
    assert n_structures(db_url) == N_ENTRIES - 1
