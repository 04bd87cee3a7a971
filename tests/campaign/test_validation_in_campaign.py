"""The validation suites inside a campaign: run each iteration, summarised, and a stopping rule.

A periodic campaign on an analytic Lennard-Jones "Li" level (``li_lj.yaml``)
runs the metal suite on its head after training. The reference is computed
once: the second iteration, and a second campaign on the same database, take it
from ``reference_property``. With tolerances no head can miss, ``validated``
stops the campaign after its first iteration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from interphase.db.models import Campaign, Iteration, ReferenceProperty, ValidationRun
from interphase.db.session import transaction
from tests.campaign.conftest import CampaignEnv

LI_LJ = Path(__file__).parent / "li_lj.yaml"


def variant(tmp_path: Path, stem: str, **changes: Any) -> Path:
    config = yaml.safe_load(LI_LJ.read_text())
    for key, value in changes.items():
        section, _, field = key.partition(".")
        if field:
            config.setdefault(section, {})[field] = value
        else:
            config[key] = value
    path = tmp_path / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def summaries(url: str, name: str) -> list[dict[str, Any]]:
    with transaction(url, read_only=True) as session:
        campaign = session.scalars(select(Campaign).where(Campaign.name == name)).one()
        return [
            dict(s or {})
            for s in session.scalars(
                select(Iteration.summary)
                .where(Iteration.campaign_id == campaign.id)
                .order_by(Iteration.index)
            )
        ]


@pytest.mark.slow
def test_validation_runs_every_iteration_with_the_reference_computed_once(
    campaign_env: CampaignEnv, tmp_path: Path
) -> None:
    url = campaign_env.url
    done = campaign_env.cli("campaign", "run", str(LI_LJ))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validation metal of head LJ-Li" in done.stdout
    runs = [s["validation"]["runs"] for s in summaries(url, "li-lj")]
    assert [len(r) for r in runs] == [1, 1]
    assert [r[0]["reference_cached"] for r in runs] == [False, True]
    assert {c["name"] for c in runs[0][0]["checks"]} >= {"a0_angstrom", "c44_gpa"}
    with transaction(url, read_only=True) as session:
        assert session.scalar(select(func.count()).select_from(ReferenceProperty)) == 1
        recorded = session.scalars(select(ValidationRun).order_by(ValidationRun.id)).all()
        assert [(r.iteration_index, r.head, r.suite) for r in recorded] == [
            (0, "LJ-Li", "metal"),
            (1, "LJ-Li", "metal"),
        ]
        assert all(r.model_artifact_id is not None for r in recorded)

    # Every tolerance at 1000 %: all checks pass in iteration 0 and `validated` stops it there.
    loose = {
        name: 10.0
        for name in (
            "a0_angstrom",
            "bulk_modulus_gpa",
            "c11_gpa",
            "c12_gpa",
            "c44_gpa",
            "phonon_thz",
            "vacancy_formation_ev",
            "surface_energy_100_j_per_m2",
        )
    }
    config = yaml.safe_load(LI_LJ.read_text())
    config["validation"]["suites"][0]["tolerances"] = loose
    path = variant(
        tmp_path,
        "loose",
        name="loose",
        validation=config["validation"],
        stopping={"max_iterations": 3, "validated": True},
    )
    stopped = campaign_env.cli("campaign", "run", str(path))
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert "stopped: validated" in stopped.stdout
    (only,) = summaries(url, "loose")
    assert only["validation"]["passed"] and only["validation"]["runs"][0]["reference_cached"]
    with transaction(url, read_only=True) as session:
        assert session.scalar(select(func.count()).select_from(ReferenceProperty)) == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"stopping": {"max_iterations": 2, "validated": True}, "validation": {}},
            "name the suites",
        ),
        ({"validation": {"suites": [{"suite": "electrolyte"}]}}, "no routed level fits"),
        (
            {"validation": {"suites": [{"suite": "metal", "tolerances": {"colour": 1.0}}]}},
            "unknown properties ['colour']",
        ),
        (
            {"validation": {"suites": [{"suite": "metal", "settings": {"lattice": "hcp"}}]}},
            "bcc or fcc",
        ),
        ({"validation": {"suites": [{"suite": "phonons"}]}}, "validation.suites.0.suite"),
    ],
)
def test_bad_validation_sections_are_refused_by_validate(
    campaign_env: CampaignEnv, tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    path = variant(tmp_path, "bad", **changes)
    done = campaign_env.cli("campaign", "validate", str(path))
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
