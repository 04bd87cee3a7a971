"""``interphase train`` and ``interphase model eval`` on a small database (SQLite, PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from interphase.cli import app
from interphase.db.models import TrainingRun
from interphase.db.session import transaction
from interphase.records import StructureRecord
from tests.training.labeled import MOLECULAR_LEVEL, SHARED_LEVEL, as_record, store_mixed_dataset

CONFIG = {
    "epochs": 2,
    "batch_size": 4,
    "validation_fraction": 0.2,
    "model": {"hidden_sizes": [8], "charge_hidden_sizes": [8]},
}


def test_train_resume_and_eval_from_the_cli(local_env: str, tmp_path: Path) -> None:
    store_mixed_dataset(local_env)
    config = tmp_path / "train.json"
    config.write_text(json.dumps(CONFIG))
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--config", str(config), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "epoch 1/2" in result.output and "epoch 2/2" in result.output
    assert "training run 1" in result.output and "parity data:" in result.output
    assert MOLECULAR_LEVEL in result.output and "charge RMSE (e): train" in result.output
    with transaction(local_env) as session:
        run = session.scalars(select(TrainingRun)).one()
        assert run.status == "succeeded" and run.epochs_completed == 2
        model_path = run.artifacts[0].path

    finished = runner.invoke(app, ["train", "--resume", "1"])
    assert finished.exit_code == 2 and "already finished" in finished.output

    evaluated = runner.invoke(app, ["model", "eval", "1", "--head", SHARED_LEVEL])
    assert evaluated.exit_code == 0, evaluated.output
    assert SHARED_LEVEL in evaluated.output and MOLECULAR_LEVEL not in evaluated.output

    # A dataset file with one structure the model cannot describe (carbon).
    from interphase.io.extxyz_write import write_extxyz
    from tests.training.labeled import mixed_dataset

    records = [as_record(ex) for ex in mixed_dataset()[:3]]
    records.append(
        StructureRecord(numbers=[6, 1], positions_angstrom=[[0, 0, 0], [1.1, 0, 0]])  # type: ignore[arg-type]
    )
    data = tmp_path / "data.extxyz"
    write_extxyz(records, data)
    on_file = runner.invoke(app, ["model", "eval", model_path, "--data", str(data)])
    assert on_file.exit_code == 0, on_file.output
    assert "data.extxyz" in on_file.output and "1 structures skipped" in on_file.output


def test_cli_errors_are_one_line(local_env: str, tmp_path: Path) -> None:
    runner = CliRunner()
    neither = runner.invoke(app, ["train"])
    assert neither.exit_code == 2 and "--config FILE" in neither.output
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"epochs": 0}))
    invalid = runner.invoke(app, ["train", "--config", str(bad)])
    assert invalid.exit_code == 2 and "epochs" in invalid.output
    good = tmp_path / "good.json"
    good.write_text(json.dumps(CONFIG))
    empty = runner.invoke(app, ["train", "--config", str(good)])
    assert empty.exit_code == 2 and "no labeled structures" in empty.output
    missing = runner.invoke(app, ["model", "eval", str(tmp_path / "none.pt")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
