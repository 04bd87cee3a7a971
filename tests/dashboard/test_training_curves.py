"""Training-curve captions describe the lines drawn; tiny validation splits are named, not drawn.

Reported: the caption said "validation solid" for a run with no validation
split at all, and a GFN2-xTB validation split of one structure was drawn as a
curve 10-100x below the training loss.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from interphase.campaign.config import load_campaign_config
from interphase.campaign.run import register_campaign
from interphase.dashboard.training_curves import MIN_VALIDATION_STRUCTURES
from interphase.db.models import Iteration, TrainingEpochMetric, TrainingRun
from interphase.db.session import transaction
from tests.campaign.conftest import TINY

GFN1, GFN2 = "GFN1-xTB", "GFN2-xTB"


def record_run(
    url: str,
    validation: dict[str, int] | None,
    *,
    structures: int | None = None,
    iteration_id: int | None = None,
    before_0008: bool = False,
) -> int:
    """A finished two-head run of 3 epochs; ``validation``: head -> validation energies.

    ``structures``: the validation split's size; ``before_0008``: no sizes (older rows).
    """
    heads = [GFN1, GFN2]
    with transaction(url) as session:
        run = TrainingRun(
            config={"epochs": 3},
            heads=heads,
            label_ids=np.arange(40, dtype=np.int64),
            synthetic_label_ids=np.zeros(0, dtype=np.int64),
            status="succeeded",
            epochs_completed=3,
            iteration_id=iteration_id,
            metrics={},
        )
        session.add(run)
        session.flush()
        splits = {"train": {GFN1: 36, GFN2: 30}}
        if validation is not None:
            splits["validation"] = validation
        for epoch in (1, 2, 3):
            for split, sizes in splits.items():
                total = None if before_0008 else structures if split == "validation" else 36
                session.add(
                    TrainingEpochMetric(
                        training_run_id=run.id,
                        epoch=epoch,
                        split=split,
                        loss=10.0 / epoch,
                        n_structures=total,
                    )
                )
                for head in heads:
                    n = sizes.get(head, 0)
                    session.add(
                        TrainingEpochMetric(
                            training_run_id=run.id,
                            epoch=epoch,
                            split=split,
                            head=head,
                            n_energies=n,
                            energy_mae_mev_per_atom=5.0 / epoch if n else None,
                            n_forces=4 * n,
                            force_mae_mev_per_angstrom=50.0 / epoch if n else None,
                        )
                    )
        return run.id


def chart_names(page: str, chart: str) -> list[str]:
    match = re.search(
        rf'<script type="application/json" id="chart-{chart}">(.*?)</script>', page, re.S
    )
    assert match is not None, chart
    figure: dict[str, Any] = json.loads(match.group(1))
    return [trace["name"] for trace in figure["data"]]


def caption(page: str) -> str:
    match = re.search(r'<div class="curve-caption[^"]*">(.*?)</div>', page, re.S)
    assert match is not None
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


def test_a_run_without_validation_says_training_only(client: TestClient, local_env: str) -> None:
    run_id = record_run(local_env, None)
    page = client.get(f"/models/{run_id}").text
    assert "validation solid" not in page  # no validation line is drawn
    text = caption(page)
    assert "training only (dotted): the run held out no validation structures" in text
    assert chart_names(page, "loss") == ["loss (train)"]
    assert chart_names(page, "energy") == [f"{GFN1} (train)", f"{GFN2} (train)"]


def test_a_validation_split_of_one_structure_is_named_too_small_not_drawn(
    client: TestClient, local_env: str
) -> None:
    campaign_id = register_campaign(local_env, load_campaign_config(TINY))
    with transaction(local_env) as session:
        iteration = Iteration(campaign_id=campaign_id, index=0, status="running")
        session.add(iteration)
        session.flush()
        iteration_id = iteration.id
    run_id = record_run(local_env, {GFN1: 40, GFN2: 1}, structures=41, iteration_id=iteration_id)
    for path in (f"/models/{run_id}", f"/campaigns/{campaign_id}/iterations/0"):
        page = client.get(path).text
        text = caption(page)
        assert "training dotted, validation solid" in text, path
        assert f"{GFN2}: validation split of 1 structure: too small to judge" in text, path
        assert f"{GFN1}: validation split" not in text, path
        assert f"fewer than {MIN_VALIDATION_STRUCTURES} structures are not drawn" in text
        assert "the same for both splits" in text  # the loss's one definition
        suffix = "" if path.startswith("/models") else f"-{run_id}"
        assert chart_names(page, "loss" + suffix) == ["loss (train)", "loss (validation)"]
        energy = chart_names(page, "energy" + suffix)
        assert f"{GFN1} (validation)" in energy and f"{GFN2} (validation)" not in energy
        assert f"{GFN2} (train)" in energy


def test_a_loss_over_too_few_validation_structures_is_not_drawn(
    client: TestClient, local_env: str
) -> None:
    run_id = record_run(local_env, {GFN1: 2, GFN2: 2}, structures=2)
    page = client.get(f"/models/{run_id}").text
    text = caption(page)
    assert "validation solid" not in text
    assert "training only (dotted): no validation split is large enough to draw" in text
    assert "loss: validation split of 2 structures: too small to judge" in text
    assert f"{GFN1}: validation split of 2 structures: too small to judge" in text
    assert chart_names(page, "loss") == ["loss (train)"]


def test_runs_recorded_before_the_per_label_loss_say_so(client: TestClient, local_env: str) -> None:
    run_id = record_run(local_env, {GFN1: 40, GFN2: 40}, before_0008=True)
    text = caption(client.get(f"/models/{run_id}").text)
    assert "training dotted, validation solid" in text  # sized from the heads' energies
    assert "averaged per batch, so training and validation losses are not comparable" in text
