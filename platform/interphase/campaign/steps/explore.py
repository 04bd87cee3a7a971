"""Step 8, explore: MD with the newly trained model; its frames are the next candidates.

Starting structures are drawn (seeded) from the campaign's labeled structures
or this iteration's candidates. A model early in a campaign is poor: a run
that reaches unphysical geometry (the validator's rules, an energy or force
jump) stops and is counted, and its last valid frames still become candidates
— that is where the model is wrong. Periodic frames can also give clusters
cut around random atoms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from interphase.campaign.context import StepContext
from interphase.campaign.records import derived_seed
from interphase.campaign.steps import generate, train
from interphase.campaign.steps.contract import StepOutputs, StoredModel
from interphase.db.models import (
    TRAINING_ROLES,
    CampaignStructure,
    Label,
    MembershipRole,
    Structure,
)
from interphase.db.session import transaction
from interphase.db.structures import record_from_row, store_structures
from interphase.gpr.augment_db import GENERATOR as AUGMENT_GENERATOR
from interphase.models.calculator import InterphaseCalculator
from interphase.records import StructureRecord
from interphase.structures.interface import extract_cluster
from interphase.structures.validate import InvalidStructureError, validate_structure

if TYPE_CHECKING:
    from interphase.dynamics import MDResult


class MDRun(StoredModel):
    """One MD run with the trained model."""

    start_id: int
    temperature_k: float
    steps_done: int = 0
    frames: int = 0
    #: The rule that stopped the run at unphysical geometry (None: it ran to the end).
    unphysical: str | None = None


class Outputs(StepOutputs):
    """The next iteration's candidates from MD with the trained model."""

    candidate_ids: list[int] = Field(default_factory=list)
    runs: list[MDRun] = Field(default_factory=list)
    n_runs: int = 0
    n_unphysical: int = 0
    head: str | None = None

    def note(self) -> str:
        return (
            f"{self.n_runs} MD runs with head {self.head}, "
            f"{len(self.candidate_ids)} new candidates, "
            f"{self.n_unphysical} stopped unphysical"
        )


@dataclass(frozen=True)
class Inputs:
    train: train.Outputs
    #: The candidates MD starts from (``start_from: candidates``): this iteration's, or
    #: the first iteration's when the starts stay the same.
    generate: generate.Outputs


def _starts(ctx: StepContext, generated: generate.Outputs) -> list[int]:
    config = ctx.config.exploration
    test_ids = ctx.test_ids
    with transaction(ctx.url, read_only=True) as session:
        if config.start_from == "candidates":
            pool = list(generated.candidate_ids)
            query = select(Structure.id, Structure.n_atoms).where(Structure.id.in_(pool))
        else:
            picked = select(CampaignStructure.structure_id).where(
                CampaignStructure.campaign_id == ctx.campaign_id,
                CampaignStructure.role.in_(TRAINING_ROLES),
            )
            if not config.new_starts_each_iteration:
                picked = picked.where(CampaignStructure.iteration_index == 0)
            query = select(Structure.id, Structure.n_atoms).where(
                Structure.id.in_(picked),
                Structure.generator != AUGMENT_GENERATOR,
                Structure.id.in_(select(Label.structure_id)),
            )
        rows = session.execute(query.order_by(Structure.id)).all()
    pool = sorted(
        int(i)
        for i, n in rows
        if int(i) not in test_ids and (config.max_atoms is None or n <= config.max_atoms)
    )
    if not pool:
        return []
    key = ctx.seed("starts") if config.new_starts_each_iteration else ctx.config.seed
    rng = np.random.default_rng(derived_seed(key, "explore-starts"))
    chosen = rng.choice(len(pool), size=min(config.starts, len(pool)), replace=False)
    return sorted(pool[int(i)] for i in chosen)


#: A frame to store: the structure, its generator parameters, seed and parent structure.
Frame = tuple[StructureRecord, dict[str, Any], int, int | None]


def run(ctx: StepContext, inputs: Inputs) -> Outputs:
    config = ctx.config.exploration
    model_path = inputs.train.model_path
    starts = _starts(ctx, inputs.generate) if config.enabled and model_path else []
    frames, runs = _explore(ctx, inputs.train, starts) if starts else ([], [])
    with transaction(ctx.url) as session:
        ids = _store_frames(session, ctx, frames)
        outputs = Outputs(
            candidate_ids=list(dict.fromkeys(ids)),
            runs=runs,
            n_runs=len(runs),
            n_unphysical=sum(r.unphysical is not None for r in runs),
            head=ctx.config.exploration_head,
        )
        ctx.complete(session, outputs)
    return outputs


def _explore(
    ctx: StepContext, trained: train.Outputs, starts: list[int]
) -> tuple[list[Frame], list[MDRun]]:
    """MD from each start with the trained model; the frames (and clusters cut from them)."""
    from interphase.dynamics import MDSettings, PhysicalityGuard, run_md

    config = ctx.config.exploration
    head = ctx.config.exploration_head
    frames: list[Frame] = []
    runs: list[MDRun] = []
    with transaction(ctx.url, read_only=True) as session:
        records = {
            s.id: record_from_row(s)
            for s in session.scalars(select(Structure).where(Structure.id.in_(starts)))
        }
    calculator = InterphaseCalculator(str(trained.model_path), head=head, device="cpu")
    guard = PhysicalityGuard(
        max_energy_jump_ev_per_atom=config.max_energy_jump_ev_per_atom,
        max_force_ev_per_angstrom=config.max_force_ev_per_angstrom,
    )
    total = len(starts) * config.steps
    for k, start_id in enumerate(starts):
        record = records[start_id]
        temperature = config.temperatures_k[k % len(config.temperatures_k)]
        settings = MDSettings(
            steps=config.steps,
            timestep_fs=config.timestep_fs,
            temperature_k=temperature,
            snapshot_every=config.snapshot_every,
            seed=ctx.seed("md", k),
        )

        def on_step(step: int, _atoms: Any, k: int = k) -> None:
            ctx.progress("explore: MD step", k * config.steps + step, total)

        with ctx.computing():
            result = run_md(record.to_atoms(), calculator, settings, on_step=on_step, guard=guard)
        runs.append(
            MDRun(
                start_id=start_id,
                temperature_k=temperature,
                steps_done=result.steps_done,
                frames=len(result.frames),
                unphysical=result.unphysical,
            )
        )
        origin = {
            "start_structure_id": start_id,
            "head": head,
            "training_run_id": trained.training_run_id,
            "temperature_k": temperature,
        }
        rng = np.random.default_rng(ctx.seed("clusters", k))
        frames += _frames(ctx, result, record, origin, settings.seed, rng)
    return frames, runs


def _frames(
    ctx: StepContext,
    result: MDResult,
    start: StructureRecord,
    origin: dict[str, Any],
    seed: int,
    rng: np.random.Generator,
) -> list[Frame]:
    """The run's frames (parent: the start), and clusters cut from periodic ones."""
    config = ctx.config.exploration
    frames: list[Frame] = []
    for frame in result.frames:
        params = {**origin, "step": frame.step, "time_fs": frame.time_fs}
        moved = StructureRecord.from_atoms(frame.atoms, multiplicity=start.multiplicity)
        moved.charge = start.charge
        frames.append((moved, params, seed, origin["start_structure_id"]))
        if any(moved.pbc) and config.clusters_per_frame:
            frames += _clusters(
                frame.atoms, config.cluster_cutoff_angstrom, config.clusters_per_frame, rng,
                params, seed,
            )  # fmt: skip
    return frames


def _store_frames(session: Session, ctx: StepContext, frames: list[Frame]) -> list[int]:
    """Store the valid frames as the campaign's explored structures; returns their ids."""
    ids: list[int] = []
    for record, params, seed, parent in frames:
        try:
            validate_structure(record)
        except InvalidStructureError:
            continue
        generator = "explore_cluster" if params.get("cluster_index") is not None else "explore_md"
        parent_id = ids[-1] if generator == "explore_cluster" and ids else parent
        stored = store_structures(
            session,
            [record],
            generator=generator,
            generator_params=params,
            seeds=[seed],
            parent_ids=[parent_id],
            campaign_id=ctx.campaign_id,
            iteration_id=ctx.iteration_id,
            role=MembershipRole.explored,
        )
        ids.append(stored.ids[0])
    return ids


def _clusters(
    atoms: Any,
    cutoff_angstrom: float,
    count: int,
    rng: np.random.Generator,
    params: dict[str, Any],
    seed: int,
) -> list[tuple[StructureRecord, dict[str, Any], int, int | None]]:
    out: list[tuple[StructureRecord, dict[str, Any], int, int | None]] = []
    for index in range(count):
        centre = atoms.positions[int(rng.integers(len(atoms)))]
        record, _ = extract_cluster(atoms, centre, cutoff_angstrom, charge=0)
        out.append(
            (
                record,
                {**params, "cluster_index": index, "cutoff_angstrom": cutoff_angstrom},
                seed,
                None,
            )
        )
    return out
