"""Generator recipes: a validated config in, a validated :class:`GenerationBatch` out.

Each recipe is deterministic for its config (seed included), validates every
structure with the shared checks and records, per structure, the parameters
that made it. ``advance`` (optional) is called with a number of finished
work units for progress bars; :func:`work_units` gives the expected total.
This module holds the dispatch and the lattice and molecule recipes; AFIR
paths are in :mod:`interphase.structures.afir_recipe`, MD runs in
:mod:`interphase.structures.md_recipe`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interphase.records import StructureRecord
from interphase.structures.afir_recipe import afir_batch
from interphase.structures.batch import Advance, GeneratedStructure, GenerationBatch, no_progress
from interphase.structures.config import (
    AFIRConfig,
    LatticeConfig,
    MDConfig,
    MixedConfig,
    MoleculesConfig,
)
from interphase.structures.lattice import (
    draw_stretch,
    equal_volume_lattice_constant,
    lithium_bulk,
    lithium_cluster,
)
from interphase.structures.md_recipe import md_batch
from interphase.structures.molecules import PlacementError, molecular_cluster, molecule_record
from interphase.structures.slab import lithium_slab

AnyConfig = LatticeConfig | MoleculesConfig | AFIRConfig | MDConfig | MixedConfig


def work_units(config: AnyConfig) -> int:
    """Expected number of progress units of ``config`` (structures, paths or MD steps)."""
    if isinstance(config, LatticeConfig):
        per_kind = {"bulk": 1, "cluster": 1, "slab": len(config.slab_miller)}
        return config.n_per_packing * len(config.packings) * sum(per_kind[k] for k in config.kinds)
    if isinstance(config, MoleculesConfig):
        return (
            len(config.molecules) * config.conformers + len(config.clusters) * config.n_per_cluster
        )
    if isinstance(config, AFIRConfig):
        return config.n_paths
    if isinstance(config, MDConfig):
        return config.n_steps
    parts = [config.lattice, config.molecules, *config.afir, config.md]
    return sum(work_units(part) for part in parts if part is not None)


def generate(config: AnyConfig, advance: Advance | None = None) -> GenerationBatch:
    """Run the recipe of ``config``'s kind (all parts, in order, for :class:`MixedConfig`)."""
    advance = advance or no_progress
    if isinstance(config, LatticeConfig):
        return lattice_batch(config, advance)
    if isinstance(config, MoleculesConfig):
        return molecules_batch(config, advance)
    if isinstance(config, AFIRConfig):
        return afir_batch(config, advance)
    if isinstance(config, MDConfig):
        return md_batch(config, advance)
    batch = GenerationBatch()
    for part in [config.lattice, config.molecules, *config.afir, config.md]:
        if part is not None:
            batch.extend(generate(part, advance))
    return batch


def lattice_batch(config: LatticeConfig, advance: Advance = no_progress) -> GenerationBatch:
    """Li bulk supercells, clusters and slabs with scaling and noise."""
    rng = np.random.default_rng(config.seed)
    batch = GenerationBatch()
    common = {"noise_angstrom": config.noise_angstrom, "anisotropy": config.anisotropy}
    for kind in config.kinds:
        for packing in config.packings:
            millers = config.slab_miller if kind == "slab" else [None]
            for miller in millers:
                for index in range(config.n_per_packing):
                    scale = float(rng.uniform(*config.scale_range))
                    stretch = draw_stretch(rng, config.anisotropy)
                    a = equal_volume_lattice_constant(packing, config.bcc_lattice_constant_angstrom)
                    record = _lattice_record(config, kind, packing, miller, a * scale, stretch, rng)
                    params: dict[str, Any] = {
                        **common,
                        "packing": packing,
                        "index": index,
                        "scale": scale,
                        "stretch": stretch.tolist(),
                        "lattice_constant_angstrom": a * scale,
                    }
                    if miller is not None:
                        params["miller"] = list(miller)
                    batch.add(GeneratedStructure(record, f"lattice_{kind}", params, config.seed))
                    advance(1)
    return batch


def _lattice_record(
    config: LatticeConfig,
    kind: str,
    packing: str,
    miller: tuple[int, int, int] | None,
    lattice_constant_angstrom: float,
    stretch: np.ndarray,
    rng: np.random.Generator,
) -> StructureRecord:
    noise = config.noise_angstrom
    if kind == "bulk":
        return lithium_bulk(
            packing, config.bulk_repeats, lattice_constant_angstrom, noise, rng, stretch=stretch
        )
    if kind == "cluster":
        return lithium_cluster(
            packing,
            config.cluster_n_atoms,
            lattice_constant_angstrom,
            noise,
            rng,
            stretch=stretch,
            source_repeats=config.cluster_source_repeats,
        )
    assert miller is not None  # slabs always have one (see lattice_batch)
    return lithium_slab(
        packing,
        miller,
        config.slab_layers,
        config.vacuum_angstrom,
        lattice_constant_angstrom,
        noise,
        rng,
        repeats_xy=config.slab_repeats_xy,
        stretch=stretch,
    )


def molecules_batch(config: MoleculesConfig, advance: Advance = no_progress) -> GenerationBatch:
    """Single electrolyte molecules (per conformer seed) and random molecular clusters."""
    rng = np.random.default_rng(config.seed)
    batch = GenerationBatch()
    for species in config.molecules:
        for conformer in range(config.conformers):
            embed_seed = int(rng.integers(2**31))
            record = molecule_record(species, embed_seed)
            params = {"species": species, "conformer": conformer, "embed_seed": embed_seed}
            batch.add(GeneratedStructure(record, "molecule", params, config.seed))
            advance(1)
    for composition in config.clusters:
        for index in range(config.n_per_cluster):
            params = {
                "species": list(composition),
                "index": index,
                "region": config.region,
                "size_angstrom": config.size_angstrom,
                "min_distance_angstrom": config.min_distance_angstrom,
            }
            try:
                record, _ = molecular_cluster(
                    composition,
                    rng,
                    region=config.region,
                    size_angstrom=config.size_angstrom,
                    min_distance_angstrom=config.min_distance_angstrom,
                )
            except PlacementError:
                batch.reject("molecular_cluster", "placement_failed")
            else:
                batch.add(
                    GeneratedStructure(record, "molecular_cluster", params, config.seed),
                    check_fragments=True,
                )
            advance(1)
    return batch
