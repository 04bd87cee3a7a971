"""Labeling benchmark: hybrid-DFT cost of ethylene carbonate, and queue throughput.

1. EC at wB97X-D3BJ/def2-TZVPD (density fitting, energy + analytic gradient)
   with PySCF on CPU, next to the paper's cost formula
   ``t = 7e-7 · n_basis² · n_aux + 1`` s; Psi4 where the installed version
   supports the level (Debian's 1.3.2 cannot run -D3BJ: no dftd3 program), and
   otherwise Psi4 at wB97X/def2-TZVPD without dispersion as a cost point.
2. The same EC job with gpu4pyscf when it and a GPU are present (else stated).
3. GFN2-xTB jobs per second through the job queue (SQLite, one worker) and the
   queue's overhead per job (queue wall time minus the bare engine time).

Run: ``.venv/bin/python bench/labeling.py [--skip-dft]``; prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from interphase.labeling.engines import get_engine
from interphase.labeling.engines.contract import Calculation, EngineError
from interphase.labeling.engines.pyscf import gpu_available
from interphase.records import StructureRecord

EC_ANGSTROM = [
    ("C", (-0.4145, 0.8814, -0.0254)),
    ("C", (-0.7935, -0.5598, 0.0791)),
    ("O", (0.3852, -1.2257, -0.3327)),
    ("C", (1.4238, -0.3790, -0.0633)),
    ("O", (2.6004, -0.6922, -0.1157)),
    ("O", (0.9688, 0.8653, 0.2725)),
    ("H", (-0.9609, 1.5112, 0.6818)),
    ("H", (-0.5495, 1.2777, -1.0375)),
    ("H", (-1.6369, -0.8196, -0.5662)),
    ("H", (-1.0229, -0.8591, 1.1074)),
]
Z = {"H": 1, "C": 6, "O": 8}


def ethylene_carbonate() -> StructureRecord:
    return StructureRecord(
        numbers=np.array([Z[s] for s, _ in EC_ANGSTROM]),
        positions_angstrom=np.array([xyz for _, xyz in EC_ANGSTROM]),
    )


def basis_sizes() -> tuple[int, int]:
    """(n_basis, n_aux) of EC in def2-TZVPD with PySCF's default JK-fit auxiliary basis."""
    from pyscf import df, gto

    mol = gto.M(atom=EC_ANGSTROM, basis="def2-TZVPD", verbose=0)
    auxmol = df.addons.make_auxmol(mol, df.addons.make_auxbasis(mol, mp2fit=False))
    return int(mol.nao_nr()), int(auxmol.nao_nr())


def timed(engine: str, calculation: Calculation) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        label = get_engine(engine).compute(ethylene_carbonate(), calculation)
    except EngineError as error:
        return {"ok": False, "error_class": error.error_class, "error": str(error)[:300]}
    return {
        "ok": True,
        "wall_s": round(time.perf_counter() - start, 2),
        "energy_hartree": label.total_energy_hartree,
        "engine_version": label.provenance.get("engine_version"),
        "settings_not_applied": label.provenance.get("settings_not_applied"),
    }


def hybrid_dft(threads: int) -> dict[str, Any]:
    n_basis, n_aux = basis_sizes()
    results: dict[str, Any] = {
        "n_basis": n_basis,
        "n_aux": n_aux,
        "paper_formula_s": round(7e-7 * n_basis**2 * n_aux + 1, 1),
        "threads": threads,
    }
    level = Calculation("wB97X-D3BJ", "def2-TZVPD", {"density_fit": True, "threads": threads})
    results["pyscf_cpu"] = timed(
        "pyscf", Calculation(level.method, level.basis, {**level.settings, "use_gpu": False})
    )
    results["gpu"] = (
        timed("pyscf", Calculation(level.method, level.basis, {**level.settings, "use_gpu": True}))
        if gpu_available()
        else "no GPU available on this machine (gpu4pyscf job not run)"
    )
    if get_engine("psi4").available().ok:
        results["psi4_wB97X-D3BJ"] = timed("psi4", level)
        if not results["psi4_wB97X-D3BJ"]["ok"]:
            results["psi4_wB97X_no_dispersion"] = timed(
                "psi4", Calculation("wB97X", "def2-TZVPD", dict(level.settings))
            )
    return results


def queue_throughput(n_jobs: int) -> dict[str, Any]:
    from interphase.db.levels import get_or_create_level
    from interphase.db.session import transaction, upgrade
    from interphase.db.structures import store_structures
    from interphase.labeling.queue.enqueue import create_jobs
    from interphase.labeling.queue.run import run_pending_jobs

    rng = np.random.default_rng(0)
    water = np.array([[0.0, 0.0, 0.0], [0.0, 0.757, 0.586], [0.0, -0.757, 0.586]])
    records = [
        StructureRecord(
            numbers=np.array([8, 1, 1]),
            positions_angstrom=water + rng.normal(scale=0.01, size=(3, 3)),
        )
        for _ in range(n_jobs)
    ]
    engine = get_engine("tblite")
    start = time.perf_counter()
    for record in records:
        engine.compute(record, Calculation("GFN2-xTB"))
    bare_s = (time.perf_counter() - start) / n_jobs
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'bench.sqlite'}"
        upgrade(url)
        with transaction(url) as session:
            ids = store_structures(session, records, generator="bench").ids
            create_jobs(session, ids, get_or_create_level(session, "GFN2-xTB"))
        start = time.perf_counter()
        report = run_pending_jobs(url)
        queue_s = time.perf_counter() - start
    return {
        "jobs": n_jobs,
        "succeeded": report.succeeded,
        "jobs_per_s": round(n_jobs / queue_s, 1),
        "engine_ms_per_job": round(1e3 * bare_s, 2),
        "queue_overhead_ms_per_job": round(1e3 * (queue_s / n_jobs - bare_s), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-dft", action="store_true", help="Only the queue benchmark.")
    parser.add_argument("--jobs", type=int, default=200, help="GFN2-xTB jobs through the queue.")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    summary: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores",
        "queue_gfn2_xtb": queue_throughput(args.jobs),
    }
    if not args.skip_dft:
        summary["ethylene_carbonate_wB97X-D3BJ_def2-TZVPD"] = hybrid_dft(args.threads)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
