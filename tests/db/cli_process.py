"""Run the ``interphase`` command in a real process, optionally without root's overrides.

A read-only file is read-only only for a process that cannot override file
permissions. Root can, through ``CAP_DAC_OVERRIDE`` (and ``CAP_DAC_READ_SEARCH``,
``CAP_FOWNER``); :func:`run_cli` with ``unprivileged=True`` drops those
capabilities from the child's bounding set before it starts, so root then obeys
file modes like any user. For a non-root user nothing needs dropping.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

from click.testing import Result

ROOT = Path(__file__).resolve().parents[2]
_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER = 1, 2, 3


def _drop_permission_overrides() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER):
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _preexec(unprivileged: bool) -> Callable[[], None] | None:
    return _drop_permission_overrides if unprivileged and os.geteuid() == 0 else None


@cache
def can_obey_file_modes() -> str | None:
    """None when a child can be made to obey file modes, else why not."""
    if os.geteuid() != 0:
        return None
    try:
        subprocess.run([sys.executable, "-c", "pass"], preexec_fn=_preexec(True), check=True)
    except (OSError, subprocess.SubprocessError) as error:
        return f"running as root without CAP_SETPCAP to drop CAP_DAC_OVERRIDE: {error}"
    return None


def cli_env(url: str, data_dir: Path) -> dict[str, str]:
    """The environment of a CLI child: this checkout's code, the given database."""
    env = dict(os.environ)
    env.update(
        INTERPHASE_DATABASE_URL=url,
        INTERPHASE_DATA_DIR=str(data_dir),
        PYTHONPATH=os.pathsep.join([str(ROOT / "platform"), str(ROOT)]),
        COLUMNS="200",
    )
    return env


def run_cli(
    *args: str, url: str, data_dir: Path, unprivileged: bool = False, timeout_s: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m interphase.cli ARGS`` to completion (output captured as text)."""
    return subprocess.run(
        [sys.executable, "-m", "interphase.cli", *args],
        env=cli_env(url, data_dir),
        cwd=data_dir.parent,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        preexec_fn=_preexec(unprivileged),
    )


def start_cli(*args: str, url: str, data_dir: Path) -> subprocess.Popen[str]:
    """Start ``python -m interphase.cli ARGS`` in the background (output piped)."""
    return subprocess.Popen(
        [sys.executable, "-m", "interphase.cli", *args],
        env=cli_env(url, data_dir),
        cwd=data_dir.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def one_line_error(result: subprocess.CompletedProcess[str] | Result) -> str:
    """The single error line of a failed command (a process, or a ``CliRunner`` result).

    Asserts exit status 2, exactly one non-blank line on stderr (all output for
    ``CliRunner``), starting ``error:``, and no traceback.
    """
    if isinstance(result, subprocess.CompletedProcess):
        status, output = result.returncode, result.stderr
    else:
        status, output = result.exit_code, result.output
    assert status == 2, (status, output)
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]
