"""Job triage: failures grouped with numbers aside, wall times, readable reasons, the
settings that apply (SQLite, PostgreSQL). The ticked count after a write is in
``test_browser.py`` (it needs the page's script)."""

from __future__ import annotations

import html
import re

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import update

from interphase.dashboard.templating import format_seconds
from interphase.db.models import LabelingJob
from interphase.db.session import transaction
from interphase.gpr.score import CandidateScores
from interphase.labeling.queue.run import run_pending_jobs
from interphase.labeling.uncertainty import queue_uncertainty_jobs
from interphase.units import HARTREE_TO_MEV
from tests.dashboard.campaign_data import LEVEL, NO_RETRY, queue_waters
from tests.dashboard.test_jobs_views import shown
from tests.labeling.job_helpers import job_and_attempts

GROUP_COUNTS = re.compile(r'<td class="num"><a href="([^"]*)">(\d+)</a></td>')


def test_failures_differing_only_in_numbers_are_one_group(
    client: TestClient, local_env: str
) -> None:
    one = queue_waters(local_env, 2, seed=1, settings={"max_iterations": 1})
    two = queue_waters(local_env, 1, seed=2, settings={"max_iterations": 2})
    run_pending_jobs(local_env, options=NO_RETRY)
    messages = {job_and_attempts(local_env, i)[0].error_message for i in one + two}
    assert len(messages) == 2  # "... in 1 cycles" and "... in 2 cycles"
    page = client.get("/jobs").text
    ((link, count),) = GROUP_COUNTS.findall(page)
    assert count == "3" and "in # cycles" in page and "2 messages" in page
    filtered = client.get(html.unescape(link)).text  # the group's link lists all three
    assert {i for i, _ in shown(filtered)} == set(one + two)


def test_numbers_glued_to_names_stay() -> None:
    from interphase.dashboard.queries.failures import message_pattern

    assert message_pattern("time limit of 1.5 s exceeded") == "time limit of # s exceeded"
    assert message_pattern("def2-SVP basis: 12 electrons, -3.2e-05 Ha") == (
        "def2-SVP basis: # electrons, # Ha"
    )
    assert message_pattern("GFN2-xTB: job 17 after 300s") == "GFN2-xTB: job # after #s"


def test_the_jobs_table_shows_each_jobs_wall_time(client: TestClient, local_env: str) -> None:
    done = queue_waters(local_env, 2, seed=3)
    run_pending_jobs(local_env, options=NO_RETRY)
    waiting = queue_waters(local_env, 1, seed=4)
    page = client.get("/jobs").text
    assert '<th class="num">wall time</th>' in page
    for job_id in done:
        (attempt,) = job_and_attempts(local_env, job_id)[1]
        assert attempt.wall_time_s is not None
        row = page.split(f'<tr data-job="{job_id}"')[1].split("</tr>")[0]
        assert f">{format_seconds(attempt.wall_time_s)}</td>" in row
    row = page.split(f'<tr data-job="{waiting[0]}"')[1].split("</tr>")[0]
    assert '<td class="num wall" title="latest attempt"></td>' in row  # not run yet: blank


def test_a_jobs_reason_is_readable_text(client: TestClient, local_env: str) -> None:
    (structure_job,) = queue_waters(local_env, 1, seed=5)
    structure_id = job_and_attempts(local_env, structure_job)[0].structure_id
    std_hartree = 12.345678901234567 / HARTREE_TO_MEV
    scores = CandidateScores(
        structure_ids=np.array([structure_id]),
        std_per_atom_hartree=np.array([std_hartree]),
        gpr_model_ids=[7],
        subset_keys=["H2O"],
        positions_angstrom=[np.zeros((3, 3))],
        periodic=[False],
    )
    with transaction(local_env) as session:
        (job_id,) = queue_uncertainty_jobs(
            session,
            scores,
            "PBE/def2-SVP",
            threshold_per_atom_hartree=5 / HARTREE_TO_MEV,
            max_count=1,
        )
    page = client.get(f"/jobs/{job_id}").text
    reason = page.split('id="job-reason">')[1].split("</td>")[0]
    assert "GP 7 predicted a std of 12.3 meV/atom (threshold 5 meV/atom)" in reason
    assert "picks at least 0.01 Å apart" in reason
    assert re.search(r"\d{6,}", reason) is None and "{" not in reason  # no raw JSON


def test_the_settings_box_shows_the_settings_that_apply(client: TestClient, local_env: str) -> None:
    (plain,) = queue_waters(local_env, 1, seed=6)  # stores {}
    (tuned,) = queue_waters(
        local_env, 1, seed=7, settings={"max_iterations": 1, "time_limit_s": 60}
    )
    (broken,) = queue_waters(local_env, 1, seed=8)
    with transaction(local_env) as session:  # written by hand (or by an older version)
        session.execute(
            update(LabelingJob).where(LabelingJob.id == broken).values(settings={"nope": 1})
        )

    def setting(page: str, key: str) -> list[str]:
        row = page.split(f'data-setting="{key}"')[1].split("</tr>")[0]
        return html.unescape(re.sub(r"<[^>]+>", " ", row.split(">", 1)[1])).split()

    page = client.get(f"/jobs/{plain}").text
    assert setting(page, "max_iterations") == ["max_iterations", "250", "engine", "default"]
    assert setting(page, "electronic_temperature_k")[1:3] == ["300.0", "engine"]
    assert setting(page, "time_limit_s") == ["time_limit_s", "the", "worker's", "option"]
    page = client.get(f"/jobs/{tuned}").text
    assert setting(page, "max_iterations") == ["max_iterations", "1", "set", "on", "the", "job"]
    assert setting(page, "time_limit_s")[1:3] == ["60.0", "set"]
    page = client.get(f"/jobs/{broken}").text
    assert "the queue cannot use these settings" in page and "&#39;nope&#39;" in page
    assert setting(page, "nope")[:2] == ["nope", "1"]
    assert LEVEL in page
