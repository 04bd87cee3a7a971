"""``interphase train`` and ``interphase model eval``: the multi-head potential."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from interphase.cli.arguments import impossible_ids
from interphase.cli.common import USER_ERRORS, console, err_console, fail, open_database

if TYPE_CHECKING:
    from interphase.training.metrics import SplitMetrics
    from interphase.training.settings import TrainingSettings
    from interphase.training.trainer import EpochReport

app = typer.Typer(help="Trained multi-head potentials.", no_args_is_help=True)

DeviceOption = Annotated[
    str | None, typer.Option(help="cuda or cpu (default: cuda when available).")
]


def _number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def epoch_line(report: EpochReport, epochs: int) -> str:
    """One line per epoch: losses, learning rate, and per-head validation (else train) errors."""
    shown = report.validation or report.train
    parts = [f"epoch {report.epoch}/{epochs}", f"loss {report.train.loss or 0:.3g}"]
    if report.validation is not None:
        parts.append(f"val {report.validation.loss or 0:.3g}")
    parts.append(f"lr {report.learning_rate:.2g}")
    for head, m in shown.heads.items():
        energy = m.energy_mae_mev_per_atom or m.synthetic_energy_mae_mev_per_atom
        parts.append(
            f"{head}: E {_number(energy)} meV/at F {_number(m.force_mae_mev_per_angstrom, 1)} meV/Å"
        )
    if shown.charge_rmse_e is not None:
        parts.append(f"q {shown.charge_rmse_e:.3f} e")
    return "  ".join(parts) + ("  best" if report.is_best else "")


def _pair(mae: float | None, rmse: float | None, count: int, digits: int) -> str:
    if mae is None:
        return "—"
    return f"{mae:.{digits}f} / {_number(rmse, digits)} ({count})"


def metrics_table(title: str, metrics: dict[str, SplitMetrics]) -> Table:
    """Per head and split: energy and force MAE / RMSE (meV) with counts; charges below."""
    table = Table(title=title)
    table.add_column("head", overflow="fold")
    table.add_column("split")
    table.add_column("energy MAE / RMSE meV/atom (n)")
    table.add_column("force MAE / RMSE meV/Å (atoms)")
    table.add_column("synthetic E MAE meV/atom (n)")
    for split, split_metrics in metrics.items():
        for head, m in split_metrics.heads.items():
            synthetic = m.synthetic_energy_mae_mev_per_atom
            table.add_row(
                head,
                split,
                _pair(m.energy_mae_mev_per_atom, m.energy_rmse_mev_per_atom, m.n_energies, 2),
                _pair(m.force_mae_mev_per_angstrom, m.force_rmse_mev_per_angstrom, m.n_forces, 1),
                "—" if synthetic is None else f"{synthetic:.2f} ({m.n_synthetic})",
            )
    charges = [
        f"{split} {m.charge_rmse_e:.4f} ({m.n_charges} atoms)"
        for split, m in metrics.items()
        if m.charge_rmse_e is not None
    ]
    if charges:
        table.caption = "charge RMSE (e): " + ", ".join(charges)
    return table


def train(
    config: Annotated[
        Path | None, typer.Option(help="Training settings (.json or .toml); see examples/.")
    ] = None,
    device: DeviceOption = None,
    resume: Annotated[
        int | None, typer.Option(help="Continue training run RUN from its checkpoint.")
    ] = None,
) -> None:
    """Train the multi-head potential on the database's labels (or resume a run)."""
    from interphase.cli.common import progress
    from interphase.settings import get_settings
    from interphase.training.from_db import train_from_database
    from interphase.training.settings import load_training_settings
    from interphase.training.trainer import TrainingCallbacks

    try:
        open_database()
        if (config is None) == (resume is None):
            raise ValueError(
                "give --config FILE for a new run or --resume RUN to continue one (not both)"
            )
        settings = load_training_settings(config) if config is not None else _run_settings(resume)
        if device is not None:
            settings = settings.model_copy(update={"device": device})
        epochs = settings.epochs
        with progress("batches") as bar:
            task = bar.add_task("training", total=None)

            def on_batch(done: int, total: int, epoch: int) -> None:
                bar.update(task, description=f"epoch {epoch}/{epochs}", completed=done, total=total)

            def on_epoch(report: EpochReport) -> None:
                bar.console.print(epoch_line(report, epochs), soft_wrap=True)

            run_id, result = train_from_database(
                None,
                settings,
                get_settings().artifacts_dir,
                resume_run_id=resume,
                callbacks=TrainingCallbacks(on_epoch=on_epoch, on_batch=on_batch),
            )
    except USER_ERRORS as error:
        fail(error)
    title = f"training run {run_id}: best epoch {result.best_epoch}"
    console.print(metrics_table(title, result.final))
    _print_run_files(run_id)


def _run_settings(run_id: int | None) -> TrainingSettings:
    """The recorded settings of a training run (for display; the run reloads them)."""
    from interphase.db.models import TrainingRun
    from interphase.db.session import transaction
    from interphase.training.settings import TrainingSettings

    with transaction(read_only=True) as session:
        run = session.get(TrainingRun, run_id)
        if run is None:
            raise ValueError(f"there is no training run {run_id} in the database")
        return TrainingSettings.model_validate(run.config)


def _print_run_files(run_id: int) -> None:
    from interphase.db.models import TrainingRun
    from interphase.db.session import transaction

    with transaction(read_only=True) as session:
        run = session.get_one(TrainingRun, run_id)
        model_path = run.artifacts[-1].path if run.artifacts else None
        parity = run.metrics.get("parity_path")
    console.print(f"model: {model_path}\nparity data: {parity}")


@app.command("eval")
def evaluate(
    model: Annotated[str, typer.Argument(help="Model file, or a training run id.")],
    head: Annotated[
        list[str] | None, typer.Option("--head", help="Head to report (repeatable); default all.")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="Dataset file to evaluate on; default: database labels.")
    ] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="Format of --data.")] = None,
    device: DeviceOption = None,
) -> None:
    """Per-head errors of a trained model on the database labels or a dataset file."""
    from interphase.models.artifact import load_model
    from interphase.training.evaluate import database_examples, evaluate_model, file_examples

    try:
        path = _model_path(model)
        potential = load_model(path, device)
        for name in head or []:
            potential.head_index(name)
        if data is None:
            from interphase.db.session import transaction

            open_database(create=False)
            with transaction(read_only=True) as session:
                examples = database_examples(session, potential)
        else:
            examples = file_examples(data, fmt)
        result = evaluate_model(potential, examples)
    except USER_ERRORS as error:
        fail(error)
    if head:
        result.metrics.heads = {h: result.metrics.heads[h] for h in head}
    source = "database" if data is None else str(data)
    console.print(metrics_table(f"{path.name} on {source}", {"all": result.metrics}))
    if result.n_skipped:
        err_console.print(f"{result.n_skipped} structures skipped: elements unknown to the model")


def _model_path(spec: str) -> Path:
    """A model file path, or the newest artifact of training run ``spec`` (an integer)."""
    if not (spec.isascii() and spec.isdigit()):
        path = Path(spec)
        if not path.exists():
            raise FileNotFoundError(f"model file {spec} does not exist (or give a run id)")
        return path
    from interphase.db.models import TrainingRun
    from interphase.db.session import database_url, redacted_url, transaction

    open_database(create=False)
    with transaction(read_only=True) as session:
        beyond = len(spec) > 19 or impossible_ids([int(spec)])  # no row has such an id
        run = None if beyond else session.get(TrainingRun, int(spec))
        if run is None:
            raise ValueError(
                f"there is no training run {spec} in the database {redacted_url(database_url())}"
                " (give a training run id, or a model file)"
            )
        if not run.artifacts:
            raise ValueError(
                f"training run {spec} is {run.status} and has no model artifact (a run gets one"
                f" when it succeeds; `interphase train --resume {spec}` continues it)"
            )
        return Path(run.artifacts[-1].path)
