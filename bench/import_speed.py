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
    print(
        json.dumps(
            {
                "entries": report.n_read,
                "new": report.n_new_structures,
                "seconds": seconds,
                "entries_per_s": report.n_read / seconds,
                "peak_rss_mib": peak_mib,
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
    print("| entries | file MiB | backend | seconds | entries/s | peak RSS MiB |")
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
                if name == "postgresql":
                    _admin(args.postgres_url, f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")
                    _admin(args.postgres_url, f"CREATE DATABASE {SCRATCH_DB}")
                result = _run_import(path, url)
                if name == "postgresql":
                    _admin(args.postgres_url, f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")
                print(
                    f"| {size:,} | {mib:.0f} | {name} | {result['seconds']:.1f} | "
                    f"{result['entries_per_s']:,.0f} | {result['peak_rss_mib']:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
