"""Starting a campaign from a large paper-json dataset: seeding time and peak memory.

Generates a synthetic file in the published format (``make_paper_dataset.py``),
imports it, records a campaign whose ``seed_data`` names the file, and seeds it
(what the generate step of iteration 0 does) in a child process, so the
child's peak RSS measures the seeding alone. A second campaign is then seeded
from the first (``seed_data: [{campaign: …}]``).

    .venv/bin/python bench/seed_campaign.py --entries 100000
    .venv/bin/python bench/seed_campaign.py --entries 600000 --postgres-url URL

PostgreSQL is used when --postgres-url (an admin URL; a scratch database is
created and dropped) or INTERPHASE_TEST_POSTGRES_URL is given; else SQLite.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from make_paper_dataset import MOLECULE_LEVEL, PERIODIC_LEVEL, generate_paper_dataset

SCRATCH_DB = "interphase_bench_seed"


def _config(name: str, selector: dict[str, str]) -> dict[str, object]:
    """A campaign routing both of the dataset's (default) levels, seeded by ``selector``."""
    return {
        "name": name,
        "routing": [
            {"level": MOLECULE_LEVEL, "structures": "molecular", "mode": "selected"},
            {"level": PERIODIC_LEVEL, "structures": "periodic", "mode": "selected"},
        ],
        "generators": {"molecules": [{"molecules": ["EC"]}]},
        "seed_data": [selector],
    }


def _child(url: str, name: str, selector: str) -> None:
    """Runs in a child process: seed campaign ``name``; print seconds, labels and peak RSS."""
    from interphase.campaign.config import CampaignConfig
    from interphase.campaign.records import create_campaign, ensure_level
    from interphase.campaign.seeding import seed_campaign
    from interphase.db.session import transaction

    config = CampaignConfig.model_validate(_config(name, json.loads(selector)))
    start = time.perf_counter()
    with transaction(url) as session:
        campaign = create_campaign(session, config)
        level_ids = {
            route.level: ensure_level(session, config.level_spec(route.level)).id
            for route in config.routing
        }
        seeded = seed_campaign(session, campaign.id, config.seed_data[0], level_ids)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"labels": seeded, "seconds": seconds, "peak_rss_mib": peak}))


def _run(*args: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"seeding failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _admin(url: str, statement: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(statement))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--postgres-url", default=os.environ.get("INTERPHASE_TEST_POSTGRES_URL"))
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    from interphase.db.session import upgrade
    from interphase.io.importer import import_dataset

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"paper-{args.entries}.json"
        generate_paper_dataset(path, args.entries)
        if args.postgres_url:
            _admin(args.postgres_url, f"DROP DATABASE IF EXISTS {SCRATCH_DB}")
            _admin(args.postgres_url, f"CREATE DATABASE {SCRATCH_DB}")
            url = args.postgres_url.rsplit("/", 1)[0] + f"/{SCRATCH_DB}"
        else:
            url = f"sqlite:///{Path(scratch) / 'seed.sqlite'}"
        file_mib = round(path.stat().st_size / 2**20)
        upgrade(url)
        start = time.perf_counter()
        report = import_dataset(path, url=url)
        imported_s = time.perf_counter() - start
        from_file = _run(url, "from-file", json.dumps({"file": path.name}))
        from_campaign = _run(url, "from-campaign", json.dumps({"campaign": "from-file"}))
        if args.postgres_url:
            from interphase.db.session import make_engine

            make_engine(url).dispose()
            _admin(args.postgres_url, f"DROP DATABASE {SCRATCH_DB}")
    print(
        json.dumps(
            {
                "entries": report.n_read,
                "file_mib": file_mib,
                "backend": url.split(":", 1)[0],
                "import_s": round(imported_s, 1),
                "seed_from_file": from_file,
                "seed_from_campaign": from_campaign,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
