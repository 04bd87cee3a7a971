"""Typed job settings: refused before anything is stored; a stored bad one fails only its job.

Reproduces issue 12, items 1 and 6: ``--set time_limit_s=abc`` poisoned the
queue, ``--set foo=1``, ``max_iterations=abc``, ``time_limit_s=-5``, NaN and
``1e400`` were accepted (a traceback on PostgreSQL), and settings could not be
unset.
"""

from __future__ import annotations

import json
import math
import os

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from interphase.cli import app
from interphase.db.levels import get_or_create_level
from interphase.db.models import JobAttempt, JobState, LabelingJob
from interphase.db.session import transaction
from interphase.db.structures import store_structures
from interphase.labeling.engines import ENGINES, get_engine
from interphase.labeling.engines.contract import Calculation, InvalidInput
from interphase.labeling.job_settings import (
    CONTROL_KEYS,
    JobSettingsError,
    changed_settings,
    validate_job_settings,
)
from interphase.labeling.levels import LevelSpec
from interphase.labeling.queue.enqueue import create_jobs
from interphase.labeling.queue.retry import RetryPolicy
from interphase.labeling.queue.run import run_pending_jobs
from interphase.labeling.queue.worker_options import WorkerOptions
from tests.labeling.job_helpers import job_and_attempts, queue_jobs, waters

NO_RETRY = WorkerOptions(retry=RetryPolicy.no_retries(), lease_s=30, heartbeat_s=1)


@pytest.mark.parametrize(
    ("engine", "settings", "message"),
    [
        ("pyscf", {"foo": 1}, "'foo' is not a pyscf setting; known: auxbasis, conv_tol_hartree"),
        ("tblite", {"max_iterations": "abc"}, "max_iterations='abc': expected an integer >= 1"),
        ("pyscf", {"max_iterations": 2.5}, "max_iterations=2.5: expected an integer >= 1"),
        ("pyscf", {"time_limit_s": "abc"}, "time_limit_s='abc': expected a positive number of"),
        ("tblite", {"time_limit_s": -5}, "time_limit_s=-5: expected a positive number of seconds"),
        ("pyscf", {"time_limit_s": math.nan}, "time_limit_s=nan: expected a positive number"),
        ("pyscf", {"memory_limit_mb": json.loads("1e400")}, "memory_limit_mb=inf: expected"),
        ("pyscf", {"conv_tol_hartree": math.inf}, "conv_tol_hartree=inf: expected a finite"),
        ("pyscf", {"damping": 1.5}, "damping=1.5: expected a finite number >= 0 and < 1"),
        ("pyscf", {"density_fit": 1}, "density_fit=1: expected true or false"),
        ("gpaw", {"kpts": [2, 2]}, "kpts=[2, 2]: expected a list of integers >= 1 with 3 entries"),
        ("gpaw", {"d3_damping": "d4"}, "d3_damping='d4': expected one of 'zero', 'bj', or null"),
        ("psi4", {"threads": 0}, "threads=0: expected an integer >= 1"),
        ("nwchem", {}, "unknown engine 'nwchem'; known engines: analytic, gpaw, "),
    ],
)
def test_bad_settings_are_one_line_naming_key_value_and_allowed(
    engine: str, settings: dict[str, object], message: str
) -> None:
    with pytest.raises(JobSettingsError) as refused:
        validate_job_settings(engine, settings)
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)


def test_good_settings_are_normalised_and_keep_only_what_was_given() -> None:
    assert validate_job_settings("pyscf", {"max_iterations": 50, "time_limit_s": 300}) == {
        "max_iterations": 50,
        "time_limit_s": 300.0,
    }
    assert validate_job_settings("gpaw", {"kpts": [2, 2, 1]}) == {"kpts": [2, 2, 1]}
    assert validate_job_settings(None, {"time_limit_s": 5}) == {"time_limit_s": 5.0}
    with pytest.raises(JobSettingsError, match="level has no engine"):
        validate_job_settings(None, {"max_iterations": 5})


def test_every_engine_declares_documented_settings_with_units() -> None:
    for name, engine in ENGINES.items():
        model = engine.settings_model
        assert model.model_config.get("extra") == "forbid", name
        assert not set(model.model_fields) & CONTROL_KEYS, name
        for field_name, field in model.model_fields.items():
            assert field.description, f"{name}.{field_name} has no description"


def test_set_then_unset() -> None:
    current = {"max_iterations": 1, "damping": 0.2}
    assert changed_settings(current, {"damping": 0.5}, ["max_iterations"], "pyscf") == {
        "damping": 0.5
    }
    assert changed_settings(current, {}, ["level_shift_hartree"], "pyscf") == current  # not set
    with pytest.raises(JobSettingsError, match="--unset 'bogus': not a setting"):
        changed_settings(current, {}, ["bogus"], "pyscf")
    with pytest.raises(JobSettingsError, match="max_iterations='abc'"):
        changed_settings(current, {"max_iterations": "abc"}, [], "pyscf")


def test_engines_refuse_bad_settings_given_directly() -> None:
    with pytest.raises(InvalidInput, match="mixer_damping=0: expected a finite number > 0"):
        get_engine("tblite").compute(
            waters(1)[0], Calculation("GFN2-xTB", None, {"mixer_damping": 0})
        )


def test_a_level_spec_with_bad_settings_is_refused() -> None:
    with pytest.raises(ValidationError, match="'ecut' is not a gpaw setting"):
        LevelSpec(name="x", engine="gpaw", method="PBE-D3", settings={"ecut": 40})


def _count_jobs(url: str) -> int:
    with transaction(url) as session:
        return int(session.scalar(select(func.count()).select_from(LabelingJob)) or 0)


def test_create_jobs_validates_the_level_settings_before_storing(db_url: str) -> None:
    with transaction(db_url) as session:
        ids = store_structures(session, waters(2), generator="test").ids
    with (
        pytest.raises(JobSettingsError, match="'typo' is not a tblite setting"),
        transaction(db_url) as session,
    ):
        level = get_or_create_level(session, "GFN2-xTB")
        level.settings = {"typo": 1}
        create_jobs(session, ids, level)
    assert _count_jobs(db_url) == 0


def _fail_one_job(url: str) -> int:
    (job_id,) = queue_jobs(
        url, waters(1), level="bad", engine="tblite", method="not-a-method", settings={}
    )
    run_pending_jobs(url, options=NO_RETRY)
    assert job_and_attempts(url, job_id)[0].state == JobState.failed
    return job_id


@pytest.mark.parametrize(
    ("assignments", "message"),
    [
        (["--set", "time_limit_s=abc"], "time_limit_s='abc': expected a positive number of"),
        (["--set", "foo=1"], "'foo' is not a tblite setting; known:"),
        (["--set", "max_iterations=abc"], "max_iterations='abc': expected an integer"),
        (["--set", "time_limit_s=-5"], "time_limit_s=-5: expected a positive number"),
        (["--set", "time_limit_s=NaN"], "time_limit_s=nan: expected a positive number"),
        (["--set", "memory_limit_mb=1e400"], "memory_limit_mb=inf: expected a positive"),
        (["--unset", "nonsense"], "--unset 'nonsense': not a setting of this job"),
    ],
)
def test_resubmit_refuses_bad_settings_and_changes_nothing(
    local_env: str, assignments: list[str], message: str
) -> None:
    job_id = _fail_one_job(local_env)
    before, _ = job_and_attempts(local_env, job_id)
    refused = CliRunner().invoke(app, ["jobs", "resubmit", str(job_id), *assignments])
    assert refused.exit_code == 2, refused.output
    assert message in refused.output and "Traceback" not in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    after, _ = job_and_attempts(local_env, job_id)
    assert (after.state, after.settings) == (JobState.failed, before.settings)


def test_resubmit_sets_and_unsets(local_env: str) -> None:
    job_id = _fail_one_job(local_env)
    runner = CliRunner()
    first = runner.invoke(
        app,
        ["jobs", "resubmit", str(job_id), "--set", "max_iterations=300", "--set", "accuracy=0.5"],
    )
    assert first.exit_code == 0 and "resubmitted 1 job(s): " + str(job_id) in first.output
    assert job_and_attempts(local_env, job_id)[0].settings == {
        "max_iterations": 300,
        "accuracy": 0.5,
    }
    # A pending job takes setting changes (only those); then unset one.
    second = runner.invoke(app, ["jobs", "resubmit", str(job_id), "--unset", "accuracy"])
    assert second.exit_code == 0, second.output
    job, _ = job_and_attempts(local_env, job_id)
    assert job.state == JobState.pending and job.settings == {"max_iterations": 300}
    bare = runner.invoke(app, ["jobs", "resubmit", str(job_id)])
    assert bare.exit_code == 2 and "pending already; give --set/--unset" in bare.output


def test_a_stored_bad_setting_fails_its_job_and_the_queue_goes_on(local_env: str) -> None:
    ids = queue_jobs(local_env, waters(3), level="GFN2-xTB", engine="tblite", method="GFN2-xTB")
    with transaction(local_env) as session:  # written by hand, or by an older interphase
        session.execute(
            update(LabelingJob)
            .where(LabelingJob.id == ids[0])
            .values(settings={"time_limit_s": "abc"})
        )
    result = CliRunner().invoke(app, ["jobs", "run"])
    assert result.exit_code == 0, result.output
    assert "succeeded 2" in result.output and "failed 1" in result.output
    job, attempts = job_and_attempts(local_env, ids[0])
    assert job.state == JobState.failed and job.error_class == "InvalidInput"
    assert "time_limit_s='abc': expected a positive number of seconds" in (job.error_message or "")
    assert len(attempts) == 1 and attempts[0].error_class == "InvalidInput"
    assert attempts[0].settings == {"time_limit_s": "abc"}  # what it was claimed with
    assert all(job_and_attempts(local_env, i)[0].state == JobState.succeeded for i in ids[1:])
    # The way out: fix it by resubmitting with the key unset.
    fixed = CliRunner().invoke(app, ["jobs", "resubmit", str(ids[0]), "--unset", "time_limit_s"])
    assert fixed.exit_code == 0, fixed.output
    assert run_pending_jobs(local_env, options=NO_RETRY).succeeded == 1


@pytest.mark.slow
def test_a_time_limit_isolates_a_tblite_job(db_url: str) -> None:
    (job_id,) = queue_jobs(
        db_url,
        waters(1),
        level="GFN2-xTB",
        engine="tblite",
        method="GFN2-xTB",
        settings={"time_limit_s": 120},
    )
    assert run_pending_jobs(db_url, options=NO_RETRY).succeeded == 1
    with transaction(db_url) as session:
        attempt = session.scalars(select(JobAttempt).where(JobAttempt.job_id == job_id)).one()
        assert attempt.pid is not None and attempt.pid != os.getpid()  # its own process
        assert attempt.exit_code == 0
