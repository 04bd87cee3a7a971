"""Import speed and peak memory of `paper-json` datasets into SQLite and PostgreSQL.

Generates synthetic files in the published format (mixed molecular clusters and
periodic Li cells, realistic sizes), then imports each into a fresh database in
a child process, so the child's peak RSS measures the import alone. Two file
sizes show whether memory grows with the file.

    .venv/bin/python bench/import_speed.py                      # 20k and 100k entries
    .venv/bin/python bench/import_speed.py --sizes 100000 --postgres-url URL

PostgreSQL is used when --postgres-url (an admin URL; a scratch database is
created and dropped) or INTERPHASE_TEST_POSTGRES_URL is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from make_paper_dataset import generate_paper_dataset

SCRATCH_DB = "interphase_bench_import"


def _child(path: str, url: str) -> None:
    """Runs in a child process: migrate, import, print JSON with timings and peak RSS."""
    from interphase.db.session import upgrade
    from interphase.io.importer import import_dataset

    upgrade(url)
    start = time.perf_counter()
    report = import_dataset(path, url=url)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reader_peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "entries": report.n_read,
                "new": report.n_new_structures,
                "seconds": seconds,
                "entries_per_s": report.n_read / seconds,
                "peak_rss_mib": peak_mib,
                "reader_peak_rss_mib": reader_peak_mib,
            }
        )
    )


def _admin(url: str, statement: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(statement))
    engine.dispose()


def _run_import(path: Path, url: str) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", str(path), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median is shown")
    parser.add_argument("--postgres-url", default=os.environ.get("INTERPHASE_TEST_POSTGRES_URL"))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return

    from sqlalchemy.engine import make_url

    print(
        f"# import speed — {platform.node()}, {os.cpu_count()} cores, {datetime.now(UTC):%Y-%m-%d}"
    )
    print(
        "| entries | file MiB | backend | seconds (median) | entries/s (median, range) "
        "| peak RSS MiB (writer / reader) |"
    )
    print("|---:|---:|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            path = Path(tmp) / f"paper-{size}.json"
            generate_paper_dataset(path, size, seed=0)
            mib = path.stat().st_size / 2**20
            backends = {"sqlite": f"sqlite:///{Path(tmp) / f'bench-{size}.sqlite'}"}
            if args.postgres_url:
                backends["postgresql"] = (
                    make_url(args.postgres_url).set(database=SCRATCH_DB).render_as_string(False)
                )
            for name, url in backends.items():
                runs = [_one_case(name, url, path, args.postgres_url) for _ in range(args.repeat)]
                runs.sort(key=lambda r: r["seconds"])
                median = runs[len(runs) // 2]
                rates = [r["entries_per_s"] for r in runs]
                print(
                    f"| {size:,} | {mib:.0f} | {name} | {median['seconds']:.1f} | "
                    f"{median['entries_per_s']:,.0f} ({min(rates):,.0f}–{max(rates):,.0f}) | "
                    f"{median['peak_rss_mib']:.0f} / {median['reader_peak_rss_mib']:.0f} |",
                    flush=True,
                )


def _one_case(name: str, url: str, path: Path, admin_url: str | None) -> dict[str, float]:
    """One import into a fresh database."""
    if name == "postgresql":
        assert admin_url is not None
        _admin(admin_url, f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")
        _admin(admin_url, f"CREATE DATABASE {SCRATCH_DB}")
    else:
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    try:
        return _run_import(path, url)
    finally:
        if name == "postgresql":
            assert admin_url is not None
            _admin(admin_url, f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")


if __name__ == "__main__":
    main()
