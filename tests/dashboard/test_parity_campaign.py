"""The held-out test split on the parity plots of a real campaign (``tiny.yaml``).

The evaluate step writes the model's predictions on the campaign's test split
beside the run's own parity file and names it in the run's metrics; the run's
page and its iteration's page draw it as its own series, with energies
relative to the per-element reference fitted over every split.

On SQLite only: a whole campaign is the cost, and the pages' queries run on
PostgreSQL too in ``test_parity_pages.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from interphase.campaign.records import StepName, held_out_ids, step_outputs
from interphase.dashboard.app import create_app
from interphase.db.models import Iteration, TrainingRun
from interphase.db.session import make_engine, transaction, upgrade
from tests.dashboard.conftest import TOKEN
from tests.dashboard.real_campaign import run_tiny
from tests.dashboard.test_parity_pages import charts_of, trace

pytestmark = pytest.mark.slow


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'interphase.sqlite'}"
    upgrade(url)
    yield url
    make_engine(url).dispose()


def test_the_evaluate_step_writes_the_test_split_and_the_pages_draw_it(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = run_tiny(sqlite_url, monkeypatch, tmp_path / "data")
    with transaction(sqlite_url, read_only=True) as session:
        test_ids = held_out_ids(session, real.campaign_id)
        evaluated = step_outputs(session, real.campaign_id, 0, StepName.evaluate)
        run = session.scalars(
            select(TrainingRun)
            .join(Iteration, TrainingRun.iteration_id == Iteration.id)
            .where(Iteration.campaign_id == real.campaign_id, Iteration.index == 0)
        ).one()
        run_id, heads, metrics = run.id, list(run.heads), dict(run.metrics)
    assert test_ids
    path = Path(metrics["test_parity_path"])
    assert evaluated["test_parity_path"] == str(path)
    assert path.parent == Path(metrics["parity_path"]).parent
    with np.load(path) as arrays:
        tested = {
            head: arrays[f"test/{head}/energy_structure_id"].tolist()
            for head in heads
            if len(arrays.get(f"test/{head}/energy_structure_id", []))
        }
    assert tested and all(set(ids) <= set(test_ids) for ids in tested.values())
    with TestClient(create_app(sqlite_url, token=TOKEN)) as client:
        model = charts_of(client.get(f"/models/{run_id}").text)
        iteration = charts_of(client.get(f"/campaigns/{real.campaign_id}/iterations/0").text)
    for k, head in enumerate(heads):
        if head not in tested:
            continue
        for energy in (
            model[f"chart-parity-energy-{k}"],
            iteration[f"chart-parity-energy-{run_id}-{k}"],
        ):
            title = energy["layout"]["xaxis"]["title"]["text"].replace("<br>", " ")
            assert "relative to per-element reference" in title
            assert len(trace(energy, "test (held out)")["x"]) == len(tested[head])
