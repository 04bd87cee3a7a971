"""Training throughput and peak memory: direct force training vs energy-only (GPR-ANN).

The GPR-ANN paper's point: force training differentiates the energy twice
(forces in the loss, then the loss w.r.t. the weights), which costs time and
memory that grow with the descriptor cutoff; energy-only training on reference
plus GP-synthetic energies avoids it. This benchmark measures both modes of
``interphase.training.trainer.train_multihead`` at AEV radial cutoffs 5.2, 6.5
and 8.5 Å on one fixed synthetic dataset:

- ``--clusters`` 46-atom clusters (4 EC + 6 Li, rattled copies of 8 random
  packings) with a ``hybrid`` energy + gradient and GFN2-xTB-like charges;
- ``--cells`` periodic bcc Li 3×3×3 cells (54 atoms) with ``PBE-D3`` energy +
  gradient only (masked elsewhere).

Label values are random (throughput and memory do not depend on them). In
energy-only mode the same structures are used with their energies only (in a
real run part of them would be GP-synthetic energies; the cost per structure
is the same). The model is the default architecture (64-64 element networks,
charge network, Coulomb 8 Å shifted force), so the neighbour list reaches
max(radial cutoff, 8 Å) and the radial cutoff changes the AEV pairs.

Each (mode, cutoff) runs in its own process so that peak memory is its own:
on CUDA ``torch.cuda.max_memory_allocated``, on CPU the process's peak RSS
(``ru_maxrss``) beside its RSS before training (model and neighbour lists).
Throughput is training structures per second, the median over the epochs after
the first; memory peaks are read at the end of the last training epoch.

    .venv/bin/python bench/training.py                                   # CPU, 1 thread
    .venv/bin/python bench/training.py --device cuda --clusters 2000 --cells 100 \\
        --batch-size 128 --epochs 3                                      # GPU

Results: ``bench/results/training-<device>.csv`` and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"
CUTOFFS = (5.2, 6.5, 8.5)
MODES = ("forces", "energy_only")


def examples(n_clusters: int, n_cells: int, seed: int = 0) -> list:  # type: ignore[type-arg]
    """The synthetic dataset (see module docstring); random labels."""
    from ase.build import bulk

    from interphase.structures.molecules import molecular_cluster
    from interphase.training.trainer import TrainingExample

    rng = np.random.default_rng(seed)
    bases = [
        molecular_cluster(["EC"] * 4 + ["Li"] * 6, rng, size_angstrom=5.0)[0] for _ in range(8)
    ]
    out = []
    for k in range(n_clusters):
        base = bases[k % len(bases)]
        n = base.n_atoms
        charges = rng.normal(scale=0.3, size=n)
        out.append(
            TrainingExample(
                numbers=base.numbers,
                positions_angstrom=base.positions_angstrom + rng.normal(scale=0.05, size=(n, 3)),
                cell_angstrom=None,
                pbc=(False, False, False),
                energies_hartree={"hybrid": -1300.0 + rng.normal(scale=0.05)},
                gradients_hartree_per_angstrom={"hybrid": rng.normal(scale=0.02, size=(n, 3))},
                charges_e=charges - charges.mean(),
            )
        )
    lithium = bulk("Li", "bcc", a=3.44, cubic=True).repeat((3, 3, 3))
    for _ in range(n_cells):
        cell = lithium.copy()
        cell.rattle(0.05, seed=int(rng.integers(2**31)))
        out.append(
            TrainingExample(
                numbers=cell.numbers,
                positions_angstrom=cell.positions,
                cell_angstrom=np.asarray(cell.cell[:]),
                pbc=(True, True, True),
                energies_hartree={"PBE-D3": -7.5 * len(cell) + rng.normal(scale=0.01)},
                gradients_hartree_per_angstrom={
                    "PBE-D3": rng.normal(scale=0.005, size=(len(cell), 3))
                },
            )
        )
    return out


def rss_mib() -> float:
    """Current resident set size of this process (MiB), from /proc."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_one(mode: str, cutoff: float, args: argparse.Namespace) -> dict[str, object]:
    """Train one configuration in this process and measure it."""
    import torch

    from interphase.training.settings import ModelSettings, TrainingSettings
    from interphase.training.trainer import TrainingCallbacks, train_multihead

    torch.set_num_threads(args.threads)
    data = examples(args.clusters, args.cells)
    settings = TrainingSettings(
        mode=mode,  # type: ignore[arg-type]
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_fraction=0.0,
        schedule="constant",
        device=args.device,
        model=ModelSettings(radial_cutoff_angstrom=cutoff),
    )
    cuda = args.device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    rss_before = rss_mib()
    seconds: list[float] = []
    peaks: dict[str, float] = {}

    def on_epoch(report: Any) -> None:
        seconds.append(report.seconds)
        # Peaks so far, read after each epoch: the final evaluation of train_multihead
        # (forces for every labelled structure, both modes) is not training.
        peaks["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if cuda:
            peaks["cuda"] = torch.cuda.max_memory_allocated() / 2**20

    prepared = time.perf_counter()
    train_multihead(data, settings=settings, callbacks=TrainingCallbacks(on_epoch=on_epoch))
    timed = seconds[1:] or seconds  # first epoch: allocator and cache warm-up
    return {
        "device": args.device,
        "mode": mode,
        "radial_cutoff_angstrom": cutoff,
        "structures": len(data),
        "batch_size": args.batch_size,
        "epochs_timed": len(timed),
        "structures_per_s": len(data) / float(np.median(timed)),
        "first_epoch_s": seconds[0],
        "total_s": time.perf_counter() - prepared,
        "peak_cuda_mib": peaks.get("cuda"),
        "rss_before_training_mib": rss_before,
        "peak_rss_mib": peaks["rss"],
        "threads": args.threads,
    }


def markdown(rows: list[dict[str, object]]) -> str:
    memory = "peak CUDA MiB" if rows and rows[0]["device"] == "cuda" else "peak RSS MiB (before)"
    lines = [
        f"| mode | radial cutoff Å | structures/s | first epoch s | {memory} |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r["peak_cuda_mib"] is not None:
            mem = f"{r['peak_cuda_mib']:.0f}"
        else:
            mem = f"{r['peak_rss_mib']:.0f} ({r['rss_before_training_mib']:.0f})"
        lines.append(
            f"| {r['mode']} | {r['radial_cutoff_angstrom']} | {r['structures_per_s']:.1f} "
            f"| {r['first_epoch_s']:.1f} | {mem} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clusters", type=int, default=240)
    parser.add_argument("--cells", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cutoffs", type=float, nargs="+", default=list(CUTOFFS))
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--one", nargs=2, metavar=("MODE", "CUTOFF"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], float(args.one[1]), args)))
        return
    rows = []
    passed = [a for a in sys.argv[1:] if not a.startswith("--one")]
    for mode in args.modes:
        for cutoff in args.cutoffs:
            child = subprocess.run(
                [sys.executable, __file__, *passed, "--one", mode, str(cutoff)],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"training-{args.device}.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(markdown(rows))
    print(f"\n{len(rows)} configurations → {path}")


if __name__ == "__main__":
    main()
