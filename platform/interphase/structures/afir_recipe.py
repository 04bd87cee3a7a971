"""The AFIR recipe: paths pushed or pulled over fragments or atom pairs, with lineage.

Each start structure is stored and its path's snapshots are its children
(see :mod:`interphase.structures.afir` for the artificial force).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interphase.labeling.engines.contract import EngineError
from interphase.records import StructureRecord
from interphase.structures.afir import AFIRCalculator, AFIRPath, afir_path, random_pair
from interphase.structures.afir_start import afir_start
from interphase.structures.batch import Advance, GeneratedStructure, GenerationBatch, no_progress
from interphase.structures.config import AFIRConfig
from interphase.structures.driver import driver_calculator


def afir_batch(config: AFIRConfig, advance: Advance = no_progress) -> GenerationBatch:
    """AFIR paths; each start structure is stored, snapshots are its children."""
    rng = np.random.default_rng(config.seed)
    batch = GenerationBatch()
    for path_index in range(config.n_paths):
        start = afir_start(config, rng)
        if start is None:
            batch.reject("afir_start", "placement_failed")
            advance(1)
            continue
        record, generator, start_params, group_a, group_b = start
        parent = batch.add(GeneratedStructure(record, generator, start_params, config.seed))
        if parent is None:
            advance(1)
            continue
        if config.mode == "pair":
            pair = random_pair(record.n_atoms, rng)
            group_a, group_b = [pair[0]], [pair[1]]
        path = _afir_path(config, record, group_a, group_b)
        if isinstance(path.error, EngineError):
            batch.reject("afir", f"path_ended:{path.error.error_class}")
        base: dict[str, Any] = {"mode": config.mode, "direction": config.direction}
        base["path"] = path_index
        base |= {"pair": group_a + group_b} if config.mode == "pair" else {}
        base |= {"fragments": [group_a, group_b]} if config.mode == "fragments" else {}
        _add_snapshots(batch, config, record, path, base, parent)
        advance(1)
    return batch


def _afir_path(
    config: AFIRConfig, record: StructureRecord, group_a: list[int], group_b: list[int]
) -> AFIRPath:
    """Run one AFIR path from ``record``, pushing (or pulling) ``group_a`` and ``group_b``."""
    afir = AFIRCalculator(
        driver_calculator(record, config.driver),
        group_a,
        group_b,
        gamma_kj_per_mol=config.gammas_kj_per_mol[0],
        rho=1 if config.direction == "push" else -1,
    )
    return afir_path(
        record.to_atoms(),
        afir,
        config.gammas_kj_per_mol,
        optimizer=config.optimizer,
        fmax_ev_per_angstrom=config.fmax_ev_per_angstrom,
        max_steps_per_gamma=config.max_steps_per_gamma,
        snapshot_every=config.snapshot_every,
        max_step_angstrom=config.max_step_angstrom,
        stop_on=(EngineError,),
    )


def _add_snapshots(
    batch: GenerationBatch,
    config: AFIRConfig,
    record: StructureRecord,
    path: AFIRPath,
    base: dict[str, Any],
    parent: int,
) -> None:
    """Add the path's snapshots as children of the start structure ``parent``."""
    for snap in path.snapshots:
        child = StructureRecord(
            numbers=record.numbers.copy(),
            positions_angstrom=snap.positions_angstrom,
            charge=record.charge,
            multiplicity=record.multiplicity,
        )
        params = base | {
            "gamma_kj_per_mol": snap.gamma_kj_per_mol,
            "step": snap.step,
            "energy_hartree": snap.energy_hartree,
            "afir_distance_angstrom": snap.afir_distance_angstrom,
            "driver": config.driver.model_dump(),
        }
        batch.add(
            GeneratedStructure(child, "afir", params, config.seed, parent=parent),
            check_fragments=True,
        )
