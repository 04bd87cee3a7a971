"""A data directory the dashboard cannot write: the token lives in memory, shown once.

The tests run as root, which ignores permission bits, so ``chmod 0o555`` would
prove nothing. Two ways make writing fail for root too: the real one, a
read-only bind mount (EROFS) in a private mount namespace (``unshare -rm``),
where the kernel allows it; and, always, paths that cannot be created whoever
asks (a data directory under a regular file, a data directory that is a file,
a ``dashboard-token`` that is a directory).
"""

from __future__ import annotations

import os
import select
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from interphase.dashboard.security import (
    TOKEN_ENV,
    TOKEN_FILE,
    TOKEN_HEADER,
    TokenError,
    TokenSource,
    resolve_token,
)
from tests.dashboard.browser import DashboardServer, dashboard_server
from tests.dashboard.campaign_data import failed_waters
from tests.dashboard.test_resubmit import snapshot

#: A shell that makes its first argument a read-only bind mount of itself, then runs the rest.
READ_ONLY_MOUNT = (
    "unshare",
    "-rm",
    "sh",
    "-c",
    'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"',
)


def unwritable(kind: str, tmp_path: Path) -> Path:
    """A data directory that cannot be written, for root too."""
    if kind == "under-a-file":
        (tmp_path / "file").write_text("")
        return tmp_path / "file" / "data"  # ENOTDIR
    if kind == "is-a-file":
        (tmp_path / "data").write_text("")
        return tmp_path / "data"  # EEXIST, not a directory
    (tmp_path / "data" / TOKEN_FILE).mkdir(parents=True)  # the token's name is taken
    return tmp_path / "data"


@pytest.mark.parametrize("kind", ["under-a-file", "is-a-file", "token-is-a-directory"])
def test_a_token_that_cannot_be_saved_is_kept_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    data_dir = unwritable(kind, tmp_path)
    first = resolve_token(data_dir, "127.0.0.1")
    assert first.source is TokenSource.memory and len(first.value) >= 32
    assert first.path == data_dir / TOKEN_FILE and first.problem
    second = resolve_token(data_dir, "::1")
    assert second.source is TokenSource.memory and second.value != first.value  # per process
    assert not (data_dir / TOKEN_FILE).is_file()


def test_an_unreadable_or_empty_token_file_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    (tmp_path / TOKEN_FILE).write_text("\n")
    with pytest.raises(TokenError, match="is empty; delete it"):
        resolve_token(tmp_path, "127.0.0.1")
    (tmp_path / TOKEN_FILE).write_bytes(b"\xff\xfe")
    with pytest.raises(TokenError, match="cannot read the dashboard token"):
        resolve_token(tmp_path, "127.0.0.1")


def read_only_mounts_work(directory: Path) -> bool:
    command = [*READ_ONLY_MOUNT, str(directory), "sh", "-c", 'touch "$0"/x', str(directory)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        return False
    return done.returncode != 0 and "Read-only file system" in done.stderr


def token_line(server: DashboardServer) -> str:
    """The line in which the running dashboard printed its write token.

    Read from the pipe's descriptor: a buffered reader would hold back lines
    that ``select`` no longer sees.
    """
    assert server.process.stdout is not None
    descriptor, seen = server.process.stdout.fileno(), b""
    while select.select([descriptor], [], [], 30)[0]:
        chunk = os.read(descriptor, 65536)
        seen += chunk
        for line in seen.decode(errors="replace").splitlines(keepends=True):
            if "write token" in line and line.endswith("\n"):
                server.output.append(seen.decode(errors="replace"))
                return line
        if not chunk:
            break
    raise AssertionError(f"the dashboard printed no write token within 30 s: {seen!r}")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["read-only-mount", "under-a-file"])
def test_a_dashboard_over_an_unwritable_data_directory_serves_with_a_printed_token(
    local_env: str, tmp_path: Path, kind: str
) -> None:
    prefix: tuple[str, ...] = ()
    if kind == "read-only-mount":
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        if not read_only_mounts_work(data_dir):
            pytest.skip("no read-only bind mount here (`unshare -rm` with mount is not allowed)")
        prefix, reason = (*READ_ONLY_MOUNT, str(data_dir)), "Read-only file system"
    else:
        data_dir, reason = unwritable(kind, tmp_path), "Not a directory"
    (job_id, _) = failed_waters(local_env, 2, seed=1)
    env = {
        "INTERPHASE_DATABASE_URL": local_env,
        "INTERPHASE_DATA_DIR": str(data_dir),
        "PYTHONUNBUFFERED": "1",
    }
    with dashboard_server(env, unset=(TOKEN_ENV,), prefix=prefix) as server:
        line = token_line(server)
        assert f"cannot write {data_dir / TOKEN_FILE}: {reason}" in line, line
        token = line.rsplit(": ", 1)[1].strip()
        body = urllib.parse.urlencode({"scope": "selected", "ids": job_id, "expected_count": 1})
        request = urllib.request.Request(
            server.url + "/jobs/resubmit", data=body.encode(), headers={TOKEN_HEADER: token}
        )
        before = snapshot(local_env)
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200  # the printed token works for this process
        assert snapshot(local_env) != before
    assert "Traceback" not in "".join(server.output)
    assert not (data_dir / TOKEN_FILE).exists()  # nothing was saved
