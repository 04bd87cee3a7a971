"""Resubmit and cancel through the dashboard's routes, on the labeling library (SQLite, PostgreSQL).

A preview shows what the library would do (count, ids, or its refusal) and
changes nothing; a confirm does it, and is refused when the selection changed.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from interphase.db.models import JobAttempt, JobState, LabelingJob
from interphase.db.session import transaction
from interphase.labeling.queue.run import run_pending_jobs
from tests.dashboard.campaign_data import (
    NO_RETRY,
    create_campaign,
    failed_waters,
    queue_waters,
    start_iteration,
)
from tests.dashboard.conftest import WRITE_HEADERS
from tests.labeling.job_helpers import job_and_attempts


def snapshot(url: str) -> list[tuple[Any, ...]]:
    """Every job's state and settings, and every attempt: what a refused write must not change."""
    with transaction(url) as session:
        jobs = session.execute(
            select(
                LabelingJob.id, LabelingJob.state, LabelingJob.settings, LabelingJob.requeued_by
            ).order_by(LabelingJob.id)
        ).all()
        attempts = session.execute(
            select(JobAttempt.id, JobAttempt.state, JobAttempt.settings).order_by(JobAttempt.id)
        ).all()
    return [tuple(row) for row in jobs] + [tuple(row) for row in attempts]


def confirm_fields(preview_html: str) -> dict[str, list[str]]:
    """The hidden fields of the preview's confirm form."""
    fields: dict[str, list[str]] = {}
    hidden = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')
    for name, value in hidden.findall(preview_html):
        fields.setdefault(name, []).append(value.replace("&#34;", '"').replace("&quot;", '"'))
    return fields


@pytest.mark.slow
def test_preview_then_confirm_resubmits_with_overrides_keeping_history(
    client: TestClient, local_env: str
) -> None:
    failed = failed_waters(local_env, 3, seed=1)
    before = snapshot(local_env)
    form = {"scope": "selected", "ids": failed[:2], "set": "max_iterations=250\naccuracy=0.5"}
    preview = client.post("/jobs/resubmit/preview", data=form)
    assert preview.status_code == 200, preview.text
    assert "Resubmit 2 jobs?" in preview.text and f"ids {failed[0]}, {failed[1]}" in preview.text
    assert snapshot(local_env) == before  # a preview changes nothing

    fields = confirm_fields(preview.text)
    assert fields["expected_count"] == ["2"] and fields["ids"] == [str(i) for i in failed[:2]]
    done = client.post("/jobs/resubmit", data=fields, headers=WRITE_HEADERS)
    assert done.status_code == 200, done.text
    assert "Resubmitted 2 jobs" in done.text and done.headers["HX-Trigger"] == "jobs-changed"
    for job_id in failed[:2]:
        job, attempts = job_and_attempts(local_env, job_id)
        assert job.state == JobState.pending and job.requeued_by == "resubmit"
        assert job.settings == {"max_iterations": 250, "accuracy": 0.5}
        assert [(a.state, a.settings) for a in attempts] == [
            (JobState.failed, {"max_iterations": 1})
        ]
    assert job_and_attempts(local_env, failed[2])[0].state == JobState.failed

    assert run_pending_jobs(local_env, options=NO_RETRY).succeeded == 2
    job, attempts = job_and_attempts(local_env, failed[0])
    assert job.state == JobState.succeeded
    assert [a.settings.get("max_iterations") for a in attempts] == [1, 250]
    assert [a.trigger for a in attempts] == ["initial", "resubmit"]


@pytest.mark.slow
def test_everything_matching_the_filter(client: TestClient, local_env: str) -> None:
    campaign = create_campaign(local_env, "c", {}, ["GFN2-xTB"])
    first, second = start_iteration(local_env, campaign), start_iteration(local_env, campaign)
    in_first = failed_waters(local_env, 2, seed=1, campaign_id=campaign, iteration_id=first)
    in_second = failed_waters(local_env, 3, seed=2, campaign_id=campaign, iteration_id=second)
    form = {"scope": "matching", "iteration": str(second), "message": "converge", "set": ""}
    preview = client.post("/jobs/resubmit/preview", data=form)
    assert "Resubmit 3 jobs?" in preview.text, preview.text
    done = client.post("/jobs/resubmit", data=confirm_fields(preview.text), headers=WRITE_HEADERS)
    assert done.status_code == 200, done.text
    states = {i: job_and_attempts(local_env, i)[0].state for i in in_first + in_second}
    assert [states[i] for i in in_first] == [JobState.failed] * 2
    assert [states[i] for i in in_second] == [JobState.pending] * 3

    # Only failed/cancelled jobs are resubmitted: the pending ones under the filter are left.
    everything = client.post(
        "/jobs/resubmit/preview", data={"scope": "matching", "campaign": str(campaign)}
    )
    assert "Resubmit 2 jobs?" in everything.text


@pytest.mark.slow
def test_refusals_are_the_librarys_one_line_and_change_nothing(
    client: TestClient, local_env: str
) -> None:
    failed = failed_waters(local_env, 2, seed=1)
    pending = queue_waters(local_env, 1, seed=2)
    before = snapshot(local_env)
    cases = [
        ({"scope": "selected", "ids": failed, "set": "=5"}, "--set expects key=value, got &#39;"),
        ({"scope": "selected", "ids": pending}, "is pending already; give --set/--unset"),
        ({"scope": "selected", "ids": [999]}, "no jobs with ids [999]"),
        ({"scope": "selected"}, "no job is ticked"),
        ({"scope": "everything"}, "unknown scope"),
        ({"scope": "matching", "state": "pending"}, "no failed or cancelled job matches"),
        ({"scope": "matching", "message": "no such text"}, "no failed or cancelled job matches"),
    ]
    for form, message in cases:
        for path in ("/jobs/resubmit/preview", "/jobs/resubmit"):
            data = {**form, "expected_count": "1"} if path == "/jobs/resubmit" else form
            response = client.post(path, data=data, headers=WRITE_HEADERS)
            assert response.status_code == 400, (form, response.text)
            assert message in response.text, (form, response.text)
    missing_count = client.post(
        "/jobs/resubmit", data={"scope": "selected", "ids": failed}, headers=WRITE_HEADERS
    )
    assert missing_count.status_code == 400 and "expected_count" in missing_count.text
    assert snapshot(local_env) == before


@pytest.mark.slow
def test_a_changed_selection_is_refused_at_confirm(client: TestClient, local_env: str) -> None:
    failed_waters(local_env, 2, seed=1)
    preview = client.post("/jobs/resubmit/preview", data={"scope": "matching", "state": "failed"})
    fields = confirm_fields(preview.text)
    assert fields["expected_count"] == ["2"]
    failed_waters(local_env, 1, seed=2)  # a new failure arrives before the confirm
    before = snapshot(local_env)
    response = client.post("/jobs/resubmit", data=fields, headers=WRITE_HEADERS)
    assert response.status_code == 409
    assert "the selection changed since you reviewed it: 3 job(s) now, 2 then" in response.text
    assert snapshot(local_env) == before


def test_cancel_follows_the_library(client: TestClient, local_env: str) -> None:
    pending = queue_waters(local_env, 2, seed=1)
    page = client.get("/jobs").text
    assert "/jobs/cancel/preview" in page
    preview = client.post("/jobs/cancel/preview", data={"scope": "selected", "ids": pending})
    assert "Cancel 2 jobs?" in preview.text, preview.text
    done = client.post("/jobs/cancel", data=confirm_fields(preview.text), headers=WRITE_HEADERS)
    assert done.status_code == 200, done.text
    assert {job_and_attempts(local_env, i)[0].state for i in pending} == {JobState.cancelled}
