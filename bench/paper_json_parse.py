"""Parse speed of the paper-json reader alone (framing + orjson + records), no database.

    .venv/bin/python bench/paper_json_parse.py [N_ENTRIES] [--repeats R]

Generates N synthetic entries (default 20,000) and reads them with
:func:`interphase.io.paper_json.iter_paper_json` R times (default 5); prints the
best and median wall time. To compare with an older commit, run the same script
with ``PYTHONPATH`` pointing at that commit's ``platform/`` (``git archive``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from make_paper_dataset import generate_paper_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("n_entries", type=int, nargs="?", default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import interphase
    from interphase.io.paper_json import iter_paper_json

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.json"
        generate_paper_dataset(path, args.n_entries, seed=1, workers=1)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            count = sum(1 for _ in iter_paper_json(path))
            times.append(time.perf_counter() - start)
    times.sort()
    print(
        f"{interphase.__file__}: {count} entries ({path.name}), best {times[0]:.2f} s,"
        f" median {times[len(times) // 2]:.2f} s, {count / times[0]:,.0f} entries/s"
    )


if __name__ == "__main__":
    main()
