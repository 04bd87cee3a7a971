"""Writes need the token (header only, constant-time); stored strings are escaped.

Browser-side checks (no stored script runs) are in ``test_browser.py``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from interphase.cli import app as cli
from interphase.dashboard.app import create_app
from interphase.dashboard.security import (
    TOKEN_ENV,
    TOKEN_HEADER,
    TokenError,
    TokenSource,
    is_loopback,
    resolve_token,
    token_matches,
)
from tests.dashboard.campaign_data import create_campaign, failed_waters, set_error_message
from tests.dashboard.conftest import TOKEN
from tests.dashboard.test_resubmit import snapshot

SCRIPT = "<script>window.__pwned = 1</script>"
IMAGE = '<img src="x" onerror="window.__pwned = 2">'


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {TOKEN_HEADER: "wrong-token-0123456789"},
        {TOKEN_HEADER: ""},
        {TOKEN_HEADER: TOKEN[:-1]},
        {"Cookie": f"{TOKEN_HEADER}={TOKEN}", "X-Other": TOKEN},
    ],
    ids=["no-token", "wrong", "empty", "prefix", "cookie-not-header"],
)
def test_writes_without_the_token_are_403_and_change_nothing(
    client: TestClient, local_env: str, headers: dict[str, str]
) -> None:
    failed = failed_waters(local_env, 2, seed=1)
    before = snapshot(local_env)
    form = {"scope": "selected", "ids": failed, "expected_count": "2", "token": TOKEN}
    for path in ("/jobs/resubmit", "/jobs/cancel"):
        response = client.post(path, data=form, headers=headers)
        assert response.status_code == 403, (path, response.text)
        assert "dashboard token" in response.text
    assert snapshot(local_env) == before
    allowed = client.post(
        "/jobs/resubmit", data=form, headers={TOKEN_HEADER: TOKEN}
    )  # the same request with the header goes through
    assert allowed.status_code == 200 and snapshot(local_env) != before


def test_token_comparison_and_loopback() -> None:
    assert token_matches(TOKEN, TOKEN) and token_matches(f" {TOKEN} ", TOKEN)
    assert not token_matches(None, TOKEN) and not token_matches("", TOKEN)
    assert not token_matches(TOKEN.upper(), TOKEN) and not token_matches(TOKEN + "x", TOKEN)
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.5", "example.org", "::"))


def test_token_file_is_made_once_with_mode_0600(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    made = resolve_token(tmp_path / "data", "127.0.0.1")
    assert made.source is TokenSource.created and made.path is not None
    assert stat.S_IMODE(os.stat(made.path).st_mode) == 0o600 and len(made.value) >= 32
    again = resolve_token(tmp_path / "data", "localhost")
    assert again.source is TokenSource.file and again.value == made.value
    monkeypatch.setenv(TOKEN_ENV, "configured-token-123456")
    configured = resolve_token(tmp_path / "data", "0.0.0.0")
    assert configured.source is TokenSource.environment
    assert configured.value == "configured-token-123456"
    monkeypatch.setenv(TOKEN_ENV, "short")
    with pytest.raises(TokenError, match="at least 16 characters"):
        resolve_token(tmp_path / "data", "127.0.0.1")


def test_non_loopback_without_a_configured_token_refuses_to_start(
    local_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    result = CliRunner().invoke(cli, ["dashboard", "--host", "0.0.0.0", "--port", "1"])
    assert result.exit_code == 2
    assert "refusing to serve on 0.0.0.0" in result.output and TOKEN_ENV in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    monkeypatch.setenv(TOKEN_ENV, "short")
    short = CliRunner().invoke(cli, ["dashboard", "--port", "1"])
    assert short.exit_code == 2 and "at least 16 characters" in short.output


def test_stored_strings_are_escaped(client: TestClient, local_env: str) -> None:
    create_campaign(local_env, SCRIPT + IMAGE, {}, ["GFN2-xTB"])
    (job_id, _) = failed_waters(local_env, 2, seed=1)
    set_error_message(local_env, job_id, f"failed {SCRIPT} {IMAGE}")
    for path in ("/", "/jobs", f"/jobs/{job_id}", "/jobs/live", "/jobs?message=pwned"):
        page = client.get(path).text
        assert "<script>window.__pwned" not in page and "<img src" not in page, path
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in client.get("/").text
    assert "&lt;script&gt;" in client.get(f"/jobs/{job_id}").text
    # A message used as a filter goes back into the page escaped too.
    filtered = client.get("/jobs", params={"message": SCRIPT}).text
    assert "<script>window" not in filtered and "&lt;script&gt;window" in filtered


def test_pages_carry_a_strict_content_security_policy(client: TestClient) -> None:
    response = client.get("/jobs")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("style-src")[0]
    assert "unsafe-eval" not in policy and "frame-ancestors 'none'" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in response.text  # no inline script: only src= scripts


def test_unknown_host_names_are_refused_when_asked(local_env: str) -> None:
    app = create_app(local_env, token=TOKEN, allowed_hosts=["127.0.0.1", "localhost"])
    with TestClient(app, base_url="http://127.0.0.1:8050") as local:
        assert local.get("/jobs").status_code == 200
    with TestClient(app, base_url="http://attacker.example:8050") as rebound:
        assert rebound.get("/jobs").status_code == 400  # DNS rebinding gets nothing


@pytest.mark.slow
def test_a_real_server_prints_its_new_token_once_and_requires_it(
    local_env: str, tmp_path: Path
) -> None:
    import urllib.error
    import urllib.parse
    import urllib.request

    from tests.dashboard.browser import dashboard_server

    (job_id, _) = failed_waters(local_env, 2, seed=1)
    env = {"INTERPHASE_DATABASE_URL": local_env, "INTERPHASE_DATA_DIR": str(tmp_path / "data")}
    body = urllib.parse.urlencode(
        {"scope": "selected", "ids": job_id, "expected_count": 1}
    ).encode()

    def post(url: str, token: str | None) -> int:
        request = urllib.request.Request(url + "/jobs/resubmit", data=body, method="POST")
        if token is not None:
            request.add_header(TOKEN_HEADER, token)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    with dashboard_server(env, unset=(TOKEN_ENV,)) as first:
        token_file = tmp_path / "data" / "dashboard-token"
        token = token_file.read_text().strip()
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        assert post(first.url, None) == 403 and post(first.url, token[:-1] + "x") == 403
        before = snapshot(local_env)
        assert post(first.url, token) == 200
        assert snapshot(local_env) != before
    assert f"shown once): {token}" in first.output[0]
    with dashboard_server(env, unset=(TOKEN_ENV,)) as second:
        # The same token is accepted (not 403); the library refuses: the job is pending now.
        assert post(second.url, token) == 400
    assert token not in second.output[0] and "dashboard-token" in second.output[0]
