"""Generator recipes: a validated config in, a validated :class:`GenerationBatch` out.

Each recipe is deterministic for its config (seed included), validates every
structure with the shared checks and records, per structure, the parameters
that made it. ``advance`` (optional) is called with a number of finished
work units for progress bars; :func:`work_units` gives the expected total.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from interphase.dynamics import MDSettings, PhysicalityGuard, run_md
from interphase.labeling.ase_calculator import EngineCalculator, record_from_atoms, xtb_calculator
from interphase.labeling.engine import EngineError
from interphase.records import StructureRecord
from interphase.structures.afir import AFIRCalculator, afir_path, random_pair
from interphase.structures.batch import GeneratedStructure, GenerationBatch
from interphase.structures.config import (
    AFIRConfig,
    DriverSettings,
    LatticeConfig,
    MDConfig,
    MixedConfig,
    MoleculesConfig,
)
from interphase.structures.interface import build_interface, extract_cluster, interface_centre
from interphase.structures.lattice import (
    LI,
    draw_stretch,
    equal_volume_lattice_constant,
    lithium_bulk,
    lithium_cluster,
)
from interphase.structures.molecules import (
    PlacementError,
    lowest_multiplicity,
    molecular_cluster,
    molecule_record,
)
from interphase.structures.slab import lithium_slab
from interphase.structures.validate import InvalidStructureError, validate_structure

Advance = Callable[[int], None]
AnyConfig = LatticeConfig | MoleculesConfig | AFIRConfig | MDConfig | MixedConfig


def _noop(_: int) -> None:
    return None


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
    advance = advance or _noop
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


def lattice_batch(config: LatticeConfig, advance: Advance = _noop) -> GenerationBatch:
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


def molecules_batch(config: MoleculesConfig, advance: Advance = _noop) -> GenerationBatch:
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


def driver_calculator(record: StructureRecord, driver: DriverSettings) -> EngineCalculator:
    """The tblite engine harness as an ASE calculator for ``record``'s charge and spin."""
    return xtb_calculator(
        charge=record.charge,
        multiplicity=record.multiplicity,
        method=driver.method,
        electronic_temperature_k=driver.electronic_temperature_k,
        fallback_settings=driver.fallback_settings,
    )


def _atoms(record: StructureRecord) -> Atoms:
    atoms = Atoms(numbers=record.numbers, positions=record.positions_angstrom, pbc=record.pbc)
    if record.cell_angstrom is not None:
        atoms.set_cell(record.cell_angstrom)
    return atoms


def afir_batch(config: AFIRConfig, advance: Advance = _noop) -> GenerationBatch:
    """AFIR paths; each start structure is stored, snapshots are its children."""
    from interphase.structures.afir_start import afir_start

    rng = np.random.default_rng(config.seed)
    batch = GenerationBatch()
    rho = 1 if config.direction == "push" else -1
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
        afir = AFIRCalculator(
            driver_calculator(record, config.driver),
            group_a,
            group_b,
            gamma_kj_per_mol=config.gammas_kj_per_mol[0],
            rho=rho,
        )
        path = afir_path(
            _atoms(record),
            afir,
            config.gammas_kj_per_mol,
            optimizer=config.optimizer,
            fmax_ev_per_angstrom=config.fmax_ev_per_angstrom,
            max_steps_per_gamma=config.max_steps_per_gamma,
            snapshot_every=config.snapshot_every,
            max_step_angstrom=config.max_step_angstrom,
            stop_on=(EngineError,),
        )
        if isinstance(path.error, EngineError):
            batch.reject("afir", f"path_ended:{path.error.error_class}")
        base: dict[str, Any] = {"mode": config.mode, "direction": config.direction}
        base["path"] = path_index
        base |= {"pair": group_a + group_b} if config.mode == "pair" else {}
        base |= {"fragments": [group_a, group_b]} if config.mode == "fragments" else {}
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
        advance(1)
    return batch


def md_batch(
    config: MDConfig,
    advance: Advance = _noop,
    calculator: Calculator | None = None,
    *,
    start: StructureRecord | None = None,
    guard: PhysicalityGuard | None = None,
) -> GenerationBatch:
    """MD snapshots (with lineage) and, at an Li/electrolyte interface, clusters cut from them.

    Parameters
    ----------
    config
        MD settings, cluster cutting and the interface to build.
    advance
        Progress, called with 1 after every MD step.
    calculator
        ASE calculator that drives the MD (e.g. a trained model's
        :class:`~interphase.models.calculator.InterphaseCalculator`); default the
        config's GFN2-xTB driver. An ``EngineError`` (SCF failure) ends the run
        whichever calculator it comes from.
    start
        Structure to start from (periodic or not; stored as the root, generator
        ``md_start``) instead of building ``config.interface``. Clusters are cut
        from its snapshots only when it is periodic and holds both Li and other
        elements; the interface plane is then taken at its highest Li atom.
    guard
        Stops a run that turns unphysical; the frames before are kept as
        candidates and one ``("md_snapshot", "unphysical")`` rejection is counted.
    """
    rng = np.random.default_rng(config.seed)
    batch = GenerationBatch()
    begun = _md_start(config, rng, batch, start)
    if begun is None:
        return batch
    root, atoms, slab_top_angstrom = begun
    record = batch.items[root].record
    atoms.info["charge"] = record.charge
    settings = MDSettings(
        steps=config.n_steps,
        timestep_fs=config.timestep_fs,
        temperature_k=config.temperature_k,
        friction_per_fs=config.friction_per_fs,
        snapshot_every=config.snapshot_every,
        seed=int(rng.integers(2**31)),
    )
    run = run_md(
        atoms,
        calculator if calculator is not None else driver_calculator(record, config.driver),
        settings,
        on_step=lambda _step, _atoms: advance(1),
        stop_on=(EngineError,),
        guard=guard,
    )
    if isinstance(run.error, EngineError):
        batch.reject("md_snapshot", f"run_ended:{run.error.error_class}")
    if run.unphysical is not None:
        batch.reject("md_snapshot", "unphysical")
    md_params = config.model_dump(exclude={"interface"})
    for snap in run.frames:
        frame = record_from_atoms(
            snap.atoms, charge=record.charge, multiplicity=record.multiplicity
        )
        params = md_params | {"step": snap.step, "time_fs": snap.time_fs}
        parent = batch.add(GeneratedStructure(frame, "md_snapshot", params, config.seed, root))
        if parent is None or slab_top_angstrom is None:
            continue
        for index in range(config.clusters_per_snapshot):
            _add_interface_cluster(batch, config, snap.atoms, slab_top_angstrom, rng, parent, index)
    return batch


def _md_start(
    config: MDConfig,
    rng: np.random.Generator,
    batch: GenerationBatch,
    start: StructureRecord | None,
) -> tuple[int, Atoms, float | None] | None:
    """Add the root structure; its index, moving atoms and interface plane z (Å) or None.

    None when the interface could not be built or the root is invalid.
    """
    if start is not None:
        root_record = replace(start, labels={}, key=None)
        root = batch.add(GeneratedStructure(root_record, "md_start", {}, config.seed))
        if root is None:
            return None
        atoms = _atoms(start)
        li = atoms.numbers == LI
        interface = atoms.pbc.any() and li.any() and not li.all()
        return root, atoms, float(atoms.positions[li, 2].max()) if interface else None
    spec = config.interface
    try:
        interface = build_interface(rng, **spec.model_dump())
    except PlacementError:
        batch.reject("interface", "placement_failed")
        return None
    record = record_from_atoms(interface.atoms)
    record.multiplicity = lowest_multiplicity(record.numbers, 0)
    root = batch.add(GeneratedStructure(record, "interface", spec.model_dump(), config.seed))
    if root is None:
        return None
    return root, interface.atoms.copy(), interface.slab_top_angstrom


def _add_interface_cluster(
    batch: GenerationBatch,
    config: MDConfig,
    atoms: Atoms,
    slab_top_angstrom: float,
    rng: np.random.Generator,
    parent: int,
    index: int,
) -> None:
    """Cut one valid cluster holding both Li and electrolyte, trying new centres as needed.

    When every attempt fails, one rejection is counted with the last reason.
    """
    reason = "no_interface"
    for _ in range(config.max_cluster_attempts):
        centre = interface_centre(
            atoms,
            slab_top_angstrom,
            rng,
            below_angstrom=config.below_surface_angstrom,
            above_angstrom=config.above_surface_angstrom,
        )
        record, molecules = extract_cluster(
            atoms, centre, config.cutoff_angstrom, charge=config.cluster_charge
        )
        n_li = int(np.count_nonzero(record.numbers == LI))
        if not (molecules and n_li):
            reason = "no_interface"
            continue
        try:
            validate_structure(record, check_fragments=True)
        except InvalidStructureError as error:
            reason = error.reason
            continue
        params = {
            "centre_angstrom": centre.tolist(),
            "cutoff_angstrom": config.cutoff_angstrom,
            "index": index,
            "n_molecules": len(molecules),
            "n_li": n_li,
        }
        batch.add(
            GeneratedStructure(record, "interface_cluster", params, config.seed, parent),
            check_fragments=True,
        )
        return
    batch.reject("interface_cluster", reason)
