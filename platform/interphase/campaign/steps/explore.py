"""Step 8, explore: MD with the newly trained model; its frames are the next candidates.

Starting structures are drawn (seeded) from the campaign's labeled structures
or this iteration's candidates. A model early in a campaign is poor: a run
that reaches unphysical geometry (the validator's rules, an energy or force
jump) stops and is counted, and its last valid frames still become candidates
— that is where the model is wrong. Periodic frames can also give clusters
cut around random atoms.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms
from sqlalchemy import select

from interphase.campaign.context import StepContext
from interphase.campaign.records import (
    StepName,
    derived_seed,
    held_out_ids,
    step_outputs,
)
from interphase.db.api import record_from_row, store_structures
from interphase.db.models import (
    TRAINING_ROLES,
    CampaignStructure,
    Label,
    MembershipRole,
    Structure,
)
from interphase.db.session import transaction
from interphase.gpr.augment_db import GENERATOR as AUGMENT_GENERATOR
from interphase.labeling.ase_calculator import record_from_atoms
from interphase.models.calculator import InterphaseCalculator
from interphase.records import StructureRecord
from interphase.structures.interface import extract_cluster
from interphase.structures.validate import InvalidStructureError, validate_structure


def _starts(ctx: StepContext) -> list[int]:
    config = ctx.config.exploration
    with transaction(ctx.url, read_only=True) as session:
        test_ids = held_out_ids(session, ctx.campaign_id)
        if config.start_from == "candidates":
            index = ctx.iteration if config.new_starts_each_iteration else 0
            generated = step_outputs(session, ctx.campaign_id, index, StepName.generate)
            pool = [int(i) for i in generated["candidate_ids"]]
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


def run(ctx: StepContext) -> dict[str, Any]:
    config = ctx.config.exploration
    head = ctx.config.exploration_head
    frames: list[tuple[StructureRecord, dict[str, Any], int, int | None]] = []
    runs: list[dict[str, Any]] = []
    with transaction(ctx.url, read_only=True) as session:
        trained = step_outputs(session, ctx.campaign_id, ctx.iteration, StepName.train)
    model_path = trained.get("model_path")
    starts = _starts(ctx) if config.enabled and model_path else []
    if starts:
        from interphase.dynamics import MDSettings, PhysicalityGuard, run_md

        with transaction(ctx.url, read_only=True) as session:
            records = {
                s.id: record_from_row(s)
                for s in session.scalars(select(Structure).where(Structure.id.in_(starts)))
            }
        calculator = InterphaseCalculator(str(model_path), head=head, device="cpu")
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
                result = run_md(_atoms(record), calculator, settings, on_step=on_step, guard=guard)
            runs.append(
                {
                    "start_id": start_id,
                    "temperature_k": temperature,
                    "steps_done": result.steps_done,
                    "frames": len(result.frames),
                    "unphysical": result.unphysical,
                }
            )
            rng = np.random.default_rng(ctx.seed("clusters", k))
            for frame in result.frames:
                params = {
                    "start_structure_id": start_id,
                    "head": head,
                    "training_run_id": trained.get("training_run_id"),
                    "temperature_k": temperature,
                    "step": frame.step,
                    "time_fs": frame.time_fs,
                }
                moved = record_from_atoms(frame.atoms, multiplicity=record.multiplicity)
                moved.charge = record.charge
                frames.append((moved, params, settings.seed, start_id))
                if any(moved.pbc) and config.clusters_per_frame:
                    frames += _clusters(
                        frame.atoms,
                        config.cluster_cutoff_angstrom,
                        config.clusters_per_frame,
                        rng,
                        params,
                        settings.seed,
                    )
    with transaction(ctx.url) as session:
        ids: list[int] = []
        for record, params, seed, parent in frames:
            try:
                validate_structure(record)
            except InvalidStructureError:
                continue
            generator = (
                "explore_cluster" if params.get("cluster_index") is not None else "explore_md"
            )
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
        outputs = {
            "candidate_ids": list(dict.fromkeys(ids)),
            "runs": runs,
            "n_runs": len(runs),
            "n_unphysical": sum(r["unphysical"] is not None for r in runs),
            "head": head,
        }
        ctx.complete(session, outputs)
    return outputs


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


def _atoms(record: StructureRecord) -> Atoms:
    atoms = Atoms(numbers=record.numbers, positions=record.positions_angstrom, pbc=record.pbc)
    if record.cell_angstrom is not None:
        atoms.set_cell(record.cell_angstrom)
    atoms.info["charge"] = record.charge
    return atoms
