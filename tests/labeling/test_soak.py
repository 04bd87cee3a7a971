"""The soak of ``bench/soak_jobs.py``, scaled down: 200 jobs, 2 workers, 3 random SIGKILLs.

Every job must succeed exactly once (one label, one succeeded attempt), the
``LeaseExpired`` attempts must be exactly those of the killed workers that held
a job, and no process of any worker may be left behind.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.labeling.job_helpers import ROOT, worker_env


@pytest.mark.slow
def test_scaled_down_soak_with_random_kills(db_url: str) -> None:
    command = [sys.executable, str(ROOT / "bench" / "soak_jobs.py"), "--url", db_url]
    command += ["--jobs", "200", "--workers", "2", "--kills", "3"]
    done = subprocess.run(
        command, cwd=ROOT, env=worker_env(db_url), capture_output=True, text=True, timeout=600
    )
    report = json.loads(done.stdout)
    assert report["checks"] == {
        "every_job_succeeded": True,
        "one_label_per_job": True,
        "one_succeeded_attempt_per_job": True,
        "lease_expired_matches_kills": True,
        "no_orphans": True,
    }, report
    # The kills fire at a quarter, half and three quarters of the queue, however fast
    # the machine (a timed killer missed them all on a fast one).
    assert done.returncode == 0 and report["kills"] == 3
    assert report["attempts_by_outcome"]["succeeded"] == 200
    assert (
        report["attempts_by_outcome"].get("LeaseExpired", 0)
        == report["kills_leaving_a_running_job"]
    )
    assert report["kills_leaving_a_running_job"] <= report["kills"]
