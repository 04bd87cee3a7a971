"""``interphase gpr``: fit local GPs per subset, select uncertain candidates, augment.

Energies per atom are given and shown in meV/atom on the command line (the
library works in Hartree).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from interphase.cli.arguments import MAX_ROW_ID
from interphase.cli.common import USER_ERRORS, console, fail, open_database, progress
from interphase.db.session import transaction
from interphase.gpr.settings import DEFAULT_RESTARTS, DEFAULT_TRAINING_ITERATIONS, GPFitSettings
from interphase.records import XTB_LEVEL
from interphase.units import HARTREE_TO_MEV, mev_to_hartree

if TYPE_CHECKING:
    from interphase.gpr.fit import SubsetFit

app = typer.Typer(
    help="Local Gaussian-process regressions per subset: fit, select uncertain candidates, "
    "augment with GP-labeled copies (GPR-ANN).",
    no_args_is_help=True,
)


class DescriptorKind(StrEnum):
    cartesian = "cartesian"
    soap = "soap"


class OversizePolicyChoice(StrEnum):
    subsample = "subsample"
    error = "error"


LevelOption = Annotated[str, typer.Option(help="Level of theory whose labels the GPs model.")]
SubsetOption = Annotated[
    list[str] | None,
    typer.Option("--subset", help="Subset key (repeatable), e.g. 'C3H4O3|10|nnn'. Default: all."),
]


def _mev(value: float | None) -> str:
    return "—" if value is None else f"{value * HARTREE_TO_MEV:.2f}"


@app.command("fit")
def fit(
    level: LevelOption = XTB_LEVEL,
    subset: SubsetOption = None,
    descriptor: Annotated[
        DescriptorKind, typer.Option(help="GP input: aligned Cartesian or SOAP (+ Jacobian).")
    ] = DescriptorKind.cartesian,
    iterations: Annotated[
        int, typer.Option(min=0, help="Nelder–Mead iterations per restart (hyperparameter search).")
    ] = DEFAULT_TRAINING_ITERATIONS,
    restarts: Annotated[
        int, typer.Option(min=1, help="Hyperparameter restarts.")
    ] = DEFAULT_RESTARTS,
    memory_gb: Annotated[
        float | None, typer.Option(help="Memory per GP in GB (default 8 on CPU, 85% of a GPU).")
    ] = None,
    oversize: Annotated[
        OversizePolicyChoice,
        typer.Option(help="Subset over the memory cap: farthest-point subsample, or error."),
    ] = OversizePolicyChoice.subsample,
    workers: Annotated[int, typer.Option(min=1, help="Subsets fitted in parallel processes.")] = 1,
    device: Annotated[str | None, typer.Option(help="cuda or cpu (default: cuda if any).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the fit and validation split.")] = 0,
) -> None:
    """Fit one energy+force GP per subset at LEVEL and store it with provenance."""
    from interphase.gpr.descriptors import DescriptorSettings
    from interphase.gpr.fit import (
        MIN_SUBSET_SIZE,
        GPRFitError,
        fit_subset_gps,
        load_subsets,
    )

    try:
        open_database()
        if memory_gb is not None and not memory_gb > 0:
            raise ValueError(f"--memory-gb must be positive; got {memory_gb}")
        if device is not None and device.split(":")[0] not in ("cpu", "cuda"):
            raise ValueError(f"--device must be 'cpu' or 'cuda'; got {device!r}")
        settings = GPFitSettings(
            training_iterations=iterations,
            restarts=restarts,
            seed=seed,
            memory_budget_gb=memory_gb,
            oversize=oversize.value,
            device=device,
            descriptor=DescriptorSettings(kind=descriptor.value),
        )
        with transaction(read_only=True) as session:
            subsets = load_subsets(session, level, subset_keys=subset)
        if not subsets:
            raise GPRFitError(f"no labels with energies and gradients at level {level!r}")
        total = sum(len(s.label_ids) >= MIN_SUBSET_SIZE for s in subsets)
        with progress("subsets") as bar:
            task = bar.add_task(f"fitting GPs at {level}", total=total)
            fits = fit_subset_gps(
                None,
                level,
                subset_keys=subset,
                settings=settings,
                workers=workers,
                progress=lambda key: bar.advance(task),
            )
    except USER_ERRORS as error:
        fail(error)
    console.print(_fit_table(level, fits))
    if len(subsets) > len(fits):
        console.print(
            f"{len(subsets) - len(fits)} subset(s) with fewer than {MIN_SUBSET_SIZE} labeled "
            "structures have no GP (their candidates count as maximally uncertain)."
        )
    if any(f.subsampled for f in fits):
        console.print("* subsampled by farthest-point sampling to fit the memory budget.")


def _fit_table(level: str, fits: list[SubsetFit]) -> Table:
    table = Table(title=f"GPs at {level} (validation on a held-out quarter)")
    table.add_column("GP")
    table.add_column("subset", overflow="fold", min_width=9)
    headers = ("input", "n", "length", "scale Ha²", "noise Ha²", "E MAE meV/at", "F MAE meV/Å")
    for header in headers:
        table.add_column(header, overflow="fold")
    for f in fits:
        size = f"{f.n_structures}" + (f" of {f.n_available}*" if f.subsampled else "")
        lengthscale = f.hyperparameters.get(
            "lengthscale_angstrom", f.hyperparameters.get("lengthscale_soap", float("nan"))
        )
        unit = " Å" if "lengthscale_angstrom" in f.hyperparameters else ""
        table.add_row(
            str(f.gpr_model_id),
            f.subset_key,
            f.descriptor,
            size,
            f"{lengthscale:.3g}{unit}",
            f"{f.hyperparameters['outputscale_hartree2']:.2e}",
            f"{f.hyperparameters['noise_hartree2']:.1e}",
            _mev(f.energy_mae_per_atom_hartree),
            _mev(f.force_mae_hartree_per_angstrom),
        )
    return table


@app.command("select")
def select_candidates(
    threshold: Annotated[
        float,
        typer.Option(help="Predicted energy std per atom (meV/atom) above which to label."),
    ],
    level: LevelOption = XTB_LEVEL,
    generator: Annotated[
        str | None, typer.Option(help="Only candidates made by this generator.")
    ] = None,
    max_count: Annotated[int, typer.Option("--max", min=0, help="Cap on new jobs.")] = 50,
    min_rmsd: Annotated[
        float, typer.Option(min=0.0, help="Minimum RMSD (Å) between two picks of one subset.")
    ] = 0.01,
    campaign: Annotated[
        int | None, typer.Option(min=1, max=MAX_ROW_ID, help="Campaign id of candidates.")
    ] = None,
) -> None:
    """Score unlabeled structures with their subset GP and queue the uncertain ones.

    Candidates whose subset has no GP count as maximally uncertain.
    """
    from interphase.gpr.score import score_candidates, unlabeled_candidates
    from interphase.labeling.uncertainty import queue_uncertainty_jobs

    try:
        open_database()
        if not threshold > 0:
            raise ValueError(f"--threshold must be a positive std in meV/atom; got {threshold}")
        with transaction(read_only=True) as session:
            candidates = unlabeled_candidates(
                session, level, generator=generator, campaign_id=campaign
            )
        if not candidates:
            raise ValueError(
                f"no unlabeled structures without a job at {level!r}"
                + (f" from generator {generator!r}" if generator else "")
            )
        with progress("candidates") as bar:
            bar.add_task(f"scoring {len(candidates)} candidates", total=None)
            with transaction(read_only=True) as session:
                scores = score_candidates(session, candidates, level)
        with transaction() as session:
            job_ids = queue_uncertainty_jobs(
                session,
                scores,
                level,
                threshold_per_atom_hartree=mev_to_hartree(threshold),
                max_count=max_count,
                min_rmsd_angstrom=min_rmsd,
                campaign_id=campaign,
            )
    except USER_ERRORS as error:
        fail(error)
    std = scores.std_per_atom_hartree
    judged = std[std < float("inf")]
    table = Table(
        "candidates", "without GP", "mean std meV/atom", "above threshold", "new jobs",
        title=f"uncertainty selection at {level} (threshold {threshold:g} meV/atom)",
    )  # fmt: skip
    table.add_row(
        str(len(std)),
        str(len(std) - len(judged)),
        f"{judged.mean() * HARTREE_TO_MEV:.3f}" if len(judged) else "—",
        str(int((std > mev_to_hartree(threshold)).sum())),
        str(len(job_ids)),
    )
    console.print(table)
    if job_ids:
        console.print(
            f"queued jobs {job_ids[0]}…{job_ids[-1]}; run them with `interphase jobs run`"
        )


@app.command("augment")
def augment(
    copies: Annotated[
        int, typer.Option(min=1, help="Displaced copies M per reference structure.")
    ] = 20,
    delta: Annotated[float, typer.Option(help="Gaussian displacement width δ (Å).")] = 0.034,
    std_filter: Annotated[
        float | None,
        typer.Option(help="Keep copies whose GP energy std is below this (meV/atom)."),
    ] = None,
    level: LevelOption = XTB_LEVEL,
    subset: SubsetOption = None,
    seed: Annotated[int, typer.Option(help="Seed of the displacements.")] = 0,
) -> None:
    """Label displaced copies of reference structures with their GP (synthetic labels)."""
    from interphase.gpr.augment_db import augment_subsets

    try:
        open_database()
        if std_filter is not None and not std_filter > 0:
            raise ValueError(f"--std-filter must be positive (meV/atom); got {std_filter}")
        with progress("subsets") as bar:
            task = bar.add_task(f"augmenting at {level}", total=None)
            with transaction() as session:
                results = augment_subsets(
                    session,
                    level,
                    copies=copies,
                    delta_angstrom=delta,
                    std_filter_hartree_per_atom=None
                    if std_filter is None
                    else mev_to_hartree(std_filter),
                    subset_keys=subset,
                    seed=seed,
                    progress=lambda key: bar.advance(task),
                )
    except USER_ERRORS as error:
        fail(error)
    table = Table(title=f"GPR-ANN augmentation at {level} (M={copies}, δ={delta:g} Å)")
    table.add_column("GP")
    table.add_column("subset", overflow="fold", min_width=9)
    for header in ("refs", "copies", "kept", "new synthetic labels", "mean std meV/atom"):
        table.add_column(header, overflow="fold")
    for r in results:
        table.add_row(
            str(r.gpr_model_id),
            r.subset_key,
            str(r.n_references),
            str(r.n_copies),
            str(r.n_kept),
            str(r.n_new_labels),
            f"{r.mean_std_per_atom_hartree * HARTREE_TO_MEV:.3f}",
        )
    console.print(table)
