"""Start structures of AFIR paths: a molecule/cluster (pair mode) or two fragments side by side."""

from __future__ import annotations

from typing import Any

import numpy as np

from interphase.records import StructureRecord
from interphase.structures.config import AFIRConfig
from interphase.structures.lattice import lithium_cluster
from interphase.structures.molecules import (
    PlacementError,
    lowest_multiplicity,
    molecular_cluster,
    random_rotation,
)

#: (record, generator name, params, fragment A indices, fragment B indices)
AFIRStart = tuple[StructureRecord, str, dict[str, Any], list[int], list[int]]


def join_fragments(
    first: StructureRecord,
    second: StructureRecord,
    gap_angstrom: float,
    rng: np.random.Generator,
) -> StructureRecord:
    """Both fragments in one record: ``second`` randomly rotated, placed along a random
    direction so that the closest atoms of the two are ``gap_angstrom`` apart."""
    a = first.positions_angstrom - first.positions_angstrom.mean(axis=0)
    b = second.positions_angstrom - second.positions_angstrom.mean(axis=0)
    b = b @ random_rotation(rng).T
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    # Move B outwards until its closest approach to A equals the gap (distance grows
    # monotonically along the ray once the fragments no longer overlap).
    shift = float(np.abs(a).max() + np.abs(b).max()) * 2 + gap_angstrom
    low, high = 0.0, shift
    for _ in range(60):
        middle = (low + high) / 2
        closest = np.linalg.norm(a[:, None] - (b + middle * direction)[None], axis=2).min()
        low, high = (middle, high) if closest < gap_angstrom else (low, middle)
    positions = np.concatenate([a, b + high * direction])
    numbers = np.concatenate([first.numbers, second.numbers])
    charge = first.charge + second.charge
    return StructureRecord(
        numbers=numbers,
        positions_angstrom=positions - positions.mean(axis=0),
        charge=charge,
        multiplicity=lowest_multiplicity(numbers, charge),
    )


def afir_start(config: AFIRConfig, rng: np.random.Generator) -> AFIRStart | None:
    """The start structure of one path, or ``None`` when molecules could not be placed."""
    try:
        if config.mode == "pair":
            record, _ = molecular_cluster(config.start_species, rng)
            start_params = {"species": list(config.start_species), "role": "afir_start"}
            return record, "molecular_cluster", start_params, [], []
        first, _ = molecular_cluster(config.fragment_a, rng)
        if config.li_cluster_atoms > 0:
            second = lithium_cluster("bcc", config.li_cluster_atoms, 3.49, 0.05, rng)
            b_name: list[str] = [f"Li{config.li_cluster_atoms} cluster"]
        else:
            second, _ = molecular_cluster(config.fragment_b, rng)
            b_name = list(config.fragment_b)
    except PlacementError:
        return None
    record = join_fragments(first, second, config.separation_angstrom, rng)
    group_a = list(range(first.n_atoms))
    group_b = list(range(first.n_atoms, record.n_atoms))
    params: dict[str, Any] = {
        "fragment_a": list(config.fragment_a),
        "fragment_b": b_name,
        "separation_angstrom": config.separation_angstrom,
        "role": "afir_start",
    }
    return record, "afir_fragments_start", params, group_a, group_b
