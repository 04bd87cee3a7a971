"""``campaign schedule --interval``: a duration too long for a schedule is one line (item 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import TINY, invoke, one_line_error, row_counts


@pytest.fixture
def registered(local_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The tiny campaign recorded; Prefect's home in the test's directory."""
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert invoke("campaign", "register", str(TINY)).exit_code == 0
    return local_env


@pytest.mark.parametrize("interval", ["99999999999d", "3000000d", "366d", "8785h", "1d365d"])
def test_an_interval_past_a_year_is_refused_in_one_line(registered: str, interval: str) -> None:
    before = row_counts(registered)
    line = one_line_error(invoke("campaign", "schedule", "tiny", "--interval", interval))
    assert f"--interval must be at most 365d; got {interval!r}" in line, line
    assert "--cron" in line  # what to use instead
    assert row_counts(registered) == before


def test_an_interval_of_a_year_is_scheduled(registered: str) -> None:
    result = invoke("campaign", "schedule", "tiny", "--interval", "365d")
    assert result.exit_code == 0, result.output
    assert "every 365d" in result.output
