"""Neighbour-list build time: vesin against ASE on the 1,012-atom Li/EC interface.

Both backends of ``interphase.models.neighbours.neighbour_pairs`` in one run, at
the model's cutoffs (AEV radial 5.2 Å, Coulomb 8 Å, plus the MD Verlet skin),
median of ``--repeats`` builds after one warm-up, one thread.

    .venv/bin/python bench/neighbour_list.py

Prints a markdown table (ms per build, pairs, speed-up).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cutoffs", type=float, nargs="+", default=[5.7, 8.5])
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from md_speed import interface

    from interphase.models import neighbours

    atoms = interface()
    pbc, cell, positions = atoms.pbc, np.asarray(atoms.cell), atoms.positions
    print(f"{len(atoms)} atoms, cell {np.round(atoms.cell.lengths(), 1).tolist()} Å")
    print("| cutoff (Å) | pairs (full list) | ASE ms | vesin ms | speed-up |")
    print("|---|---|---|---|---|")
    for cutoff in args.cutoffs:
        timings = {}
        for name in ("ase", "vesin"):
            os.environ[neighbours.BACKEND_ENV] = name
            neighbours.neighbour_pairs(pbc, cell, positions, cutoff)  # warm-up
            seconds = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                i, _j, _s = neighbours.neighbour_pairs(pbc, cell, positions, cutoff)
                seconds.append(time.perf_counter() - start)
            timings[name] = 1e3 * float(np.median(seconds))
        print(
            f"| {cutoff:g} | {len(i):,} | {timings['ase']:.1f} | {timings['vesin']:.2f} | "
            f"{timings['ase'] / timings['vesin']:.0f}× |"
        )


if __name__ == "__main__":
    main()
