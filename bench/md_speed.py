"""MD speed of the multi-head potential on a ~1000-atom Li/EC interface (ns/day, ms/step).

The system: a periodic bcc Li(100) slab of 512 atoms (8×8 surface cells, 4
conventional layers) with 50 ethylene-carbonate molecules (500 atoms) packed
above it (``interphase.structures.interface.build_interface``), 1012 atoms,
periodic in x, y and z (vacuum above the molecules). Langevin MD at 300 K with
a 0.5 fs step through ASE and :class:`InterphaseCalculator`, for each variant:

- ``plain``: ``evaluate_structure`` every step (new neighbour list and batch);
- ``fast``: the fast path (Verlet list with a 1 Å skin, frozen on-device model);
- ``fast-float32``: the fast path in float32;
- ``fast-compiled`` (only with ``--compile``): the fast path with
  ``torch.compile(model.compute, dynamic=True)``; compilation time is reported
  as the first-step time.

The model is the default architecture (64-64 element networks, charges,
Coulomb 8 Å) with untrained weights unless ``--model`` names an artifact; speed
does not depend on the weights. References: ~0.4 ns/day for 1000 atoms on a
GTX 1080 Ti through ASE (transfer-learning paper); the target here is
≥ 20 ns/day on an H100.

    .venv/bin/python bench/md_speed.py                                  # CPU, 1 thread
    .venv/bin/python bench/md_speed.py --device cuda --steps 200 --compile

Results: ``bench/results/md_speed-<device>.csv`` and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch
from ase import Atoms

from interphase.dynamics import MDSettings, run_md
from interphase.models.calculator import InterphaseCalculator
from interphase.models.multihead import MultiHeadPotential
from interphase.structures.interface import build_interface

RESULTS = Path(__file__).parent / "results"
PAPER_NS_PER_DAY = 0.4
TARGET_NS_PER_DAY = 20.0


def interface(seed: int = 0) -> Atoms:
    """The 1012-atom Li(100)/EC interface (cached under bench/results)."""
    from ase.io import read

    cached = RESULTS / f"md_speed-interface-seed{seed}.extxyz"
    if cached.exists():
        atoms = read(cached)
        assert isinstance(atoms, Atoms)
        return atoms
    built = build_interface(
        np.random.default_rng(seed),
        species=["EC"] * 50,
        repeats_xy=(8, 8),
        layers=4,
        region_height_angstrom=9.0,
        vacuum_angstrom=6.0,
    ).atoms
    RESULTS.mkdir(exist_ok=True)
    built.write(cached)
    return built


def model(path: str | None) -> MultiHeadPotential:
    if path is not None:
        from interphase.models.artifact import load_model

        return load_model(path)
    torch.manual_seed(0)
    potential = MultiHeadPotential([1, 3, 6, 8], ["PBE-D3", "hybrid"])
    potential.set_energy_reference(
        np.array([[-0.5, -7.4, -37.8, -75.0], [-0.5, -7.4, -37.8, -75.0]]), np.full(2, 0.01)
    )
    return potential.eval()


def run_variant(
    name: str, atoms: Atoms, potential: MultiHeadPotential, args: argparse.Namespace
) -> dict[str, object]:
    fast = name != "plain"
    dtype = torch.float32 if name == "fast-float32" else None
    calculator = InterphaseCalculator(
        potential, args.head, device=args.device, dtype=dtype, fast=fast
    )
    if name == "fast-compiled":
        session = calculator.session
        session.model.compute = torch.compile(session.model.compute, dynamic=True)  # type: ignore[method-assign]
    settings = MDSettings(steps=args.steps, timestep_fs=0.5, temperature_k=300.0, seed=0)
    moving = atoms.copy()
    started = time.perf_counter()
    result = run_md(moving, calculator, settings, keep_frames=False)
    if args.device == "cuda":
        torch.cuda.synchronize()
    speed = result.speed
    return {
        "device": args.device,
        "variant": name,
        "atoms": len(atoms),
        "steps_timed": speed.steps_timed,
        "ms_per_step": speed.ms_per_step,
        "ns_per_day": speed.ns_per_day,
        "first_force_call_s": speed.first_step_seconds,
        "neighbour_list_builds": calculator.session.list_builds,
        "wall_s": time.perf_counter() - started,
        "threads": torch.get_num_threads(),
    }


def markdown(rows: list[dict[str, object]]) -> str:
    lines = [
        "| variant | atoms | ms/step | ns/day | first force call s | list builds / steps |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['atoms']} | {r['ms_per_step']:.1f} | {r['ns_per_day']:.3f} "
            f"| {r['first_force_call_s']:.2f} | {r['neighbour_list_builds']} / "
            f"{int(r['steps_timed']) + 1} |"  # type: ignore[call-overload]
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default=None, help="model artifact (default: untrained)")
    parser.add_argument("--head", default="PBE-D3")
    parser.add_argument("--compile", action="store_true", help="add the torch.compile variant")
    parser.add_argument("--variants", nargs="+", default=["plain", "fast", "fast-float32"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    atoms, potential = interface(), model(args.model)
    variants = list(args.variants) + (["fast-compiled"] if args.compile else [])
    rows = []
    for name in variants:
        rows.append(run_variant(name, atoms, potential, args))
        print(rows[-1], flush=True)
    path = RESULTS / f"md_speed-{args.device}.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(markdown(rows))
    print(
        f"\nreference: {PAPER_NS_PER_DAY} ns/day (1080 Ti, ASE, paper); target ≥ "
        f"{TARGET_NS_PER_DAY} ns/day on an H100.  → {path}"
    )


if __name__ == "__main__":
    main()
