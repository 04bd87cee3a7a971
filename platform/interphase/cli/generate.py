"""``interphase generate``: structure generators into the database, with lineage.

Every command reads an optional ``--config`` JSON file (validated by the
pydantic model of its kind), lets a few options override it, runs the
generator with a progress bar, stores what passed validation in one
transaction and prints what was made and what was rejected and why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel
from rich.table import Table

from interphase.cli.common import USER_ERRORS, console, fail, open_database, progress

app = typer.Typer(help="Generate structures (lattice noise, molecules, AFIR, MD).")

ConfigT = TypeVar("ConfigT", bound=BaseModel)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="JSON file with the generator settings.")
]
SeedOption = Annotated[int | None, typer.Option(help="Random seed (overrides the config).")]
CampaignOption = Annotated[int | None, typer.Option(help="Campaign id to attach structures to.")]
DryRunOption = Annotated[bool, typer.Option(help="Generate and validate, store nothing.")]


def load_config(model: type[ConfigT], path: Path | None, overrides: dict[str, Any]) -> ConfigT:
    """``model`` from a JSON file (or defaults) with non-None ``overrides`` applied."""
    data: dict[str, Any] = {}
    if path is not None:
        if not path.exists():
            raise FileNotFoundError(f"config file {path} does not exist")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"config file {path} is not valid JSON: {error}") from error
        if not isinstance(data, dict):
            raise ValueError(f"config file {path} must hold a JSON object")
    data.update({key: value for key, value in overrides.items() if value is not None})
    return model.model_validate(data)


def run(config: BaseModel, *, campaign_id: int | None, dry_run: bool) -> None:
    """Generate, store in one transaction (unless ``dry_run``) and print the summary."""
    from interphase.db.models import MembershipRole
    from interphase.db.session import transaction
    from interphase.structures.recipes import generate, work_units
    from interphase.structures.store import store_batch

    if not dry_run:
        open_database()
    with progress("units") as bar:
        task = bar.add_task(f"generating ({type(config).__name__})", total=work_units(config))  # type: ignore[arg-type]
        batch = generate(config, lambda n: bar.advance(task, n))  # type: ignore[arg-type]
    n_new = 0
    if not dry_run:
        with transaction() as session:
            n_new = store_batch(
                session, batch, campaign_id=campaign_id, role=MembershipRole.candidate
            ).n_new
    summary(batch, n_new, dry_run)


def summary(batch: Any, n_new: int, dry_run: bool) -> None:
    """Table of made structures by generator and rejected ones by generator and reason."""
    table = Table("generator", "made", "rejected", "reasons", title="generated structures")
    made = batch.made()
    rejected: dict[str, dict[str, int]] = {}
    for (generator, reason), count in batch.rejected.items():
        rejected.setdefault(generator, {})[reason] = count
    for generator in sorted(set(made) | set(rejected)):
        reasons = rejected.get(generator, {})
        table.add_row(
            generator,
            str(made.get(generator, 0)),
            str(sum(reasons.values())),
            ", ".join(f"{reason}: {n}" for reason, n in sorted(reasons.items())),
        )
    console.print(table)
    total = len(batch.items)
    stored = "nothing stored (dry run)" if dry_run else f"{n_new} new in the database"
    console.print(f"made {total}, rejected {sum(batch.rejected.values())}; {stored}")


def _run_kind(
    model: type[BaseModel], path: Path | None, overrides: dict[str, Any], **kw: Any
) -> None:
    try:
        config = load_config(model, path, overrides)
        run(config, **kw)
    except USER_ERRORS as error:
        fail(error)


@app.command()
def lattice(
    config: ConfigOption = None,
    kind: Annotated[
        list[str] | None, typer.Option(help="bulk, cluster or slab (repeatable).")
    ] = None,
    packing: Annotated[list[str] | None, typer.Option(help="bcc, fcc or sc (repeatable).")] = None,
    n: Annotated[int | None, typer.Option(help="Structures per kind and packing.")] = None,
    noise: Annotated[float | None, typer.Option(help="Gaussian noise width (Å).")] = None,
    anisotropy: Annotated[float | None, typer.Option(help="Per-axis stretch range.")] = None,
    cluster_atoms: Annotated[int | None, typer.Option(help="Atoms per cluster.")] = None,
    seed: SeedOption = None,
    campaign_id: CampaignOption = None,
    dry_run: DryRunOption = False,
) -> None:
    """Li lattice noise: periodic bulk cells, non-periodic clusters, slabs."""
    from interphase.structures.config import LatticeConfig

    overrides = {
        "kinds": kind,
        "packings": packing,
        "n_per_packing": n,
        "noise_angstrom": noise,
        "anisotropy": anisotropy,
        "cluster_n_atoms": cluster_atoms,
        "seed": seed,
    }
    _run_kind(LatticeConfig, config, overrides, campaign_id=campaign_id, dry_run=dry_run)


@app.command()
def molecules(
    config: ConfigOption = None,
    molecule: Annotated[
        list[str] | None, typer.Option(help="Species or SMILES (repeatable), e.g. EC.")
    ] = None,
    cluster: Annotated[
        list[str] | None, typer.Option(help="Comma-separated cluster species (repeatable).")
    ] = None,
    n: Annotated[int | None, typer.Option(help="Random clusters per composition.")] = None,
    seed: SeedOption = None,
    campaign_id: CampaignOption = None,
    dry_run: DryRunOption = False,
) -> None:
    """Electrolyte molecules from SMILES and random clusters with Li."""
    from interphase.structures.config import MoleculesConfig

    overrides = {
        "molecules": molecule,
        "clusters": None if cluster is None else [c.split(",") for c in cluster],
        "n_per_cluster": n,
        "seed": seed,
    }
    _run_kind(MoleculesConfig, config, overrides, campaign_id=campaign_id, dry_run=dry_run)


@app.command()
def afir(
    config: ConfigOption = None,
    mode: Annotated[str | None, typer.Option(help="pair or fragments.")] = None,
    direction: Annotated[str | None, typer.Option(help="push or pull.")] = None,
    species: Annotated[list[str] | None, typer.Option(help="Pair mode start species.")] = None,
    paths: Annotated[int | None, typer.Option(help="Number of AFIR paths.")] = None,
    gamma: Annotated[list[float] | None, typer.Option(help="γ schedule, kJ/mol (repeat).")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimizer steps per γ, at most.")] = None,
    seed: SeedOption = None,
    campaign_id: CampaignOption = None,
    dry_run: DryRunOption = False,
) -> None:
    """AFIR paths with GFN2-xTB: random pairs or two fragments, push or pull."""
    from interphase.structures.config import AFIRConfig

    overrides = {
        "mode": mode,
        "direction": direction,
        "start_species": species,
        "n_paths": paths,
        "gammas_kj_per_mol": gamma,
        "max_steps_per_gamma": steps,
        "seed": seed,
    }
    _run_kind(AFIRConfig, config, overrides, campaign_id=campaign_id, dry_run=dry_run)


@app.command()
def md(
    config: ConfigOption = None,
    steps: Annotated[int | None, typer.Option(help="MD steps.")] = None,
    every: Annotated[int | None, typer.Option(help="Snapshot interval (steps).")] = None,
    temperature: Annotated[float | None, typer.Option(help="Temperature (K).")] = None,
    clusters: Annotated[int | None, typer.Option(help="Clusters per snapshot.")] = None,
    seed: SeedOption = None,
    campaign_id: CampaignOption = None,
    dry_run: DryRunOption = False,
) -> None:
    """MD of an EC/Li interface with GFN2-xTB; snapshots and interface clusters."""
    from interphase.structures.config import MDConfig

    overrides = {
        "n_steps": steps,
        "snapshot_every": every,
        "temperature_k": temperature,
        "clusters_per_snapshot": clusters,
        "seed": seed,
    }
    _run_kind(MDConfig, config, overrides, campaign_id=campaign_id, dry_run=dry_run)


@app.command("all")
def all_(
    config: Annotated[Path, typer.Option("--config", help="JSON file of a mixed set.")],
    campaign_id: CampaignOption = None,
    dry_run: DryRunOption = False,
) -> None:
    """Several generators from one config (keys lattice, molecules, afir, md)."""
    from interphase.structures.config import MixedConfig

    _run_kind(MixedConfig, config, {}, campaign_id=campaign_id, dry_run=dry_run)
