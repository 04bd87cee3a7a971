"""``interphase validate`` on a head trained on EMT copper, against the EMT level it learned.

The reference (ASE's EMT through the ``analytic`` labeling engine) is computed
once and stored; a second validation of the same head takes it from the
database and computes nothing at the reference level. Bad requests give one
line, exit status 2, and leave the database as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.io import write
from sqlalchemy import func, select

from interphase.db.levels import get_or_create_level
from interphase.db.models import ReferenceProperty, ValidationRun
from interphase.db.session import transaction
from interphase.labeling.engines.analytic import AnalyticEngine
from interphase.labeling.engines.contract import Calculation
from interphase.records import StructureRecord
from interphase.training.dataset import TrainingExample
from interphase.training.settings import TrainingSettings
from interphase.training.trainer import save_model, train_multihead
from tests.cli.conftest import invoke, one_line_error, row_counts

LEVEL = "EMT"
CRYSTAL = ["--crystal", "Cu:fcc:3.6", "--supercell", "2", "2", "2"]


def _copper_examples(n: int = 24, seed: int = 0) -> list[TrainingExample]:
    """Strained and rattled fcc Cu cells (4 and 8 atoms) labeled with EMT."""
    rng = np.random.default_rng(seed)
    engine, calculation = AnalyticEngine(), Calculation("EMT")
    examples = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=rng.uniform(3.45, 3.75), cubic=True)
        if k % 3 == 0:
            atoms = atoms.repeat((2, 1, 1))
        strain = np.eye(3) + rng.normal(scale=0.015, size=(3, 3))
        atoms.set_cell(np.asarray(atoms.cell) @ strain, scale_atoms=True)
        atoms.positions += rng.normal(scale=0.04, size=atoms.positions.shape)
        record = StructureRecord(
            numbers=atoms.numbers,
            positions_angstrom=atoms.positions,
            cell_angstrom=np.asarray(atoms.cell),
            pbc=(True, True, True),
        )
        label = engine.compute(record, calculation)
        assert label.total_energy_hartree is not None
        assert label.gradient_hartree_per_angstrom is not None
        examples.append(
            TrainingExample(
                numbers=record.numbers,
                positions_angstrom=record.positions_angstrom,
                cell_angstrom=record.cell_angstrom,
                pbc=record.pbc,
                energies_hartree={LEVEL: label.total_energy_hartree},
                gradients_hartree_per_angstrom={LEVEL: label.gradient_hartree_per_angstrom},
            )
        )
    return examples


@pytest.fixture(scope="module")
def copper_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings = TrainingSettings.model_validate(
        {
            "epochs": 40,
            "batch_size": 8,
            "learning_rate": 1e-2,
            "validation_fraction": 0.0,
            # Cutoffs short of the defaults: copper's third shell is at 4.4 Å, and fewer
            # neighbours keep the training to a minute.
            "model": {
                "hidden_sizes": [16],
                "charge_hidden_sizes": None,
                "coulomb": False,
                "radial_cutoff_angstrom": 4.2,
                "angular_cutoff_angstrom": 3.0,
            },
        }
    )
    result = train_multihead(_copper_examples(), settings=settings)
    return save_model(result, tmp_path_factory.mktemp("model") / "copper.pt")


@pytest.fixture
def emt_database(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("INTERPHASE_DATABASE_URL", db_url)
    monkeypatch.setenv("INTERPHASE_DATA_DIR", str(tmp_path / "data"))
    with transaction(db_url) as session:
        level = get_or_create_level(session, LEVEL)
        level.engine, level.method, level.periodic = "analytic", "EMT", True
    return db_url


@pytest.mark.slow
def test_validate_twice_computes_the_reference_once(
    copper_model: Path, emt_database: str, tmp_path: Path
) -> None:
    first = invoke("validate", str(copper_model), *CRYSTAL, "--output", str(tmp_path / "one"))
    assert first.exit_code in (0, 1), first.output  # 1: a check failed, which the table shows
    assert "computing the metal suite" in first.output
    assert "a0_angstrom" in first.output and "phonon_X_thz" in first.output
    report = json.loads((tmp_path / "one" / "validation.json").read_text())
    (outcome,) = report
    assert outcome["head"] == LEVEL and outcome["level"] == LEVEL
    assert not outcome["reference_cached"]
    assert outcome["reference_values"]["a0_angstrom"] == pytest.approx(3.59, abs=0.01)
    # A head trained on EMT data spanning a = 3.45-3.75 Å finds EMT's lattice constant.
    assert outcome["model_values"]["a0_angstrom"] == pytest.approx(3.59, rel=0.02)
    assert sorted(p.name for p in (tmp_path / "one").glob("*.png")) == [
        "metal-EMT-eos.png",
        "metal-EMT-phonons.png",
    ]

    second = invoke("validate", str(copper_model), *CRYSTAL, "--output", str(tmp_path / "two"))
    assert second.exit_code == first.exit_code, second.output
    assert "from the database" in second.output
    (again,) = json.loads((tmp_path / "two" / "validation.json").read_text())
    assert again["reference_cached"]
    assert again["reference_values"] == outcome["reference_values"]
    with transaction(emt_database, read_only=True) as session:
        assert session.scalar(select(func.count()).select_from(ReferenceProperty)) == 1
        runs = session.scalars(select(ValidationRun)).all()
    assert len(runs) == 2
    assert all(run.head == LEVEL and run.suite == "metal" for run in runs)
    assert [c["name"] for c in runs[0].checks] == [c["name"] for c in outcome["checks"]]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--suite", "phonons"], "unknown validation suite 'phonons'"),
        (["--head", "PBE"], "has no head 'PBE'"),
        (["--suite", "metal"], "needs Li, which model copper.pt has not learned"),
        (["--against", "GFN9"], "no level 'GFN9'"),
        (["--suite", "electrolyte", *CRYSTAL], "needs C, H, Li, O"),
        (["--crystal", "Cu:fcc"], "expected SYMBOL:LATTICE:A"),
        (["--crystal", "Cu:hcp:2.5"], "bcc or fcc"),
        (["--suite", "interface"], "needs C, H, Li, O"),  # the default Li/EC interface
        (["--suite", "interface", "--structure", "none.xyz"], "none.xyz does not exist"),
        (["--suite", "interface", "--md-ps", "-1"], "nvt_ps and nve_ps must be above 0"),
    ],
)
def test_bad_requests_are_one_line_and_change_nothing(
    copper_model: Path, emt_database: str, tmp_path: Path, arguments: list[str], message: str
) -> None:
    before = row_counts(emt_database)
    result = invoke("validate", str(copper_model), *arguments, "--output", str(tmp_path))
    assert message in one_line_error(result)
    assert row_counts(emt_database) == before


def test_a_missing_model_file_is_one_line(emt_database: str, tmp_path: Path) -> None:
    result = invoke("validate", str(tmp_path / "none.pt"), "--output", str(tmp_path))
    assert "does not exist" in one_line_error(result)


@pytest.mark.slow
def test_interface_suite_runs_md_and_judges_forces_on_its_frames(
    copper_model: Path, emt_database: str, tmp_path: Path
) -> None:
    """NVT then NVE with the head; EMT forces on the sampled frames, cached by their hash."""
    structure = tmp_path / "copper.extxyz"
    write(structure, bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2)))
    arguments = [
        "validate", str(copper_model), "--suite", "interface", "--structure", str(structure),
        "--md-ps", "0.05", "--nve-ps", "0.02",
    ]  # fmt: skip
    first = invoke(*arguments, "--output", str(tmp_path / "one"))
    assert first.exit_code in (0, 1), first.output
    (outcome,) = json.loads((tmp_path / "one" / "validation.json").read_text())
    names = [check["name"] for check in outcome["checks"]]
    assert names == [
        "nvt_ps_without_guard_stop",
        "nve_drift_mev_per_atom_ps",
        "force_outlier_fraction",
    ]
    model = outcome["model_values"]
    assert model["nvt_ps_target"] == pytest.approx(0.05)
    assert model["n_atoms"] == 32
    frames = model["frames"]["positions_angstrom"]
    assert 1 <= len(frames) <= 20
    forces = outcome["reference_values"]["forces_ev_per_angstrom"]
    assert np.asarray(forces).shape == (len(frames), 32, 3)
    # The head learned EMT copper: its forces on its own 300 K frames are close to EMT's.
    assert "force MAE" in outcome["checks"][2]["note"]
    assert not outcome["reference_cached"]
    assert sorted(p.name for p in (tmp_path / "one").glob("*.png")) == ["interface-EMT-forces.png"]

    second = invoke(*arguments, "--output", str(tmp_path / "two"))
    (again,) = json.loads((tmp_path / "two" / "validation.json").read_text())
    # The same model file and settings: the reference forces are taken from the database.
    assert again["reference_cached"], second.output
    with transaction(emt_database, read_only=True) as session:
        stored = session.scalars(select(ReferenceProperty)).all()
    assert [row.suite for row in stored] == ["interface"]
