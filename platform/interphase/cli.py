"""The ``interphase`` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from interphase.db.session import DatabaseNotInitialisedError

app = typer.Typer(
    help="interphase: active-learning potentials for Li-metal/electrolyte interfaces.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Provenance database.", no_args_is_help=True)
data_app = typer.Typer(help="Dataset import and export.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(data_app, name="data")

console = Console()
err_console = Console(stderr=True)

#: Errors that are the user's to fix: printed as one line, exit status 2.
USER_ERRORS: tuple[type[Exception], ...] = (
    DatabaseNotInitialisedError,
    FileNotFoundError,
    ValueError,
    KeyError,
)


def _fail(error: Exception) -> None:
    message = error.args[0] if isinstance(error, KeyError) and error.args else error
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=2)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} entries"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the database schema or migrate it to the newest version."""
    from interphase.db.session import _redact, database_url, upgrade

    upgrade()
    console.print(f"database at {_redact(database_url())} is up to date")


@data_app.command("import")
def data_import(
    file: Annotated[Path, typer.Argument(help="Dataset file (or directory of .xsf files).")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="paper-json, extxyz or xsf (default: guess).")
    ] = None,
    level: Annotated[
        str | None, typer.Option(help="Level-of-theory key for single-level formats (XSF).")
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option(help="Import valid entries; report every skipped one and why.")
    ] = False,
) -> None:
    """Import a dataset in one transaction (all or nothing unless --skip-invalid)."""
    from interphase.io.importer import import_dataset

    try:
        with _progress() as progress:
            task = progress.add_task(f"importing {file.name}", total=None)
            report = import_dataset(
                file,
                fmt=fmt,
                level=level,
                skip_invalid=skip_invalid,
                progress=lambda n: progress.update(task, completed=n),
            )
    except USER_ERRORS as error:
        _fail(error)
    console.print(
        f"read {report.n_read:,} entries: {report.n_new_structures:,} new structures, "
        f"{report.n_duplicates:,} already present, {len(report.skipped):,} skipped"
    )
    if report.skipped:
        table = Table("entry", "reason", title="skipped entries")
        for key, reason in report.skipped:
            table.add_row(key, reason)
        console.print(table)


@data_app.command("export")
def data_export(
    out: Annotated[Path, typer.Argument(help="Output file (directory for xsf).")],
    fmt: Annotated[str, typer.Option("--format", help="paper-json, extxyz or xsf.")],
    level: Annotated[str | None, typer.Option(help="Level to write (XSF only).")] = None,
) -> None:
    """Export every stored structure and its labels."""
    from interphase.io.importer import export_dataset

    try:
        n = export_dataset(out, fmt, level=level)
    except USER_ERRORS as error:
        _fail(error)
    console.print(f"wrote {n:,} entries to {out}")


@app.command()
def status() -> None:
    """Counts by campaign, level of theory and job state."""
    from interphase.status import collect_status

    try:
        tables = collect_status()
    except USER_ERRORS as error:
        _fail(error)
    for title, header, rows in tables:
        table = Table(*header, title=title)
        for row in rows:
            table.add_row(*(str(v) for v in row))
        console.print(table)


@app.command()
def calc(
    structure_file: Annotated[Path, typer.Argument(help="Any structure file ASE reads (xyz, …).")],
    level: Annotated[str | None, typer.Option(help="Level of theory, e.g. GFN2-xTB.")] = None,
    engine: Annotated[str | None, typer.Option(help="Engine (instead of --level).")] = None,
    method: Annotated[str | None, typer.Option(help="Method (with --engine).")] = None,
    basis: Annotated[str | None, typer.Option(help="Basis set (with --engine).")] = None,
    charge: Annotated[int, typer.Option(help="Total charge (e).")] = 0,
    multiplicity: Annotated[
        int | None, typer.Option(help="Spin multiplicity (default: lowest for the electron count).")
    ] = None,
) -> None:
    """Single-point energy, gradient and charges; prints JSON (Hartree, Å)."""
    from interphase.labeling.calc import single_point

    try:
        label = single_point(
            structure_file,
            level=level,
            engine=engine,
            method=method,
            basis=basis,
            charge=charge,
            multiplicity=multiplicity,
        )
    except USER_ERRORS as error:
        _fail(error)
    result: dict[str, object] = {"level": label.level, "energy_hartree": label.total_energy_hartree}
    for name, value in (
        ("gradient_hartree_per_angstrom", label.gradient_hartree_per_angstrom),
        ("charges", label.charges_e),
        ("dipole_e_angstrom", label.dipole_e_angstrom),
    ):
        if value is not None:
            result[name] = np.asarray(value).tolist()
    result["provenance"] = label.provenance
    print(json.dumps(result, indent=2))


@app.command()
def demo(
    config: Annotated[
        Path | None, typer.Option(help="Campaign configuration (JSON), e.g. examples/demo.json.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed (when no --config is given).")] = 0,
) -> None:
    """Run one small real campaign end to end (walking skeleton) and print its report."""
    from flows.demo import run_demo

    try:
        run_demo(config_path=config, seed=seed, console=console)
    except USER_ERRORS as error:
        _fail(error)


if __name__ == "__main__":
    app()
