"""The MD recipe: snapshots of a run with lineage, and interface clusters cut from them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from interphase.dynamics import MDSettings, PhysicalityGuard, run_md
from interphase.labeling.engines.contract import EngineError
from interphase.records import StructureRecord
from interphase.structures.batch import Advance, GeneratedStructure, GenerationBatch, no_progress
from interphase.structures.config import MDConfig
from interphase.structures.driver import driver_calculator
from interphase.structures.interface import build_interface, extract_cluster, interface_centre
from interphase.structures.lattice import LI
from interphase.structures.molecules import PlacementError, lowest_multiplicity
from interphase.structures.validate import InvalidStructureError, validate_structure


def md_batch(
    config: MDConfig,
    advance: Advance = no_progress,
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
        frame = StructureRecord.from_atoms(
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
        atoms = start.to_atoms()
        li = atoms.numbers == LI
        interface = atoms.pbc.any() and li.any() and not li.all()
        return root, atoms, float(atoms.positions[li, 2].max()) if interface else None
    spec = config.interface
    try:
        interface = build_interface(rng, **spec.model_dump())
    except PlacementError:
        batch.reject("interface", "placement_failed")
        return None
    record = StructureRecord.from_atoms(interface.atoms)
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
