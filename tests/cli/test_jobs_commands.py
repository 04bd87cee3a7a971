"""``interphase jobs``: refused inputs, honest counts, and a list that shows the newest jobs.

Issue 20, items 10 (worker counts, engines and settings refused before anything
runs), 13 (skipped counts taken before the change), 14 (``--workers 2`` prints
the counts ``--workers 1`` does) and 15 (``jobs list`` newest first, with
structure and message).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import select, update

from interphase.db.models import JobState, LabelingJob, Structure
from interphase.db.session import transaction
from tests.cli.conftest import TINY, invoke, lines, one_line_error, row_counts

WATER = [[0.0, 0.0, 0.0], [0.0, 0.757, 0.586], [0.0, -0.757, 0.586]]
HYBRID = "wB97X-D3BJ_def2-TZVPD"


def table_rows(output: str) -> list[list[str]]:
    """The header and body rows of the rich table in ``output``, as stripped cells."""
    return [
        [cell.strip() for cell in line.strip(line[0]).split(line[0])]
        for line in output.splitlines()
        if line[:1] in ("┃", "│")
    ]


def jobs(url: str) -> list[LabelingJob]:
    with transaction(url, read_only=True) as session:
        return list(session.scalars(select(LabelingJob).order_by(LabelingJob.id)))


@pytest.fixture
def two_jobs(local_env: str, paper_file: Path) -> str:
    """The three paper entries imported; two pending GFN2-xTB jobs (Li+ and the Li cell)."""
    assert invoke("data", "import", str(paper_file)).exit_code == 0
    queued = invoke("jobs", "create", "--level", "GFN2-xTB")
    assert queued.exit_code == 0, queued.output
    assert [job.state for job in jobs(local_env)] == [JobState.pending, JobState.pending]
    return local_env


# --- item 10: refused before anything runs ---------------------------------------------


@pytest.mark.parametrize("workers", ["0", "-1", "99999999"])
def test_jobs_run_refuses_a_worker_count_it_cannot_use(two_jobs: str, workers: str) -> None:
    before = row_counts(two_jobs)
    line = one_line_error(invoke("jobs", "run", "--workers", workers))
    most = 4 * len(os.sched_getaffinity(0))  # four per core this process may use
    assert f"--workers must be between 1 and {most}" in line and f"got {workers}" in line
    assert row_counts(two_jobs) == before  # no attempt, nothing claimed
    assert {job.state for job in jobs(two_jobs)} == {JobState.pending}


@pytest.mark.parametrize(
    "command",
    [["campaign", "run", str(TINY)], ["campaign", "resume", "tiny"], ["serve"]],
    ids=["campaign-run", "campaign-resume", "serve"],
)
def test_campaign_commands_refuse_a_worker_count_before_anything_is_stored(
    two_jobs: str, command: list[str]
) -> None:
    before = row_counts(two_jobs)
    line = one_line_error(invoke(*command, "--workers", "99999999"))
    assert "--workers must be between 1 and" in line
    assert row_counts(two_jobs) == before


def test_jobs_run_refuses_an_unknown_engine_naming_the_known_ones(two_jobs: str) -> None:
    before = row_counts(two_jobs)
    line = one_line_error(invoke("jobs", "run", "--engine", "nonexistent"))
    assert "'nonexistent' is not a labeling engine" in line
    assert "known engines: analytic, gpaw, psi4, pyscf, tblite" in line
    assert row_counts(two_jobs) == before


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        ("max_iterations=99999999999999999999999", "the number is too large"),
        (f"max_iterations={'9' * 5000}", "the number is too large"),
    ],
    ids=["huge", "thousands-of-digits"],
)
def test_a_setting_no_engine_can_take_is_refused_at_resubmit_and_create(
    two_jobs: str, assignment: str, expected: str
) -> None:
    before = row_counts(two_jobs)
    settings = [job.settings for job in jobs(two_jobs)]
    line = one_line_error(invoke("jobs", "resubmit", "1", "--set", assignment))
    assert expected in line and "--set" in line, line
    line = one_line_error(invoke("jobs", "create", "--level", "GFN1-xTB", "--set", assignment))
    assert expected in line, line
    assert row_counts(two_jobs) == before
    assert [job.settings for job in jobs(two_jobs)] == settings


# --- item 13: how many matching jobs were skipped ----------------------------------------


def test_cancel_and_resubmit_by_state_count_skipped_jobs_before_changing_them(
    two_jobs: str,
) -> None:
    cancelled = invoke("jobs", "cancel", "--state", "pending")
    assert cancelled.exit_code == 0, cancelled.output
    assert lines(cancelled.output) == ["cancelled 2 job(s): 1, 2"]
    resubmitted = invoke("jobs", "resubmit", "--state", "cancelled")
    assert resubmitted.exit_code == 0, resubmitted.output
    assert lines(resubmitted.output) == ["resubmitted 2 job(s): 1, 2"]

    assert invoke("jobs", "cancel", "1").exit_code == 0
    by_level = invoke("jobs", "cancel", "--level", "GFN2-xTB")  # job 1 is cancelled already
    assert lines(by_level.output) == [
        "cancelled 1 job(s): 2",
        "skipped 1 matching job(s) that are running, succeeded or cancelled already",
    ]


# --- item 14: the same counts with one worker and with several ---------------------------


def _round_files(tmp_path: Path, index: int) -> tuple[Path, Path]:
    """Three new molecules, and a file that gives the first a GFN2-xTB label afterwards."""
    shift = 5.0 * index

    def entry(positions: list[list[float]], numbers: list[int], extra: dict) -> dict:
        label = {"totalEnergy": -1.0} | extra
        return {
            "atomicNumbers": numbers,
            "positions": [[x + shift, y, z] for x, y, z in positions],
            "charge": 0,
            "multiplicity": 1,
            "labels": {HYBRID: label},
        }

    water, hydrogen = (WATER, [8, 1, 1]), ([[0.0, 0.0, 0.0], [0.0, 0.0, 0.74]], [1, 1])
    molecules = {
        f"labeled-{index}": entry(*water, {}),
        f"computed-{index}": entry(*hydrogen, {}),
        f"broken-{index}": entry([[1.0, 0.0, 0.0], [1.0, 0.0, 0.74]], [1, 1], {}),
    }
    charges = {"xtbCharges": [-0.56, 0.28, 0.28]}
    first = tmp_path / f"round-{index}.json"
    first.write_text(json.dumps(molecules))
    labels = tmp_path / f"round-{index}-labels.json"
    labels.write_text(json.dumps({f"labeled-{index}": entry(*water, charges)}))
    return first, labels


def _drain_one_round(url: str, tmp_path: Path, index: int, workers: int) -> str:
    """Queue three jobs: one labeled meanwhile, one to compute, one with broken settings."""
    first, labels = _round_files(tmp_path, index)
    assert invoke("data", "import", str(first)).exit_code == 0
    queued = invoke("jobs", "create", "--level", "GFN2-xTB")
    assert "queued 3 job(s)" in queued.output, queued.output
    assert invoke("data", "import", str(labels)).exit_code == 0  # a label arrives meanwhile
    with transaction(url) as session:
        broken = select(Structure.id).where(Structure.source_key == f"broken-{index}")
        session.execute(
            update(LabelingJob)
            .where(LabelingJob.structure_id.in_(broken))
            .values(settings={"no_such_setting": 1})  # written by hand: InvalidInput at claim
        )
    result = invoke("jobs", "run", "--workers", str(workers), "--engine", "tblite")
    assert result.exit_code == 0, result.output
    return lines(result.output)[-1]


@pytest.mark.slow
def test_jobs_run_prints_the_same_counts_with_one_and_with_two_workers(
    local_env: str, tmp_path: Path
) -> None:
    one = _drain_one_round(local_env, tmp_path, 0, workers=1)
    two = _drain_one_round(local_env, tmp_path, 1, workers=2)
    expected = "succeeded 1, already labeled 1, failed 1, retried 0, abandoned 0"
    assert one == expected
    assert two == expected


# --- item 15: jobs list ------------------------------------------------------------------


def test_jobs_list_shows_the_newest_first_with_structure_and_message(two_jobs: str) -> None:
    message = "SCF did not converge after 300 iterations; " * 3 + "\nsecond line of the log"
    with transaction(two_jobs) as session:
        job = session.get_one(LabelingJob, 1)
        job.state, job.error_class, job.error_message = JobState.failed, "SCFNotConverged", message
    structure = {job.id: job.structure_id for job in jobs(two_jobs)}

    result = invoke("jobs", "list")
    assert result.exit_code == 0, result.output
    header, *rows = table_rows(result.output)
    assert header[:3] == ["id", "structure", "state"] and "message" in header
    assert [row[0] for row in rows] == ["2", "1"]  # newest first
    failed = dict(zip(header, rows[1], strict=True))
    assert failed["structure"] == str(structure[1])
    shown = failed["message"]
    assert shown.startswith("SCF did not converge after 300") and shown.endswith("…")
    assert len(shown) <= 60 and "second line" not in result.output

    limited = invoke("jobs", "list", "--limit", "1")
    assert [row[0] for row in table_rows(limited.output)[1:]] == ["2"]
    assert "the newest 1 of 2 matching jobs" in limited.output
    assert "the newest" not in invoke("jobs", "list", "--state", "failed").output
