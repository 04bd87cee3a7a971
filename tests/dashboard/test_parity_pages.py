"""Parity plots on the run and iteration pages, from a run whose parity files we wrote.

The structures are real rows (mixed H/Li/O clusters, so absolute energies per
atom lie tens of eV apart); the parity files are written by the trainer's own
:func:`~interphase.training.metrics.write_parity`, with energies made from known
per-element energies plus known errors, and force components with a few
planted large errors. Nothing is computed on the structures.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from interphase.db.models import TrainingRun
from interphase.db.session import transaction
from interphase.db.structures import store_structures
from interphase.records import StructureRecord
from interphase.training.metrics import ParityCollector, write_parity
from interphase.units import HARTREE_TO_EV, HARTREE_TO_MEV
from tests.dashboard.campaign_data import create_campaign, finish_iteration, start_iteration

LEVEL = "GFN2-xTB"
#: Rough energies per atom (Hartree) of H, Li and O: compositions lie tens of eV/atom apart.
MU_HARTREE = {1: -0.5, 3: -7.43, 8: -74.8}
#: Force components whose error is planted far above the rest (eV/Å).
PLANTED_ERROR_EV_PER_ANGSTROM = 3.0


@dataclass(frozen=True)
class ParityRun:
    """What :func:`parity_run` stored: ids, and the errors it planted."""

    campaign_id: int
    iteration_index: int
    run_id: int
    n_force_components: dict[str, int]  # split -> components written
    energy_error_mev_per_atom: dict[int, float]  # structure id -> predicted - reference
    planted_forces: list[tuple[float, float]]  # (reference, predicted) eV/Å, train split


def clusters(rng: np.random.Generator, sizes: list[int]) -> list[StructureRecord]:
    """H/Li/O clusters of the given sizes (positions are only content; nothing is computed)."""
    return [
        StructureRecord(
            numbers=rng.choice(sorted(MU_HARTREE), size=n),
            positions_angstrom=rng.uniform(0.0, 10.0, (n, 3)),
        )
        for n in sizes
    ]


def collector(
    rng: np.random.Generator,
    ids: list[int],
    records: list[StructureRecord],
    errors_mev_per_atom: np.ndarray,
    force_errors_ev_per_angstrom: np.ndarray,
) -> ParityCollector:
    """Energies Σ n_Z μ_Z (+ 25 meV/atom of "structure") and forces ~1 eV/Å, with given errors."""
    n_atoms = np.array([r.n_atoms for r in records])
    base = np.array([sum(MU_HARTREE[int(z)] for z in r.numbers) for r in records])
    reference = base + rng.normal(0.0, 25.0, len(records)) * n_atoms / HARTREE_TO_MEV
    predicted = reference + errors_mev_per_atom * n_atoms / HARTREE_TO_MEV
    gradient = rng.normal(0.0, 1.0, (int(n_atoms.sum()), 3)) / HARTREE_TO_EV
    predicted_gradient = gradient - force_errors_ev_per_angstrom / HARTREE_TO_EV
    arrays = {
        f"{LEVEL}/energy_structure_id": np.array(ids),
        f"{LEVEL}/energy_n_atoms": n_atoms,
        f"{LEVEL}/energy_predicted_hartree": predicted,
        f"{LEVEL}/energy_reference_hartree": reference,
        f"{LEVEL}/gradient_reference_hartree_per_angstrom": gradient,
        f"{LEVEL}/gradient_predicted_hartree_per_angstrom": predicted_gradient,
    }
    return ParityCollector([LEVEL], {key: [value] for key, value in arrays.items()})


def parity_run(
    url: str, artifacts: Path, *, seed: int = 5, with_test: bool = True, stored: bool = True
) -> ParityRun:
    """A campaign iteration with one finished run and its parity files (train 60, test 12)."""
    rng = np.random.default_rng(seed)
    campaign_id = create_campaign(url, "parity", {"level": LEVEL}, [LEVEL])
    iteration_id = start_iteration(url, campaign_id)
    splits = {"train": 48, "validation": 12, "test": 12 if with_test else 0}
    records = clusters(rng, [int(n) for n in rng.integers(20, 36, sum(splits.values()))])
    with transaction(url) as session:
        ids = store_structures(
            session, records, generator="parity-test", campaign_id=campaign_id
        ).ids
    if not stored:  # a parity file from another database: its ids are not here
        ids = [i + 10_000 for i in ids]
    collectors, errors, components, planted = {}, {}, {}, []
    start = 0
    for split, n in splits.items():
        if n == 0:
            continue
        part, part_ids = records[start : start + n], ids[start : start + n]
        start += n
        energy_errors = rng.normal(0.0, 15.0, n)
        n_total = sum(r.n_atoms for r in part)
        force_errors = rng.normal(0.0, 0.05, (n_total, 3))
        if split == "train":
            rows = rng.choice(n_total, 5, replace=False)
            force_errors[rows, 1] = PLANTED_ERROR_EV_PER_ANGSTROM
        collectors[split] = collector(rng, part_ids, part, energy_errors, force_errors)
        errors.update(zip(part_ids, energy_errors.tolist(), strict=True))
        components[split] = 3 * n_total
        if split == "train":
            arrays = collectors[split].as_arrays()
            reference = -arrays[f"{LEVEL}/gradient_reference_hartree_per_angstrom"] * HARTREE_TO_EV
            predicted = -arrays[f"{LEVEL}/gradient_predicted_hartree_per_angstrom"] * HARTREE_TO_EV
            planted = [(float(reference[r, 1]), float(predicted[r, 1])) for r in rows]
    test = collectors.pop("test", None)
    path = write_parity(artifacts / "parity.npz", collectors)
    metrics: dict[str, Any] = {"parity_path": str(path)}
    if test is not None:
        path = write_parity(artifacts / "test-parity.npz", {"test": test})
        metrics["test_parity_path"] = str(path)
    with transaction(url) as session:
        run = TrainingRun(
            config={},
            heads=[LEVEL],
            label_ids=np.zeros(0, dtype=np.int64),
            synthetic_label_ids=np.zeros(0, dtype=np.int64),
            metrics=metrics,
            status="succeeded",
            campaign_id=campaign_id,
            iteration_id=iteration_id,
        )
        session.add(run)
        session.flush()
        run_id = run.id
    finish_iteration(url, iteration_id, {"note": "parity test data"})
    return ParityRun(campaign_id, 0, run_id, components, errors, planted)


def charts_of(page: str) -> dict[str, Any]:
    """The Plotly figures a page carries, by element id (``chart-NAME``)."""
    blocks = re.findall(
        r'<script type="application/json" id="(chart-[^"]+)">(.*?)</script>', page, re.S
    )
    return {name: json.loads(body) for name, body in blocks}


def trace(figure: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in figure["data"] if t["name"].split(" · ")[0] == name)


@pytest.fixture
def run(local_env: str, tmp_path: Path) -> ParityRun:
    return parity_run(local_env, tmp_path / "artifacts")


def test_force_parity_is_svg_thinned_and_keeps_the_largest_errors(
    client: TestClient, run: ParityRun
) -> None:
    page = client.get(f"/models/{run.run_id}").text
    force = charts_of(page)["chart-parity-force-0"]
    assert {t["type"] for t in force["data"]} == {"scatter"}  # never WebGL (CSP forbids eval)
    assert all(len(t["x"]) <= 1500 for t in force["data"])
    train = trace(force, "train")
    drawn = set(zip(train["x"], train["y"], strict=True))
    for reference, predicted in run.planted_forces:
        assert any(abs(x - reference) < 1e-4 and abs(y - predicted) < 1e-4 for x, y in drawn), (
            f"the planted error ({reference}, {predicted}) was thinned away"
        )
    shown = f"{len(train['x']):,} of {run.n_force_components['train']:,}"
    assert shown in train["name"]  # the legend says it was thinned
    assert f"{shown} components shown" in page  # and so does the page


def test_energy_parity_is_relative_to_a_per_element_reference(
    client: TestClient, run: ParityRun
) -> None:
    energy = charts_of(client.get(f"/models/{run.run_id}").text)["chart-parity-energy-0"]
    title = energy["layout"]["xaxis"]["title"]["text"].replace("<br>", " ")
    assert "relative to per-element reference (meV/atom)" in title
    for one in energy["data"]:
        reference, predicted = np.array(one["x"]), np.array(one["y"])
        # Σ n_Z μ_Z + 25 meV/atom: within ~100 meV/atom of zero, not tens of eV/atom apart.
        assert np.abs(reference).max() < 150.0, one["name"]
        assert np.abs(predicted - reference).max() < 80.0
    errors = sorted(run.energy_error_mev_per_atom.values())
    drawn = sorted(e for t in energy["data"] for e in np.subtract(t["y"], t["x"]))
    assert drawn == pytest.approx(errors, abs=0.01)  # every error drawn, in meV/atom


def test_the_held_out_test_split_is_its_own_series(client: TestClient, run: ParityRun) -> None:
    for url, key in (
        (f"/models/{run.run_id}", "chart-parity-energy-0"),
        (
            f"/campaigns/{run.campaign_id}/iterations/{run.iteration_index}",
            f"chart-parity-energy-{run.run_id}-0",
        ),
    ):
        charts = charts_of(client.get(url).text)
        test = trace(charts[key], "test (held out)")
        assert len(test["x"]) == 12
        colours = {t["marker"]["color"] for t in charts[key]["data"]}
        assert len(colours) == len(charts[key]["data"])  # each split its own colour
        assert trace(charts[key.replace("energy", "force")], "test (held out)")["x"]


def test_structures_missing_from_the_database_fall_back_and_say_so(
    client: TestClient, local_env: str, tmp_path: Path
) -> None:
    run = parity_run(local_env, tmp_path / "artifacts", stored=False, with_test=False)
    page = client.get(f"/models/{run.run_id}").text
    energy = charts_of(page)["chart-parity-energy-0"]
    assert "relative to its mean" in energy["layout"]["xaxis"]["title"]["text"].replace("<br>", " ")
    assert "60 of 60 structures are not in this database" in page
    errors = sorted(run.energy_error_mev_per_atom.values())
    drawn = sorted(e for t in energy["data"] for e in np.subtract(t["y"], t["x"]))
    assert drawn == pytest.approx(errors, abs=0.01)  # errors are the same either way
