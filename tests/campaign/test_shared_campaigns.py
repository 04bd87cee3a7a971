"""Many campaigns on one database: structures and labels shared, never computed twice.

Real campaigns through the CLI in real processes (tblite labels), on SQLite
and PostgreSQL: the same file run twice, two campaigns at once over the same
structures, a campaign started from an imported paper-json file, and
``campaign delete`` next to another campaign.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from interphase.campaign.config import load_campaign_config
from interphase.campaign.cost import level_cpu_hours
from interphase.campaign.stopping import check_stopping
from interphase.db import membership
from interphase.db.models import (
    Campaign,
    CampaignStep,
    CampaignStructure,
    GPRModel,
    JobAttempt,
    JobState,
    Label,
    LabelingJob,
    LevelOfTheory,
    MembershipRole,
    ModelArtifact,
    Structure,
    SyntheticLabel,
    TrainingRun,
)
from interphase.db.session import transaction, upgrade
from interphase.labeling.queue.claim import claim_job
from interphase.labeling.queue.enqueue import create_jobs
from interphase.labeling.queue.outcome import already_labeled_note
from interphase.labeling.queue.worker_options import MIN_LEASE_S, WorkerOptions
from tests.campaign.conftest import TINY, CampaignEnv


def variant(tmp_path: Path, name: str, **changes: Any) -> Path:
    """The tiny campaign file with top-level ``changes``, written under ``tmp_path``."""
    config = yaml.safe_load(TINY.read_text())
    config.update(name=name, **changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def campaign_id(url: str, name: str) -> int:
    with transaction(url, read_only=True) as session:
        return int(session.scalars(select(Campaign.id).where(Campaign.name == name)).one())


def jobs_of(url: str, name: str) -> int:
    cid = campaign_id(url, name)
    with transaction(url, read_only=True) as session:
        return int(
            session.scalar(
                select(func.count()).select_from(LabelingJob).where(LabelingJob.campaign_id == cid)
            )
            or 0
        )


def step_outputs(url: str, name: str, iteration: int, step: str) -> dict[str, Any]:
    cid = campaign_id(url, name)
    with transaction(url, read_only=True) as session:
        return dict(
            session.scalars(
                select(CampaignStep.outputs).where(
                    CampaignStep.campaign_id == cid,
                    CampaignStep.iteration_index == iteration,
                    CampaignStep.name == step,
                )
            ).one()
        )


def trained_label_ids(url: str, name: str, iteration: int) -> set[int]:
    run_id = step_outputs(url, name, iteration, "train")["training_run_id"]
    with transaction(url, read_only=True) as session:
        return {int(i) for i in session.get_one(TrainingRun, run_id).label_ids}


def label_digest(url: str, name: str) -> tuple[int, str]:
    """How many reference labels a campaign uses, and a hash of their stored content."""
    cid = campaign_id(url, name)
    with transaction(url, read_only=True) as session:
        rows = session.execute(
            select(Label.structure_id, Label.level_id, Label.total_energy_hartree)
            .where(membership.training_label(cid))
            .order_by(Label.structure_id, Label.level_id)
        ).all()
    return len(rows), hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()


def table_counts(url: str) -> dict[str, int]:
    with transaction(url, read_only=True) as session:
        return {
            model.__tablename__: int(session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Structure, Label, LabelingJob, SyntheticLabel)
        }


def computing_attempts(session: Session) -> Counter[tuple[int, int]]:
    """Succeeded attempts that ran the engine, per structure and level.

    A job queued in the instant between another campaign's label check and that
    campaign's label commit is closed at its claim as "label already present":
    it succeeds without computing anything, and does not count here.
    """
    return Counter(
        session.execute(
            select(LabelingJob.structure_id, LabelingJob.level_id)
            .join(JobAttempt, JobAttempt.job_id == LabelingJob.id)
            .where(
                JobAttempt.state == JobState.succeeded,
                func.coalesce(JobAttempt.error_message, "").not_like(
                    already_labeled_note(0).split(" (")[0] + "%"
                ),
            )
        ).all()
    )


def no_label_computed_twice(url: str) -> None:
    """At most one computing attempt and one label per structure and level."""
    with transaction(url, read_only=True) as session:
        computed = computing_attempts(session)
        labels = Counter(session.execute(select(Label.structure_id, Label.level_id)).all())
    assert max(computed.values()) == 1
    assert max(labels.values()) == 1


@pytest.mark.slow
def test_the_same_campaign_twice_reuses_every_label_and_delete_keeps_the_other(
    campaign_env: CampaignEnv, tmp_path: Path
) -> None:
    url = campaign_env.url
    first = campaign_env.cli("campaign", "run", str(TINY), "--name", "first")
    assert first.returncode == 0, first.stdout + first.stderr
    made = table_counts(url)
    assert jobs_of(url, "first") > 0

    second = campaign_env.cli("campaign", "run", str(TINY), "--name", "second")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "stopped: max_iterations" in second.stdout
    # Every label the first made is reused: the second queued no job at all.
    assert jobs_of(url, "second") == 0
    assert table_counts(url)["label"] == made["label"]
    assert "labels reused, not recomputed" in second.stdout
    sources = step_outputs(url, "second", 0, "label")["sources"]
    assert all(s["computed"] == 0 and s["reused"] == s["picked"] > 0 for s in sources.values())
    # Same seed, same data: the second trains on exactly the labels the first trained on.
    assert trained_label_ids(url, "second", 0) == trained_label_ids(url, "first", 0)
    assert label_digest(url, "second") == label_digest(url, "first")
    no_label_computed_twice(url)
    # Budgets count what a campaign computed: the first spent, the second did not.
    config = load_campaign_config(TINY)
    budgets = config.stopping.model_copy(
        update={"max_iterations": 99, "label_budget": {"GFN2-xTB": 1}}
    )
    limited = config.model_copy(update={"stopping": budgets})
    with transaction(url, read_only=True) as session:
        gfn2 = session.scalars(select(LevelOfTheory).where(LevelOfTheory.name == "GFN2-xTB")).one()
        spent = {
            name: level_cpu_hours(session, campaign_id(url, name), gfn2)
            for name in ("first", "second")
        }
        decisions = {
            name: check_stopping(
                session, session.get_one(Campaign, campaign_id(url, name)), limited, 1, 0.0
            ).reason
            for name in ("first", "second")
        }
    assert spent["first"] > 0 and spent["second"] == 0
    assert decisions == {"first": "label_budget", "second": None}

    # Deleting the first keeps everything the second uses, and its story.
    kept_digest, kept_counts = label_digest(url, "second"), table_counts(url)
    second_id = campaign_id(url, "second")
    with transaction(url, read_only=True) as session:
        kept_synthetic = session.scalar(
            select(func.count())
            .select_from(SyntheticLabel)
            .where(membership.own_synthetic(second_id))
        )
        second_members = session.scalar(
            select(func.count())
            .select_from(CampaignStructure)
            .where(CampaignStructure.campaign_id == second_id)
        )
        second_models = session.scalars(
            select(ModelArtifact.path).join(TrainingRun).where(TrainingRun.campaign_id == second_id)
        ).all()
        first_models = session.scalars(
            select(ModelArtifact.path)
            .join(TrainingRun)
            .where(TrainingRun.campaign_id == campaign_id(url, "first"))
        ).all()
    refused = campaign_env.cli("campaign", "delete", "first")  # no terminal, no --yes
    assert refused.returncode == 2 and "--yes" in refused.stderr + refused.stdout
    deleted = campaign_env.cli("campaign", "delete", "first", "--yes")
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert label_digest(url, "second") == kept_digest
    after = table_counts(url)
    # Structures, labels and jobs stay; the synthetic labels of the first's GPs go.
    assert {k: v for k, v in after.items() if k != "synthetic_label"} == {
        k: v for k, v in kept_counts.items() if k != "synthetic_label"
    }
    assert after["synthetic_label"] == kept_synthetic
    with transaction(url, read_only=True) as session:
        assert session.scalar(select(Campaign.id).where(Campaign.name == "first")) is None
        assert (
            session.scalar(
                select(func.count())
                .select_from(CampaignStructure)
                .where(CampaignStructure.campaign_id == second_id)
            )
            == second_members
        )
        assert session.scalar(select(func.count()).select_from(GPRModel)) > 0
    assert all(Path(p).exists() for p in second_models)
    assert first_models and not any(Path(p).exists() for p in first_models)
    shown = campaign_env.cli("campaign", "show", "second")
    assert shown.returncode == 0 and "labels reused, not recomputed" in shown.stdout


@pytest.mark.slow
def test_two_campaigns_at_once_over_the_same_structures_compute_each_label_once(
    campaign_env: CampaignEnv, tmp_path: Path
) -> None:
    url = campaign_env.url
    # Same generators (same structures), other selection settings: both label the same pool.
    other = variant(
        tmp_path,
        "wider",
        selection={"default_threshold_mev_per_atom": 1.0, "max_picks_per_level": 6},
    )
    runs = [
        campaign_env.start("campaign", "run", str(TINY), "--name", "narrow"),
        campaign_env.start("campaign", "run", str(other)),
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, output
        assert "stopped: max_iterations" in output
    no_label_computed_twice(url)
    with transaction(url, read_only=True) as session:
        computed = sum(computing_attempts(session).values())
        labels = int(session.scalar(select(func.count()).select_from(Label)) or 0)
    # Each label was computed by exactly one of them, and both trained on the shared ones.
    assert computed == labels
    shared = trained_label_ids(url, "narrow", 0) & trained_label_ids(url, "wider", 0)
    assert len(shared) >= 16  # the GFN2-xTB labels of the training candidates, the GFN1 seeds
    for name in ("narrow", "wider"):
        sources = step_outputs(url, name, 0, "label")["sources"]
        picked = sum(s["picked"] for s in sources.values())
        assert sum(s["computed"] + s["reused"] for s in sources.values()) == picked


@pytest.mark.slow
def test_a_campaign_seeded_from_a_paper_json_file_trains_on_it_in_iteration_0(
    campaign_env: CampaignEnv, tmp_path: Path
) -> None:
    url = campaign_env.url
    # A dataset made elsewhere: a campaign in another database, exported as paper-json.
    other_db = f"sqlite:///{tmp_path / 'elsewhere.sqlite'}"
    upgrade(other_db)
    elsewhere = campaign_env.cli(
        "campaign", "run", str(TINY), "--name", "elsewhere", "--iterations", "1",
        INTERPHASE_DATABASE_URL=other_db,
    )  # fmt: skip
    assert elsewhere.returncode == 0, elsewhere.stdout + elsewhere.stderr
    dataset = tmp_path / "pilot.json"
    exported = campaign_env.cli(
        "campaign", "export", "elsewhere", "--format", "paper-json", "--output", str(dataset),
        INTERPHASE_DATABASE_URL=other_db,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stdout + exported.stderr

    imported = campaign_env.cli("data", "import", str(dataset))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    with transaction(url, read_only=True) as session:
        imported_labels = {
            int(i)
            for i in session.scalars(
                select(Label.id)
                .join(Structure, Label.structure_id == Structure.id)
                .where(Structure.generator == "import", Label.total_energy_hartree.is_not(None))
            )
        }
    assert imported_labels
    # Other structures of its own (another seed), plus the file as seed data.
    seeded = variant(tmp_path, "seeded", seed=8, seed_data=[{"file": dataset.name}])
    run = campaign_env.cli("campaign", "run", str(seeded), "--iterations", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    cid = campaign_id(url, "seeded")
    with transaction(url, read_only=True) as session:
        seeds = set(session.scalars(membership.member(cid, MembershipRole.seed)))
        test_split = membership.test_ids(session, cid)
        seeded_jobs = session.scalar(
            select(func.count())
            .select_from(LabelingJob)
            .where(LabelingJob.campaign_id == cid, LabelingJob.structure_id.in_(seeds))
        )
    assert seeds and not seeds & test_split
    assert seeded_jobs == 0  # never labeled again
    trained = trained_label_ids(url, "seeded", 0)
    assert imported_labels <= trained  # iteration 0 trains on every imported label
    assert step_outputs(url, "seeded", 0, "generate")["n_seed_labels"] == len(imported_labels)

    # The same through `data import --campaign` into a registered campaign.
    registered = variant(tmp_path, "registered", seed=9)
    assert campaign_env.cli("campaign", "register", str(registered)).returncode == 0
    again = campaign_env.cli("data", "import", str(dataset), "--campaign", "registered")
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{len(imported_labels)} labels are seed data of campaign 'registered'" in again.stdout
    resumed = campaign_env.cli("campaign", "resume", "registered", "--iterations", "1")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert imported_labels <= trained_label_ids(url, "registered", 0)
    unknown = campaign_env.cli("data", "import", str(dataset), "--campaign", "nobody")
    assert unknown.returncode == 2 and "campaign register" in unknown.stderr + unknown.stdout


@pytest.mark.slow
def test_a_campaign_waits_for_another_campaigns_jobs_and_runs_them_when_their_worker_died(
    campaign_env: CampaignEnv, tmp_path: Path
) -> None:
    url = campaign_env.url
    routing = yaml.safe_load(TINY.read_text())["routing"]

    def labeling_clusters(n: int) -> list[dict[str, Any]]:
        """The tiny routing with ``n`` random small clusters labeled at GFN1-xTB first."""
        return [
            {**route, "initial_per_iteration": [n, 0]} if route["mode"] == "selected" else route
            for route in routing
        ]

    few = variant(
        tmp_path, "first", routing=labeling_clusters(2), selection={"max_picks_per_level": 1}
    )
    first = campaign_env.cli("campaign", "run", str(few), "--iterations", "1")
    assert first.returncode == 0, first.stdout + first.stderr
    first_id = campaign_id(url, "first")
    # The first campaign queues GFN1-xTB jobs for its other small clusters; a worker claims
    # them all and dies (it never renews its lease).
    with transaction(url) as session:
        level = session.scalars(select(LevelOfTheory).where(LevelOfTheory.name == "GFN1-xTB")).one()
        labeled = select(Label.structure_id).where(Label.level_id == level.id)
        waiting = [
            int(i)
            for i in session.scalars(
                select(Structure.id).where(
                    membership.holds(first_id, MembershipRole.candidate),
                    Structure.pbc == "nnn",
                    Structure.n_atoms <= 6,
                    Structure.id.not_in(labeled),
                )
            )
        ]
        held = [job.id for job in create_jobs(session, waiting, level, campaign_id=first_id)]
    assert held
    dead = WorkerOptions(lease_s=MIN_LEASE_S)
    while claim_job(url, worker="dead-worker", options=dead) is not None:
        pass
    # The second labels every small cluster at GFN1-xTB: it must wait for those jobs,
    # take them over once their lease expired, and queue none of its own for them.
    every = variant(tmp_path, "second", routing=labeling_clusters(50))
    second = campaign_env.cli("campaign", "run", str(every), "--iterations", "1")
    assert second.returncode == 0, second.stdout + second.stderr
    with transaction(url, read_only=True) as session:
        jobs = session.scalars(select(LabelingJob).where(LabelingJob.id.in_(held))).all()
        assert all(job.state == JobState.succeeded for job in jobs)
        assert all(job.campaign_id == first_id for job in jobs)  # still the first's to count
        assert all(job.attempts[0].error_class == "LeaseExpired" for job in jobs)
        theirs = session.scalars(
            select(LabelingJob.structure_id).where(
                LabelingJob.campaign_id == campaign_id(url, "second")
            )
        ).all()
    assert not set(theirs) & set(waiting)
    no_label_computed_twice(url)
