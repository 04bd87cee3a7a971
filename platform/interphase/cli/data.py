"""``interphase data``: dataset import and export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from interphase.cli.common import (
    PATH_ERRORS,
    USER_ERRORS,
    console,
    fail,
    interrupt_on_sigterm,
    open_database,
    progress,
)

app = typer.Typer(help="Dataset import and export.", no_args_is_help=True)


@app.command("import")
def import_(
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
    campaign: Annotated[
        str | None,
        typer.Option(
            help="A recorded campaign (`campaign register`) that starts from these labels: "
            "they join its iteration 0 as training data."
        ),
    ] = None,
) -> None:
    """Import a dataset in one transaction (all or nothing unless --skip-invalid)."""
    from interphase.io.importer import import_dataset

    try:
        open_database()
        with progress() as bar:
            task = bar.add_task(f"importing {file.name}", total=None)
            report = import_dataset(
                file,
                fmt=fmt,
                level=level,
                skip_invalid=skip_invalid,
                progress=lambda n: bar.update(task, completed=n),
                campaign=campaign,
            )
    except PATH_ERRORS as error:
        fail(error)
    console.print(
        f"read {report.n_read:,} entries: {report.n_new_structures:,} new structures, "
        f"{report.n_duplicates:,} already present, {len(report.skipped):,} skipped"
    )
    if campaign is not None:
        console.print(
            f"{report.n_seeded:,} labels are seed data of campaign {campaign!r}", markup=False
        )
    if report.skipped:
        table = Table("entry", "reason", title="skipped entries")
        for key, reason in report.skipped:
            table.add_row(key, reason)
        console.print(table)


@app.command("export")
def export(
    out: Annotated[Path, typer.Argument(help="Output file (a new or empty directory for xsf).")],
    fmt: Annotated[str, typer.Option("--format", help="paper-json, extxyz or xsf.")],
    level: Annotated[str | None, typer.Option(help="Level to write (XSF only).")] = None,
) -> None:
    """Export every stored structure and its labels (written whole, or not at all)."""
    from interphase.io.export import export_dataset

    try:
        open_database(create=False)
        with interrupt_on_sigterm():
            report = export_dataset(out, fmt, level=level)
    except USER_ERRORS as error:
        fail(error)
    except OSError as error:  # disk full, file too large, permission denied
        fail(OSError(f"writing {out} failed ({error.strerror or error}); {out} was not changed"))
    console.print(f"wrote {report.n_written:,} entries to {out}")
    if report.renamed:
        examples = ", ".join(f"{old} → {new}" for old, new in report.renamed[:3])
        console.print(
            f"{len(report.renamed):,} keys were already used in this export and got a suffix"
            f" ({examples}{', …' if len(report.renamed) > 3 else ''})"
        )
    for reason, keys in _grouped(report.left_out).items():
        shown = ", ".join(keys[:5]) + (", …" if len(keys) > 5 else "")
        console.print(
            f"left out {len(keys):,} structures that {fmt} cannot hold: {reason} ({shown})"
        )


def _grouped(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Keys by reason, reasons in order of first appearance."""
    groups: dict[str, list[str]] = {}
    for key, reason in pairs:
        groups.setdefault(reason, []).append(key)
    return groups
