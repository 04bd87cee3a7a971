"""A data directory on a small disk of its own, and the ``interphase`` command run on it.

The disk is a tmpfs of a few megabytes mounted for the test (root only), so
"no space left on device" is real, not simulated; :func:`fill` leaves as many
kilobytes free as a test asks for.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
WATER_ANGSTROM = np.array([[0.0, 0.0, 0.0], [0.0, 0.757, 0.586], [0.0, -0.757, 0.586]])


@contextmanager
def small_disk(parent: Path) -> Iterator[Path]:
    """A 2 MB tmpfs mounted at a new directory in ``parent``; unmounted afterwards.

    Skips the test where mounting is not permitted (it needs root).
    """
    mount_point = parent / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up (needs root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


def grow(mount_point: Path, size: str = "16m") -> None:
    """Give the disk room again (what a user who freed space would see)."""
    subprocess.run(
        ["mount", "-o", f"remount,size={size}", str(mount_point)], check=True, capture_output=True
    )


def fill(mount_point: Path, leave_kb: int) -> None:
    """Write a filler file so that about ``leave_kb`` KB stay free."""
    filler = mount_point / "filler"
    filler.unlink(missing_ok=True)
    stat = os.statvfs(mount_point)
    free = stat.f_bavail * stat.f_frsize - leave_kb * 1024
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(free, 0))
    assert os.statvfs(mount_point).f_bavail * stat.f_frsize <= (leave_kb + 4) * 1024


def cli_env(data_dir: Path) -> dict[str, str]:
    """The environment of an ``interphase`` process on the database in ``data_dir``."""
    env = {key: value for key, value in os.environ.items() if key != "INTERPHASE_DATABASE_URL"}
    env.update(
        INTERPHASE_DATA_DIR=str(data_dir),
        PYTHONPATH=os.pathsep.join([str(ROOT / "platform"), str(ROOT / "flows"), str(ROOT)]),
        OMP_NUM_THREADS="1",
    )
    return env


def run_cli(data_dir: Path, *args: str, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    """``interphase ARGS`` in a process of its own on the database in ``data_dir``."""
    return subprocess.run(
        [sys.executable, "-m", "interphase.cli", *args],
        cwd=ROOT,
        env=cli_env(data_dir),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def write_waters_extxyz(path: Path, n_frames: int, seed: int = 0) -> None:
    """``n_frames`` water molecules with energies and forces, as extxyz."""
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n_frames):
        atoms = Atoms("OH2", positions=WATER_ANGSTROM + rng.normal(scale=0.02, size=(3, 3)))
        energy_ev = -2068.0 + rng.normal(scale=0.01)
        forces = rng.normal(size=(3, 3))
        atoms.calc = SinglePointCalculator(atoms, energy=energy_ev, forces=forces)
        frames.append(atoms)
    write(path, frames, format="extxyz")


def integrity(database: Path) -> str:
    """SQLite's own check of the whole file ("ok" when intact)."""
    connection = sqlite3.connect(database)
    try:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        connection.close()


def count(database: Path, table: str) -> int:
    connection = sqlite3.connect(database)
    try:
        return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        connection.close()
