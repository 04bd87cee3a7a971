"""Campaign and iteration pages over a real campaign run, checked against the database.

The campaign is ``tests/campaign/tiny.yaml`` run to its end once per backend,
under a name made of markup: every page must show it as text.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import func, select

from interphase.campaign.config import load_campaign_config
from interphase.campaign.run import register_campaign
from interphase.dashboard.app import create_app
from interphase.db.models import (
    Campaign,
    CandidateScore,
    GPRModel,
    Iteration,
    LabelingJob,
    LevelOfTheory,
    Structure,
    SyntheticLabel,
    TrainingRun,
)
from interphase.db.session import transaction
from interphase.units import HARTREE_TO_MEV
from tests.campaign.conftest import TINY
from tests.conftest import BACKENDS
from tests.dashboard.conftest import TOKEN, WRITE_HEADERS
from tests.dashboard.real_campaign import HOSTILE, RealCampaign, module_database, run_tiny

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=BACKENDS)
def real(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealCampaign]:
    directory = tmp_path_factory.mktemp("real-campaign")
    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        module_database(request.param, directory, request) as url,
    ):
        yield run_tiny(url, monkeypatch, directory / "data", name=HOSTILE)


@pytest.fixture(scope="module")
def client(real: RealCampaign) -> Iterator[TestClient]:
    with TestClient(create_app(real.url, token=TOKEN)) as test_client:
        yield test_client


def charts_of(page: str) -> dict[str, Any]:
    """The Plotly figures a page carries, by element id (``chart-NAME``)."""
    blocks = re.findall(
        r'<script type="application/json" id="(chart-[^"]+)">(.*?)</script>', page, re.S
    )
    return {name: json.loads(body) for name, body in blocks}


def iterations(url: str, campaign_id: int) -> list[tuple[int, int]]:
    """(id, index) of the campaign's iterations."""
    with transaction(url, read_only=True) as session:
        rows = session.execute(
            select(Iteration.id, Iteration.index)
            .where(Iteration.campaign_id == campaign_id)
            .order_by(Iteration.index)
        )
        return list(rows)


def test_campaign_list_shows_state_reason_and_iterations(
    client: TestClient, real: RealCampaign
) -> None:
    page = client.get("/campaigns").text
    row = re.search(
        rf'<tr data-campaign="{real.campaign_id}" data-state="finished">(.*?)</tr>', page, re.S
    )
    assert row is not None, page
    cells = row.group(1)
    assert "max_iterations" in cells and "ran its 2 iterations" in cells
    assert re.search(r'<td class="num">2</td>', cells)  # two iterations finished
    assert f'href="/campaigns/{real.campaign_id}"' in cells


def test_campaign_page_numbers_are_the_databases(client: TestClient, real: RealCampaign) -> None:
    page = client.get(f"/campaigns/{real.campaign_id}").text
    charts = charts_of(page)
    with transaction(real.url, read_only=True) as session:
        scores = session.execute(
            select(
                Iteration.index,
                LevelOfTheory.name,
                CandidateScore.stage,
                func.count(),
                func.sum(func.cast(CandidateScore.uncertain, LabelingJob.attempt.type)),
                func.sum(func.cast(CandidateScore.picked, LabelingJob.attempt.type)),
            )
            .join(Iteration, CandidateScore.iteration_id == Iteration.id)
            .join(LevelOfTheory, CandidateScore.level_id == LevelOfTheory.id)
            .where(CandidateScore.campaign_id == real.campaign_id)
            .group_by(Iteration.index, LevelOfTheory.name, CandidateScore.stage)
        ).all()
        jobs = session.execute(
            select(Iteration.index, LabelingJob.state, func.count())
            .join(Iteration, LabelingJob.iteration_id == Iteration.id)
            .where(LabelingJob.campaign_id == real.campaign_id)
            .group_by(Iteration.index, LabelingJob.state)
        ).all()
        summaries = dict(
            session.execute(
                select(Iteration.index, Iteration.summary).where(
                    Iteration.campaign_id == real.campaign_id
                )
            ).all()
        )
    assert scores, "the campaign scored candidates"
    for index, level, stage, n, uncertain, picked in scores:
        row = re.search(
            rf'<tr data-score="{index}-{re.escape(level)}-{stage}">(.*?)</tr>', page, re.S
        )
        assert row is not None, (index, level, stage)
        numbers = re.findall(r'<td class="num">([^<]*)</td>', row.group(1))
        assert numbers[:2] == [str(n), str(uncertain)] and numbers[4] == str(picked)
    # The uncertain fraction chart is the same numbers (selection and next pool, per level).
    fraction = {trace["name"]: trace["y"] for trace in charts["chart-fraction"]["data"]}
    for index, level, stage, n, uncertain, _ in scores:
        name = f"{level} ({'selection' if stage == 'select' else 'next pool'})"
        assert fraction[name][index] == pytest.approx(uncertain / n)
    # Histograms: every finite selection score in some bin, the threshold drawn at 2 meV/atom.
    histogram = charts["chart-uncertainty-1"]
    assert histogram["layout"]["shapes"][0]["x0"] == pytest.approx(2.0)
    selected = {index: n for index, level, stage, n, _, _ in scores if stage == "select"}
    counts = [sum(trace["y"][:-1]) for trace in histogram["data"]]
    assert counts == [selected[i] for i in sorted(selected)]
    # Job outcomes per iteration and the learning curve per head.
    stacked = {trace["name"]: trace["y"] for trace in charts["chart-jobs"]["data"]}
    for index, state, n in jobs:
        assert stacked[state.value][index] == n
    energy = {trace["name"]: trace["y"] for trace in charts["chart-energy"]["data"]}
    for index, summary in summaries.items():
        for head, errors in summary["test_errors"].items():
            assert energy[head][index] == pytest.approx(errors["energy_mae_mev_per_atom"])
    labels = {trace["name"]: trace["y"] for trace in charts["chart-labels"]["data"]}
    last = max(summaries)
    assert {level: per[-1] for level, per in labels.items()} == summaries[last]["labels_total"]


def test_iteration_page_numbers_are_the_databases(client: TestClient, real: RealCampaign) -> None:
    (first_id, first), (_, second) = iterations(real.url, real.campaign_id)
    page = client.get(f"/campaigns/{real.campaign_id}/iterations/{first}").text
    steps = re.findall(r'<tr data-step="(\w+)" data-state="(\w+)">', page)
    assert steps == [(name, "succeeded") for name in (
        "generate", "label", "fit", "select", "refit", "augment", "train", "explore", "evaluate",
        "summary",
    )]  # fmt: skip
    assert f'href="/campaigns/{real.campaign_id}/iterations/{second}" rel="next"' in page
    with transaction(real.url, read_only=True) as session:
        generators = dict(
            session.execute(
                select(Structure.generator, func.count())
                .where(Structure.iteration_id == first_id)
                .group_by(Structure.generator)
            ).all()
        )
        gps = session.scalars(select(GPRModel).where(GPRModel.iteration_id == first_id)).all()
        gp_rows = {gp.id: (len(gp.training_label_ids), gp.metrics) for gp in gps}
        synthetic = dict(
            session.execute(
                select(LevelOfTheory.name, func.count())
                .select_from(SyntheticLabel)
                .join(GPRModel, SyntheticLabel.gpr_model_id == GPRModel.id)
                .join(LevelOfTheory, SyntheticLabel.level_id == LevelOfTheory.id)
                .where(GPRModel.iteration_id == first_id)
                .group_by(LevelOfTheory.name)
            ).all()
        )
        picked = session.execute(
            select(CandidateScore.structure_id, CandidateScore.std_per_atom_hartree).where(
                CandidateScore.iteration_id == first_id, CandidateScore.picked.is_(True)
            )
        ).all()
        run = session.scalars(select(TrainingRun).where(TrainingRun.iteration_id == first_id)).one()
        run_id, heads, epochs, parity_path = (
            run.id,
            list(run.heads),
            run.epochs_completed,
            run.metrics["parity_path"],
        )
    table = page.split('id="structures-by-generator"')[1].split("</table>")[0]
    assert dict(re.findall(r"<tr><th>([^<]+)</th><td class=\"num\">(\d+)</td></tr>", table)) == {
        g: str(n) for g, n in generators.items()
    }
    assert len(gp_rows) >= 2
    for gp_id, (n_labels, metrics) in gp_rows.items():
        row = re.search(rf'<tr data-gp="{gp_id}">(.*?)</tr>', page, re.S)
        assert row is not None
        numbers = re.findall(r'<td class="num">([^<]*)</td>', row.group(1))
        assert numbers[0] == str(n_labels)
        assert float(numbers[1]) == pytest.approx(
            metrics["validation_energy_mae_mev_per_atom"], rel=1e-2
        )
        assert "lengthscale_angstrom" in row.group(1)
    table = page.split('id="synthetic-by-level"')[1].split("</table>")[0]
    assert {
        k: int(v) for k, v in re.findall(r"<tr><th>([^<]+)</th><td class=\"num\">(\d+)</td>", table)
    } == synthetic
    assert picked
    for structure_id, std in picked:
        row = re.search(rf'<tr data-pick="{structure_id}">(.*?)</tr>', page, re.S)
        assert row is not None and f"{std * HARTREE_TO_MEV:.3f}" in row.group(1)
        assert "job " in row.group(1)
    charts = charts_of(page)
    loss = charts[f"chart-loss-{run_id}"]
    assert all(len(trace["x"]) == epochs for trace in loss["data"])
    parity = np.load(parity_path)
    for k, head in enumerate(heads):
        energy = charts[f"chart-parity-energy-{run_id}-{k}"]
        train = next(t for t in energy["data"] if t["name"] == "train")
        assert len(train["x"]) == len(parity[f"train/{head}/energy_reference_hartree"])
        assert f"chart-parity-force-{run_id}-{k}" in charts
    assert "chart-select-1" in charts and "chart-pool-1" in charts
    model = charts_of(client.get(f"/models/{run_id}").text)  # the run's own page has them too
    assert "chart-parity-energy-0" in model and "chart-parity-force-0" in model


def test_pages_link_to_the_filtered_jobs(client: TestClient, real: RealCampaign) -> None:
    (first_id, first), _ = iterations(real.url, real.campaign_id)
    link = f"/jobs?campaign={real.campaign_id}&amp;iteration={first_id}"
    assert link in client.get(f"/campaigns/{real.campaign_id}").text
    assert link in client.get(f"/campaigns/{real.campaign_id}/iterations/{first}").text
    jobs = client.get(html.unescape(link)).text
    with transaction(real.url, read_only=True) as session:
        n = session.scalar(
            select(func.count())
            .select_from(LabelingJob)
            .where(LabelingJob.iteration_id == first_id)
        )
    shown = re.findall(r'<tr data-job="(\d+)"', jobs)
    assert len(shown) == n and n > 0


def test_the_campaign_name_is_text_on_every_page(client: TestClient, real: RealCampaign) -> None:
    (first_id, first), (_, second) = iterations(real.url, real.campaign_id)
    with transaction(real.url, read_only=True) as session:
        run_id = session.scalar(
            select(func.min(TrainingRun.id)).where(TrainingRun.campaign_id == real.campaign_id)
        )
    shown = [
        "/", "/campaigns", f"/campaigns/{real.campaign_id}",
        f"/campaigns/{real.campaign_id}/iterations/{first}",
        f"/jobs?campaign={real.campaign_id}&iteration={first_id}", "/models", f"/models/{run_id}",
    ]  # fmt: skip
    fragments = [
        f"/campaigns/{real.campaign_id}/live",
        f"/campaigns/{real.campaign_id}/iterations/{second}/live",
    ]
    for path in shown + fragments:
        page = client.get(path).text
        assert "<script>window" not in page and "<img" not in page, path
        if path in shown:
            assert str(escape(HOSTILE)) in page, path


def test_stopping_a_finished_campaign_is_refused_and_changes_nothing(
    client: TestClient, real: RealCampaign
) -> None:
    def stop_requested() -> bool:
        with transaction(real.url, read_only=True) as session:
            return bool(session.get_one(Campaign, real.campaign_id).stop_requested)

    page = client.get(f"/campaigns/{real.campaign_id}").text
    assert "Stop campaign" not in page  # offered only while it runs
    confirm = client.get(f"/campaigns/{real.campaign_id}/stop", headers={"HX-Request": "true"})
    assert confirm.status_code == 409 and "is not running (finished)" in confirm.text
    assert client.post(f"/campaigns/{real.campaign_id}/stop").status_code == 403
    wrong = client.post(
        f"/campaigns/{real.campaign_id}/stop", headers={"X-Interphase-Token": "x" * 20}
    )
    assert wrong.status_code == 403
    refused = client.post(f"/campaigns/{real.campaign_id}/stop", headers=WRITE_HEADERS)
    assert refused.status_code == 409 and "nothing to stop" in refused.text
    assert stop_requested() is False
    assert client.post("/campaigns/999/stop", headers=WRITE_HEADERS).status_code == 404
    assert client.get("/campaigns/999").status_code == 404
    assert client.get(f"/campaigns/{real.campaign_id}/iterations/99").status_code == 404


def test_counts_in_the_campaign_table(client: TestClient, real: RealCampaign) -> None:
    """Structures and new labels per iteration as the iterations table shows them."""
    page = client.get(f"/campaigns/{real.campaign_id}").text
    with transaction(real.url, read_only=True) as session:
        per_iteration = Counter(
            dict(
                session.execute(
                    select(Iteration.index, func.count(Structure.id))
                    .join(Iteration, Structure.iteration_id == Iteration.id)
                    .where(Structure.campaign_id == real.campaign_id)
                    .group_by(Iteration.index)
                ).all()
            )
        )
    for index, n in per_iteration.items():
        row = re.search(rf'<tr data-iteration="{index}">(.*?)</tr>', page, re.S)
        assert row is not None
        numbers = re.findall(r'<td class="num">([^<]*)</td>', row.group(1))
        assert numbers[0] == "10 / 10" and numbers[1] == str(n)


def test_a_campaign_not_started_yet_has_its_pages(client: TestClient, real: RealCampaign) -> None:
    config = load_campaign_config(TINY, name="not started")
    campaign_id = register_campaign(real.url, config)
    page = client.get(f"/campaigns/{campaign_id}")
    assert page.status_code == 200 and "no iteration started yet" in page.text
    assert "no candidate scored yet" in page.text and "no labeling jobs yet" in page.text
    listing = client.get("/campaigns").text
    assert f'<tr data-campaign="{campaign_id}" data-state="created">' in listing
