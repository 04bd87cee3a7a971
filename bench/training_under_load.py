"""Training beside busy processes: does it degrade in proportion to the load?

A demo-size training (``bench/training.py``'s synthetic clusters and cells,
forces mode) runs idle, then beside 1, 3 and 6 busy processes
(``python -c 'while 1: pass'``, started and stopped by this script), in two
variants, each in a fresh process so that the OpenMP runtime reads its
environment anew:

- ``before``: what the platform did before its thread policy: torch's default
  threads (one per core) and libgomp's default waiting (spin, then sleep).
- ``policy``: ``interphase.threads``: threads from the available cores
  (affinity, cgroup quota) and a short libgomp spin (``GOMP_SPINCOUNT=2000``).
- ``passive``: the same threads with ``OMP_WAIT_POLICY=PASSIVE`` (no spinning).

Fair sharing of C cores among B busy processes and one training of T threads
gives the training about C·T/(B+T) cores, so with 2 cores and 3 busy processes
a 2-thread training should take about 2.5× its idle time. The goal is at most 3×.

    .venv/bin/python bench/training_under_load.py            # 1, 3 and 6 busy
    .venv/bin/python bench/training_under_load.py --busy 3 --epochs 10

Results: ``bench/results/training-under-load.csv`` and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
VARIANTS = ("before", "policy", "passive")


def train_once(args: argparse.Namespace) -> dict[str, float]:
    """Train in this process (the child) and return seconds per epoch after the first."""
    if args.variant == "before":
        # torch (and its libgomp) loads before interphase, whose import would set
        # GOMP_SPINCOUNT: libgomp keeps its default (a long spin, then sleep).
        import torch
    sys.path.insert(0, str(Path(__file__).parent))
    import torch
    from training import examples  # bench/training.py

    from interphase.training.settings import TrainingSettings
    from interphase.training.trainer import TrainingCallbacks, train_multihead

    if args.variant in ("policy", "passive"):
        from interphase.threads import plan_threads

        threads = plan_threads(0).threads  # train_multihead applies it (limited_threads)
    else:
        threads = torch.get_num_threads()
    data = examples(args.clusters, args.cells)
    settings = TrainingSettings(
        mode="forces",
        epochs=args.epochs,
        batch_size=32,
        validation_fraction=0.0,
        schedule="constant",
        device="cpu",
    )
    seconds: list[float] = []
    train_multihead(
        data,
        settings=settings,
        callbacks=TrainingCallbacks(on_epoch=lambda report: seconds.append(report.seconds)),
    )
    timed = seconds[1:] or seconds
    return {"threads": threads, "epoch_s": sum(timed) / len(timed), "total_s": sum(seconds)}


def child_env(variant: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "INTERPHASE_THR", "GOMP_"))
    }
    for name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(name, None)
    if variant == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    elif variant == "policy":  # what importing interphase sets, before torch loads
        from interphase.threads import prefer_short_spinning

        prefer_short_spinning(env)
    return env


def measure(variant: str, busy: int, args: argparse.Namespace) -> dict[str, object]:
    hogs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(busy)]
    try:
        time.sleep(0.5 if busy else 0.0)
        command = [
            sys.executable, __file__, "--child", variant,
            "--clusters", str(args.clusters), "--cells", str(args.cells),
            "--epochs", str(args.epochs),
        ]  # fmt: skip
        out = subprocess.run(
            command, env=child_env(variant), capture_output=True, text=True, check=True
        )
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {"variant": variant, "busy": busy, **result}


def markdown(rows: list[dict[str, object]]) -> str:
    idle = {r["variant"]: float(r["epoch_s"]) for r in rows if r["busy"] == 0}  # type: ignore[arg-type]
    lines = [
        "| variant | busy processes | threads | s/epoch | × its idle | × idle before |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        epoch = float(r["epoch_s"])  # type: ignore[arg-type]
        lines.append(
            f"| {r['variant']} | {r['busy']} | {r['threads']} | {epoch:.2f} | "
            f"{epoch / idle[str(r['variant'])]:.2f} | {epoch / idle['before']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--busy", type=int, nargs="+", default=[1, 3, 6])
    parser.add_argument("--clusters", type=int, default=120)
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.variant = args.child
        print(json.dumps(train_once(args)))
        return
    rows = []
    for busy in [0, *args.busy]:
        for variant in args.variants:
            row = measure(variant, busy, args)
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / "training-under-load.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{os.cpu_count()} CPUs; affinity {len(os.sched_getaffinity(0))}")
    print(markdown(rows))


if __name__ == "__main__":
    main()
