"""``interphase validate``: a model head's properties against its own reference level."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from interphase.cli.common import USER_ERRORS, console, err_console, fail, open_database

SuiteOption = Annotated[
    list[str] | None,
    typer.Option(
        "--suite",
        help="metal (periodic levels: Li bcc unless --crystal), electrolyte (molecular "
        "levels) or interface (periodic levels: MD of --structure with the head, forces "
        "against the reference on its frames); repeat for several. Default: metal or "
        "electrolyte, the one that fits the reference level.",
    ),
]


def _crystal(text: str | None) -> dict[str, object]:
    """``SYMBOL:LATTICE:A`` (e.g. ``Cu:fcc:3.6``) as metal suite settings."""
    if text is None:
        return {}
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError(f"--crystal {text!r}: expected SYMBOL:LATTICE:A, e.g. Li:bcc:3.44")
    try:
        a = float(parts[2])
    except ValueError:
        raise ValueError(
            f"--crystal {text!r}: the lattice constant {parts[2]!r} is not a number"
        ) from None
    return {"symbol": parts[0], "lattice": parts[1], "a_guess_angstrom": a}


def _model_path(model: str) -> Path:
    """A model file, or a training run id whose artifact is taken from the database."""
    if not model.isdecimal() or not model.isascii():
        return Path(model)
    from sqlalchemy import select

    from interphase.db.models import ModelArtifact
    from interphase.db.session import transaction

    open_database(create=False)
    with transaction(read_only=True) as session:
        path = (
            session.scalar(
                select(ModelArtifact.path)
                .where(ModelArtifact.training_run_id == int(model))
                .order_by(ModelArtifact.id.desc())
                .limit(1)
            )
            if int(model) < 2**31
            else None
        )
    if path is None:
        raise KeyError(f"training run {model} has no model artifact (or give the model file)")
    return Path(path)


def validate(
    model: Annotated[str, typer.Argument(help="Model file, or a training run id.")],
    head: Annotated[
        list[str] | None, typer.Option("--head", help="Head(s) to check; default every head.")
    ] = None,
    suite: SuiteOption = None,
    against: Annotated[
        str | None,
        typer.Option(help="Reference level (default: the level each head was trained on)."),
    ] = None,
    crystal: Annotated[
        str | None,
        typer.Option(help="Metal suite crystal SYMBOL:LATTICE:A_GUESS (default Li:bcc:3.44)."),
    ] = None,
    supercell: Annotated[
        tuple[int, int, int] | None,
        typer.Option(help="Phonon supercell of the primitive cell (default 3 3 3)."),
    ] = None,
    structure: Annotated[
        Path | None,
        typer.Option(
            help="Interface suite start structure (a file ASE reads; default: 2 EC on Li(100))."
        ),
    ] = None,
    md_ps: Annotated[
        float | None, typer.Option(help="Interface suite NVT length in ps (default 10).")
    ] = None,
    nve_ps: Annotated[
        float | None, typer.Option(help="Interface suite NVE length in ps (default 2).")
    ] = None,
    output: Annotated[Path, typer.Option(help="Directory for the JSON file and the plots.")] = Path(
        "validation"
    ),
) -> None:
    """Check each head's properties against its reference level; references are cached.

    Prints one row per property (head, reference, difference, tolerance, pass) and
    writes validation.json and the plots (phonon bands, E(V), frequency parity)
    under --output. Exit status 1 when a check fails.
    """
    from interphase.models.artifact import load_model
    from interphase.validation.plots import write_plots
    from interphase.validation.run import validate_head
    from interphase.validation.suites import SuiteError

    try:
        path = _model_path(model)
        open_database(create=False)
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} does not exist")
        model_heads = list(load_model(path, "cpu").heads)
        heads = head or model_heads
        for name in heads:
            if name not in model_heads:
                raise SuiteError(
                    f"model {path.name} has no head {name!r}; its heads: {', '.join(model_heads)}"
                )
        settings: dict[str, dict[str, object]] = {"metal": _crystal(crystal), "interface": {}}
        if supercell is not None:
            settings["metal"]["phonon_supercell"] = list(supercell)
        if structure is not None:
            settings["interface"]["structure"] = str(structure)
        if md_ps is not None:
            settings["interface"]["nvt_ps"] = md_ps
        if nve_ps is not None:
            settings["interface"]["nve_ps"] = nve_ps
        outcomes = []
        for one_head in heads:
            for one_suite in suite or [_default_suite(one_head, against)]:
                outcome = validate_head(
                    path,
                    one_head,
                    one_suite,
                    against=against,
                    settings=settings.get(one_suite, {}),
                    progress=lambda message: err_console.print(escape(message), style="dim"),
                )
                outcomes.append(outcome)
                _print(outcome)
        output.mkdir(parents=True, exist_ok=True)
        report = output / "validation.json"
        report.write_text(json.dumps([o.to_dict() for o in outcomes], indent=1))
        plots = [p for o in outcomes for p in write_plots(o, output)]
    except (SuiteError, *USER_ERRORS, OSError) as error:  # type: ignore[misc]
        fail(error)
    console.print(f"results → {escape(str(report))}; plots: {len(plots)} in {escape(str(output))}")
    if not all(o.passed for o in outcomes):
        raise typer.Exit(code=1)


def _default_suite(head: str, against: str | None) -> str:
    """``metal`` for a periodic reference level, ``electrolyte`` for a molecular one."""
    from sqlalchemy import select

    from interphase.db.models import LevelOfTheory
    from interphase.db.session import transaction

    name = against or head
    with transaction(read_only=True) as session:
        periodic = session.scalar(select(LevelOfTheory.periodic).where(LevelOfTheory.name == name))
    if periodic is None:
        raise KeyError(
            f"no level {name!r} in the database: name the reference with --against LEVEL"
        )
    return "metal" if periodic else "electrolyte"


def _print(outcome: object) -> None:
    from interphase.validation.run import ValidationOutcome

    assert isinstance(outcome, ValidationOutcome)
    source = "cached" if outcome.reference_cached else "computed"
    table = Table(
        title=escape(
            f"{outcome.suite}: head {outcome.head} against {outcome.level} "
            f"(reference {source}, {outcome.reference_seconds:.0f} s; "
            f"head {outcome.model_seconds:.0f} s)"
        )
    )
    for column in ("property", "head", "reference", "difference", "tolerance", "pass", "note"):
        table.add_column(column, overflow="fold")
    for check in outcome.checks:
        table.add_row(
            escape(f"{check.name} ({check.unit})" if check.unit else check.name),
            f"{check.model:.4g}",
            f"{check.reference:.4g}",
            f"{check.difference:+.3g}",
            escape(check.tolerance),
            "pass" if check.passed else "FAIL",
            escape(check.note),
        )
    console.print(table)
