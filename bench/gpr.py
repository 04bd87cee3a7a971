"""Fit and predict times of interphase's subset GP vs subset size, beside aenet-gpr.

Data: GFN1-xTB labels (tblite, 3000 K electronic smearing, mixer damping 0.2) of
rattled copies (Gaussian noise of 0.05 Å on every coordinate) of three
non-periodic systems: ethylene carbonate (10 atoms), EC next to a Li12 cluster
(22 atoms) and EC next to a Li36 cluster (46 atoms, the size of the paper's EC
on Li). GFN1 rather than GFN2: GFN2-xTB's SCF did not converge on the rattled
EC + Li clusters (Li10-Li36, 300-5000 K smearing, damping down to 0.05, 500
iterations), GFN1-xTB at 3000 K does; snapshots whose SCF still fails are
redrawn and counted. Labels are cached in ``data/bench-gpr/``.

The same 20 test structures are predicted at every size; the first n of the
remaining structures train. Both packages get energies and forces with
flattened Cartesian inputs: interphase's :class:`EnergyGradientGP` with its
defaults (memory plan of the device, marginal-likelihood hyperparameters with
restarts) and aenet-gpr 3.7.9's ``ReferenceData`` with its defaults (batch mode,
SE kernel, scale and weight fitted). Each (package, size) runs in its own
process, so peak RSS (and peak CUDA memory) is that case's.

    .venv/bin/python bench/gpr.py                       # CPU, 25x10 50x10 25x22, ~7 min
    .venv/bin/python bench/gpr.py --memory-gb 16 --memory-limit-gb 18 --tag all \\
        --sizes 25x10 50x10 100x10 200x10 25x22 50x22 100x22 200x22 25x46 50x46 100x46
    .venv/bin/python bench/gpr.py --device cuda --tag gpu --sizes 25x10 50x10 100x10 \\
        200x10 25x22 50x22 100x22 200x22 25x46 50x46 100x46 200x46

Both packages factorise the training kernel during their fit; "first predict"
is the first call after fitting, "predict" a second, warm call. interphase's
predict always returns the energy std. A subset above interphase's memory plan
is subsampled by farthest-point sampling, as ``interphase gpr fit`` does (the
row's note says how many structures it conditioned on).

Results: ``bench/results/gpr-<device>.csv`` and ``.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase.units import Hartree

RESULTS = Path(__file__).parent / "results"
DATA_DIR = Path(__file__).parents[1] / "data" / "bench-gpr"
N_TEST = 20
RATTLE_ANGSTROM = 0.05
LITHIUM_ATOMS = {10: 0, 22: 12, 46: 36}
XTB_SETTINGS = {"electronic_temperature_k": 3000.0, "mixer_damping": 0.2}
DEFAULT_SIZES = ("25x10", "50x10", "25x22")
PACKAGES = ("interphase", "aenet-gpr")


@dataclass
class Dataset:
    """Labeled structures of one system: test structures first."""

    numbers: np.ndarray  # (N,)
    positions_angstrom: np.ndarray  # (n, N, 3)
    energies_hartree: np.ndarray  # (n,)
    gradients_hartree_per_angstrom: np.ndarray  # (n, N, 3)
    scf_failures: int

    def split(self, n_train: int) -> tuple[Dataset, Dataset]:
        """(train, test): the first N_TEST structures test, the next n_train train."""

        def part(rows: slice) -> Dataset:
            return Dataset(
                self.numbers,
                self.positions_angstrom[rows],
                self.energies_hartree[rows],
                self.gradients_hartree_per_angstrom[rows],
                self.scf_failures,
            )

        return part(slice(N_TEST, N_TEST + n_train)), part(slice(0, N_TEST))


def base_structure(n_atoms: int):  # type: ignore[no-untyped-def]
    """EC, or EC 2.5 Å from a compact bcc Li cluster (closest atoms), as a StructureRecord."""
    from interphase.structures.afir_start import join_fragments
    from interphase.structures.lattice import lithium_cluster
    from interphase.structures.molecules import molecule_record

    if n_atoms not in LITHIUM_ATOMS:
        raise SystemExit(f"no benchmark system with {n_atoms} atoms; choose 10, 22 or 46")
    ec = molecule_record("EC")
    if not LITHIUM_ATOMS[n_atoms]:
        return ec
    rng = np.random.default_rng(0)
    lithium = lithium_cluster("bcc", LITHIUM_ATOMS[n_atoms], 3.49, 0.0, rng)
    return join_fragments(ec, lithium, 2.5, rng)


def labeled_dataset(n_atoms: int, n_structures: int, seed: int = 0) -> Dataset:
    """``n_structures`` rattled copies with GFN1-xTB labels, cached on disk."""
    # Copies are drawn from one random stream, so a larger cached set starts with
    # exactly the structures a smaller request would label.
    for cached in sorted(DATA_DIR.glob(f"{n_atoms}atoms-*-seed{seed}.npz")):
        stored = np.load(cached)
        if len(stored["energies"]) >= n_structures:
            rows = slice(0, n_structures)
            return Dataset(
                stored["numbers"],
                stored["positions"][rows],
                stored["energies"][rows],
                stored["gradients"][rows],
                int(stored["scf_failures"]),
            )
    path = DATA_DIR / f"{n_atoms}atoms-{n_structures}-seed{seed}.npz"
    import tblite.interface  # noqa: F401  (load the OpenMP runtime before limiting it)
    from threadpoolctl import threadpool_limits

    from interphase.labeling.engines.contract import Calculation, SCFNotConverged
    from interphase.labeling.engines.tblite import TBLiteEngine
    from interphase.records import StructureRecord

    base = base_structure(n_atoms)
    engine, calculation = TBLiteEngine(), Calculation("GFN1-xTB", settings=XTB_SETTINGS)
    rng = np.random.default_rng(seed)
    positions: list[np.ndarray] = []
    energies: list[float] = []
    gradients: list[np.ndarray] = []
    failures = 0
    started = time.perf_counter()
    with threadpool_limits(limits=1, user_api="openmp"):
        while len(energies) < n_structures:
            rattled = base.positions_angstrom + rng.normal(0.0, RATTLE_ANGSTROM, (n_atoms, 3))
            record = StructureRecord(
                numbers=base.numbers,
                positions_angstrom=rattled,
                charge=base.charge,
                multiplicity=base.multiplicity,
            )
            try:
                label = engine.compute(record, calculation)
            except SCFNotConverged:
                failures += 1
                continue
            positions.append(rattled)
            energies.append(label.total_energy_hartree)
            gradients.append(label.gradient_hartree_per_angstrom)
    print(
        f"labeled {n_structures} × {n_atoms} atoms in {time.perf_counter() - started:.0f} s "
        f"({failures} SCF failures redrawn)",
        file=sys.stderr,
    )
    data = Dataset(
        np.asarray(base.numbers), np.stack(positions), np.array(energies), np.stack(gradients),
        failures,
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        numbers=data.numbers,
        positions=data.positions_angstrom,
        energies=data.energies_hartree,
        gradients=data.gradients_hartree_per_angstrom,
        scf_failures=failures,
    )
    return data


def errors(
    test: Dataset, energies_hartree: np.ndarray, gradients_hartree_per_angstrom: np.ndarray
) -> dict[str, float]:
    """Energy MAE per atom (meV/atom) and force-component MAE (meV/Å)."""
    n_atoms = len(test.numbers)
    energy = np.abs(energies_hartree - test.energies_hartree).mean() / n_atoms
    force = np.abs(gradients_hartree_per_angstrom - test.gradients_hartree_per_angstrom).mean()
    return {
        "energy_mae_mev_per_atom": 1000 * Hartree * float(energy),
        "force_mae_mev_per_angstrom": 1000 * Hartree * float(force),
    }


def synchronise(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_interphase(train: Dataset, test: Dataset, args: argparse.Namespace) -> dict:  # type: ignore[type-arg]
    """interphase's GP with the device's memory plan (and its search unless overridden)."""
    from interphase.gpr.gp import EnergyGradientGP
    from interphase.gpr.memory import plan_for_device, plan_training_indices
    from interphase.gpr.subsets import aligned_inputs

    device = args.device
    plan = plan_for_device(device, args.memory_gb)
    aligned = aligned_inputs(train.positions_angstrom, periodic=False)  # as `gpr fit` does
    keep = plan_training_indices(aligned, len(train.numbers), max_outputs=plan.max_outputs)
    search = {"training_iterations": args.iterations, "restarts": args.restarts}
    gp = EnergyGradientGP(
        train.numbers,
        periodic=False,
        device=device,
        max_outputs=plan.max_outputs,
        max_hyperparameter_outputs=plan.max_hyperparameter_outputs,
        **{k: v for k, v in search.items() if v is not None},
    )
    started = time.perf_counter()
    gp.fit(
        train.positions_angstrom[keep],
        train.energies_hartree[keep],
        train.gradients_hartree_per_angstrom[keep],
    )
    synchronise(device)
    fit_s = time.perf_counter() - started
    timings = []
    for _ in range(2):
        started = time.perf_counter()
        prediction = gp.predict(test.positions_angstrom)
        synchronise(device)
        timings.append(time.perf_counter() - started)
    result = {"fit_s": fit_s, "first_predict_s": timings[0], "predict_s": timings[1]}
    result["predict_with_std_s"] = timings[1]  # the energy std always comes with it
    result["hyperparameter_structures"] = gp.hyperparameter_structures
    if len(keep) < len(train.energies_hartree):
        result["note"] = f"conditioned on {len(keep)} (farthest-point sample, memory plan)"
    result["likelihood_evaluations"] = gp.search.evaluations if gp.search else 0
    result["lengthscale"] = next(v for k, v in gp.hyperparameters().items() if "length" in k)
    return result | errors(
        test, prediction.energy_hartree, prediction.gradient_hartree_per_angstrom
    )


def as_images(data: Dataset) -> list:  # type: ignore[type-arg]
    """ASE atoms with a single-point calculator (eV, eV/Å), as aenet-gpr reads them."""
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    images = []
    for positions, energy, gradient in zip(
        data.positions_angstrom,
        data.energies_hartree,
        data.gradients_hartree_per_angstrom,
        strict=True,
    ):
        atoms = Atoms(numbers=data.numbers, positions=positions)
        atoms.calc = SinglePointCalculator(
            atoms, energy=energy * Hartree, forces=-gradient * Hartree
        )
        images.append(atoms)
    return images


def run_aenet_gpr(train: Dataset, test: Dataset, device: str) -> dict:  # type: ignore[type-arg]
    """aenet-gpr 3.7.9 defaults: Cartesian descriptor, forces, batch mode, fitted scale/weight."""
    from aenet_gpr.util import ReferenceData

    images, test_images = as_images(train), as_images(test)
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # it prints its scale/weight updates
        reference = ReferenceData(
            structure_files=images, file_format="ase", device=device, data_process="batch"
        )
        reference.config_calculator(use_forces=True, fit_weight=True, fit_scale=True)
    synchronise(device)
    fit_s = time.perf_counter() - started
    timings = {}
    for with_std in (False, True):
        started = time.perf_counter()
        energy, force, _, _ = reference.calculator.eval_batch(
            eval_images=test_images, get_variance=with_std
        )
        synchronise(device)
        timings[with_std] = time.perf_counter() - started
    energy_hartree = energy.cpu().detach().numpy().reshape(-1) / Hartree
    gradient = -force.cpu().detach().numpy().reshape(test.positions_angstrom.shape) / Hartree
    result = {"fit_s": fit_s, "first_predict_s": timings[False], "predict_s": timings[False]}
    result["predict_with_std_s"] = timings[True]
    result["hyperparameter_structures"] = len(images)
    result["lengthscale"] = float(reference.calculator.scale)
    return result | errors(test, energy_hartree, gradient)


def run_case(package: str, size: str, args: argparse.Namespace) -> dict:  # type: ignore[type-arg]
    """One (package, structures × atoms) case in this process, with its peak memory."""
    import torch

    if args.memory_limit_gb:  # a clean MemoryError instead of the kernel's OOM killer
        limit = int(args.memory_limit_gb * 1e9)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    device = args.device
    n, n_atoms = (int(x) for x in size.split("x"))
    train, test = labeled_dataset(n_atoms, N_TEST + n).split(n)
    if package == "interphase":
        result = run_interphase(train, test, args)
    else:
        result = run_aenet_gpr(train, test, device)
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    result["peak_cuda_gb"] = (
        torch.cuda.max_memory_allocated() / 1e9 if device.startswith("cuda") else 0.0
    )
    return result


def run_isolated(package: str, size: str, args: argparse.Namespace) -> dict:  # type: ignore[type-arg]
    """``run_case`` in a child process (fresh peak RSS); failures become a note."""
    command = [sys.executable, __file__, "--case", f"{package}:{size}", "--device", args.device]
    for option in ("memory_gb", "iterations", "restarts", "memory_limit_gb"):
        if getattr(args, option) is not None:
            command += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=args.case_timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"note": f"stopped after {args.case_timeout} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"note": f"failed (exit {done.returncode}): {tail[:160]}"}
    return dict(json.loads(lines[-1][len("RESULT ") :]))


def library_version() -> str:
    """Commit of the checkout, marked when interphase.gpr has uncommitted changes."""
    root = Path(__file__).parents[1]

    def git(*arguments: str) -> str:
        done = subprocess.run(["git", *arguments], cwd=root, capture_output=True, text=True)
        return done.stdout.strip()

    dirty = git("status", "--porcelain", "platform/interphase/gpr")
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted gpr changes" if dirty else "")


def write_outputs(rows: list[dict], name: str, header: str) -> None:  # type: ignore[type-arg]
    """CSV and markdown table under bench/results/."""
    RESULTS.mkdir(exist_ok=True)
    fields = list(dict.fromkeys(key for row in rows for key in row))
    with (RESULTS / f"{name}.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        header,
        "",
        "| structures × atoms | outputs | package | hyperparameter fit | fit (s) "
        "| first predict (s) | predict (ms/structure) "
        "| predict with std (ms/structure) | E MAE (meV/atom) | F MAE (meV/Å) "
        "| peak RSS (GB) | note |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        if "fit_s" in row:
            search = (
                f"{row['likelihood_evaluations']} likelihood evaluations on "
                f"{row['hyperparameter_structures']}"
                if "likelihood_evaluations" in row
                else "3-point scale grid, weight closed form"
            )
            cells = (
                f"{search} | {row['fit_s']:.2f} | {row['first_predict_s']:.2f} "
                f"| {1000 * row['predict_s'] / N_TEST:.1f} "
                f"| {1000 * row['predict_with_std_s'] / N_TEST:.1f} "
                f"| {row['energy_mae_mev_per_atom']:.2f} | {row['force_mae_mev_per_angstrom']:.0f} "
                f"| {row['peak_rss_gb']:.2f}"
            )
        else:
            cells = " | ".join(["—"] * 8)
        lines.append(
            f"| {row['structures']} × {row['atoms']} | {row['outputs']:,} | {row['package']} "
            f"| {cells} | {row.get('note', '')} |"
        )
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), help="e.g. 50x46")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--packages", nargs="+", default=list(PACKAGES), choices=PACKAGES)
    parser.add_argument("--memory-gb", type=float, help="interphase memory budget (GB)")
    parser.add_argument(
        "--iterations", type=int, help="interphase Nelder–Mead iterations per restart"
    )
    parser.add_argument("--restarts", type=int, help="interphase hyperparameter restarts")
    parser.add_argument(
        "--memory-limit-gb", type=float, help="address-space limit of each case process (GB)"
    )
    parser.add_argument("--tag", default="", help="suffix of the output files")
    parser.add_argument("--case-timeout", type=float, default=1800, help="seconds per case")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # PACKAGE:NxA, in a child process
    args = parser.parse_args()
    if args.case:
        package, size = args.case.split(":")
        print("RESULT " + json.dumps(run_case(package, size, args)))
        return
    needed: dict[int, int] = {}
    for size in args.sizes:
        n, n_atoms = (int(x) for x in size.split("x"))
        needed[n_atoms] = max(needed.get(n_atoms, 0), N_TEST + n)
    failures = {n_atoms: labeled_dataset(n_atoms, n).scf_failures for n_atoms, n in needed.items()}
    version, rows = library_version(), []
    started = time.perf_counter()
    for size in args.sizes:
        n, n_atoms = (int(x) for x in size.split("x"))
        for package in args.packages:
            row = {"package": package, "device": args.device, "structures": n, "atoms": n_atoms}
            row |= {"outputs": n * (3 * n_atoms + 1)} | run_isolated(package, size, args)
            rows.append(row)
            print(json.dumps(row), flush=True)
    search = f"interphase search: {args.iterations or 'default'} Nelder–Mead iterations × "
    search += (
        f"{args.restarts or 'default'} restarts, memory budget {args.memory_gb or 'default'} GB"
    )
    header = (
        f"device {args.device}; interphase {version}; {search}; {N_TEST} test "
        f"structures; GFN1-xTB SCF failures redrawn per system: {failures}; "
        f"{time.perf_counter() - started:.0f} s in total"
    )
    write_outputs(rows, f"gpr-{args.device}" + (f"-{args.tag}" if args.tag else ""), header)


if __name__ == "__main__":
    main()
