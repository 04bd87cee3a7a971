"""Benchmark: a 3-iteration campaign (the demo's configuration, larger) on this machine.

Runs the real campaign flow (Prefect server, job queue with worker processes,
GPs, training, MD) on a fresh SQLite database in a temporary data directory and
prints, as Markdown for bench/RESULTS.md: time per step and per iteration, the
orchestration overhead (time not spent in engines, fits or training), labels
per level, the uncertain fraction per iteration and the per-head test errors.

    .venv/bin/python bench/campaign.py [--scale 2] [--iterations 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def scaled_config(scale: int, iterations: int) -> dict:
    import yaml

    data = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
    data["name"] = f"bench-{int(time.time())}"
    for lattice in data["generators"]["lattice"]:
        lattice["n_per_packing"] *= scale
    data["generators"]["molecules"][0]["n_per_cluster"] *= scale
    data["exploration"]["starts"] *= scale
    data["selection"]["max_picks_per_level"] *= scale
    data["stopping"]["max_iterations"] = iterations
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=2, help="Size factor over the demo.")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="interphase-bench-campaign-"))
    os.environ["INTERPHASE_DATA_DIR"] = str(data_dir)
    os.environ.pop("INTERPHASE_DATABASE_URL", None)

    from interphase.campaign.config import parse_campaign_config
    from interphase.campaign.records import find_campaign, steps_of
    from interphase.campaign.run import register_campaign
    from interphase.db.models import Iteration
    from interphase.db.session import require_schema, transaction
    from interphase_flows.runtime import prefect_api

    require_schema()
    config = parse_campaign_config(scaled_config(args.scale, args.iterations))
    register_campaign(None, config)
    start = time.perf_counter()
    with prefect_api(data_dir):
        from interphase_flows.campaign import campaign_flow

        campaign_flow(config.name, workers=args.workers)
    wall = time.perf_counter() - start

    with transaction(read_only=True) as session:
        campaign = find_campaign(session, config.name)
        steps = steps_of(session, campaign.id)
        iterations = (
            session.query(Iteration)
            .filter_by(campaign_id=campaign.id)
            .order_by(Iteration.index)
            .all()
        )
        summaries = [(it.index, it.summary) for it in iterations]
        stop = (campaign.stop_reason, campaign.stop_detail.get("message"))

    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"date {time.strftime('%Y-%m-%d')}; scale {args.scale}, {args.workers} workers"
    )
    print(
        f"Command: `.venv/bin/python bench/campaign.py --scale {args.scale} "
        f"--iterations {args.iterations} --workers {args.workers}`\n"
    )
    names = [s.name for s in steps if s.iteration_index == 0]
    print("| step | " + " | ".join(f"it {i} s" for i, _ in summaries) + " |")
    print("|---|" + "---:|" * len(summaries))
    per = defaultdict(dict)
    for s in steps:
        per[s.name][s.iteration_index] = s
    for name in names:
        cells = [f"{per[name][i].seconds:.1f}" if i in per[name] else "–" for i, _ in summaries]
        print(f"| {name} | " + " | ".join(cells) + " |")
    totals = [sum(s.seconds or 0 for s in steps if s.iteration_index == i) for i, _ in summaries]
    print("| **iteration** | " + " | ".join(f"**{t:.1f}**" for t in totals) + " |\n")
    step_time = sum(s.seconds or 0 for s in steps)
    compute = sum(s.compute_seconds or 0 for s in steps)
    print(
        f"Wall time {wall:.0f} s; steps {step_time:.0f} s, of which engines/fits/training/MD "
        f"{compute:.0f} s. Orchestration overhead: {100 * (1 - compute / wall):.1f} % of the "
        f"wall time ({wall - compute:.0f} s: Prefect, database, worker start-up, scoring).\n"
    )
    header = ("iteration", "labels (total)", "uncertain (select)", "pool uncertain", "test MAE")
    print("| " + " | ".join(header) + " |")
    print("|---:|---|---|---:|---|")
    for index, summary in summaries:
        labels = ", ".join(f"{lvl} {n}" for lvl, n in summary.get("labels_total", {}).items())
        select = ", ".join(
            f"{lvl} {v.get('uncertain_fraction'):.2f} ({v.get('n_scored')})"
            for lvl, v in summary.get("selection", {}).items()
            if v.get("uncertain_fraction") is not None
        )
        pool = summary.get("pool_uncertain_fraction")
        errors = ", ".join(
            f"{h} {v.get('energy_mae_mev_per_atom'):.1f}"
            for h, v in summary.get("test_errors", {}).items()
            if v.get("energy_mae_mev_per_atom") is not None
        )
        pool_text = "–" if pool is None else f"{pool:.2f}"
        print(f"| {index} | {labels} | {select or '–'} | {pool_text} | {errors} |")
    print(f"\nStopped: {stop[0]} ({stop[1]})")


if __name__ == "__main__":
    main()
