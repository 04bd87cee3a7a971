"""Throughput of the structure generators on this machine.

Structures per second for lattice noise, molecules and interface-cluster
extraction; optimiser steps per second for AFIR and MD steps per second with
GFN2-xTB (tblite engine harness) on EC + a 20-atom Li cluster (30 atoms,
non-periodic), as the issue asks.

    .venv/bin/python bench/generators.py [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import numpy as np
from ase import Atoms

from interphase.dynamics import MDSettings, run_md
from interphase.labeling.ase_calculator import EngineCalculator, xtb_calculator
from interphase.labeling.engines.contract import EngineError
from interphase.records import StructureRecord
from interphase.structures.afir import AFIRCalculator, afir_path
from interphase.structures.afir_start import join_fragments
from interphase.structures.config import DriverSettings, LatticeConfig, MoleculesConfig
from interphase.structures.interface import build_interface, extract_cluster, interface_centre
from interphase.structures.lattice import lithium_cluster
from interphase.structures.molecules import molecule_record
from interphase.structures.recipes import lattice_batch, molecules_batch


def timed(label: str, unit: str, run: Callable[[], int]) -> None:
    start = time.perf_counter()
    count = run()
    seconds = time.perf_counter() - start
    print(f"| {label} | {count} {unit} | {seconds:.2f} s | {count / seconds:,.1f} {unit}/s |")


def ec_li20() -> StructureRecord:
    # Seed 1: a start geometry whose GFN2-xTB SCF converges (Li clusters are erratic).
    rng = np.random.default_rng(1)
    li = lithium_cluster("bcc", 20, 3.49, 0.05, rng)
    return join_fragments(molecule_record("EC"), li, 3.0, rng)


def driver(record: StructureRecord) -> EngineCalculator:
    """GFN2-xTB as the generators drive it (1000 K smearing, SCF fallbacks)."""
    return xtb_calculator(
        multiplicity=record.multiplicity,
        electronic_temperature_k=1000.0,
        fallback_settings=DriverSettings().fallback_settings,
    )


def afir_steps() -> int:
    record = ec_li20()
    atoms = Atoms(numbers=record.numbers, positions=record.positions_angstrom)
    afir = AFIRCalculator(
        driver(record),
        list(range(10)),
        list(range(10, 30)),
        gamma_kj_per_mol=100.0,
    )
    path = afir_path(
        atoms, afir, [100.0], max_steps_per_gamma=10, snapshot_every=1, stop_on=(EngineError,)
    )
    return path.snapshots[-1].step if path.snapshots else 0


def md_steps() -> int:
    record = ec_li20()
    atoms = Atoms(numbers=record.numbers, positions=record.positions_angstrom)
    calculator = driver(record)
    settings = MDSettings(steps=10, timestep_fs=0.5, temperature_k=300.0, snapshot_every=1)
    run = run_md(atoms, calculator, settings, stop_on=(EngineError,))
    return run.frames[-1].step if run.frames else 0


def interface_clusters() -> int:
    interface = build_interface(
        np.random.default_rng(0), species=["EC"] * 6, repeats_xy=(4, 4), layers=3
    )
    rng = np.random.default_rng(1)
    for _ in range(200):
        centre = interface_centre(interface.atoms, interface.slab_top_angstrom, rng)
        extract_cluster(interface.atoms, centre, 5.0)
    return 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="OpenMP threads of tblite.")
    args = parser.parse_args()
    import tblite.interface  # noqa: F401  (load the OpenMP runtime before limiting it)
    from threadpoolctl import threadpool_limits

    print(f"machine: {platform.node()} {platform.processor()}, tblite threads: {args.threads}\n")
    print("| generator | work | time | rate |\n|---|---|---|---|")
    with threadpool_limits(limits=args.threads, user_api="openmp"):
        lattice = LatticeConfig(n_per_packing=20)
        timed(
            "lattice noise (bulk 16-54, clusters 20, slabs)",
            "structures",
            lambda: len(lattice_batch(lattice).items),
        )
        molecules = MoleculesConfig(conformers=5, n_per_cluster=10)
        timed(
            "molecules (7 SMILES x 5 conformers) + clusters",
            "structures",
            lambda: len(molecules_batch(molecules).items),
        )
        timed("interface clusters (5 Å, 4x4x3 Li + 6 EC)", "clusters", interface_clusters)
        timed("AFIR, GFN2-xTB, EC + Li20 fragments", "optimiser steps", afir_steps)
        timed("MD Langevin, GFN2-xTB, EC + Li20", "MD steps", md_steps)


if __name__ == "__main__":
    main()
