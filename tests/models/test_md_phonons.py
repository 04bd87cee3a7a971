"""MD and phonons with a model through its calculator: library and ``interphase md/phonons``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule
from ase.io import read
from typer.testing import CliRunner

from interphase.cli import app
from interphase.db.session import transaction
from interphase.db.structures import store_structures
from interphase.dynamics import MDSettings, run_md
from interphase.models import phonons
from interphase.models.artifact import save_model
from interphase.models.calculator import InterphaseCalculator
from interphase.models.multihead import MultiHeadPotential
from interphase.records import StructureRecord

runner = CliRunner()


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model() -> MultiHeadPotential:
    torch.manual_seed(0)
    potential = MultiHeadPotential(
        [1, 3, 6, 8], ["PBE-D3", "hybrid"], hidden_sizes=(16, 16), charge_hidden_sizes=(8,)
    )
    potential.set_energy_reference(
        np.array([[-0.5, -7.4, -37.8, -75.0], [-0.49, -7.5, -37.9, -75.1]]), np.array([0.1, 0.15])
    )
    return potential.eval()


@pytest.fixture(scope="module")
def model_file(model: MultiHeadPotential, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(model, tmp_path_factory.mktemp("model") / "model.pt")


def ethanol_and_lithium() -> Atoms:
    atoms = molecule("CH3CH2OH")
    atoms += Atoms("Li", positions=[[2.2, 0.8, 0.3]])
    return atoms


def test_md_command_writes_a_trajectory_and_speed(model_file: Path, tmp_path: Path) -> None:
    structure, trajectory = tmp_path / "start.xyz", tmp_path / "md.extxyz"
    ethanol_and_lithium().write(structure)
    result = runner.invoke(
        app,
        [
            "md", str(structure), "--model", str(model_file), "--head", "hybrid",
            "--steps", "5", "--interval", "1", "--output", str(trajectory),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "ms/step" in result.output and "ns/day" in result.output
    frames: list[Atoms] = read(trajectory, ":")  # type: ignore[assignment]
    assert len(frames) == 6  # step 0 and five steps
    assert not np.allclose(frames[0].positions, frames[-1].positions)
    last = frames[-1].copy()
    last.calc = InterphaseCalculator(model_file, "hybrid")
    np.testing.assert_allclose(frames[-1].get_forces(), last.get_forces(), atol=1e-5)


def test_nve_conserves_total_energy(model: MultiHeadPotential) -> None:
    atoms = bulk("Li", "bcc", a=3.44, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=3)
    calculator = InterphaseCalculator(model, "PBE-D3")
    totals: list[float] = []
    potentials: list[float] = []

    def record(_: int, moving: Atoms) -> None:
        totals.append(moving.get_total_energy())
        potentials.append(moving.get_potential_energy())

    settings = MDSettings(steps=40, timestep_fs=0.5, temperature_k=300.0, thermostat="nve")
    run_md(atoms, calculator, settings, on_step=record)
    assert np.ptp(potentials) > 5e-3  # eV: energy really flows between kinetic and potential
    assert np.ptp(totals) < 0.01 * np.ptp(potentials)


def test_md_reads_a_structure_from_the_database(
    local_env: str, model_file: Path, tmp_path: Path
) -> None:
    atoms = ethanol_and_lithium()
    record = StructureRecord(numbers=atoms.numbers, positions_angstrom=atoms.positions)
    with transaction(local_env) as session:
        stored = store_structures(session, [record], generator="test")
    structure_id = stored.ids[0]
    result = runner.invoke(
        app,
        [
            "md", f"db:{structure_id}", "--model", str(model_file), "--head", "hybrid",
            "--steps", "2", "--output", str(tmp_path / "db.extxyz"),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(read(tmp_path / "db.extxyz", ":")) == 1  # step 0 (interval 10)


def test_md_command_reports_user_errors(model_file: Path, tmp_path: Path) -> None:
    structure = tmp_path / "start.xyz"
    ethanol_and_lithium().write(structure)
    base = ["md", str(structure), "--model", str(model_file), "--steps", "2"]
    langevin_at_zero = runner.invoke(app, [*base, "--head", "hybrid", "--temperature", "0"])
    assert langevin_at_zero.exit_code == 2
    assert "Langevin thermostat needs a temperature above 0 K" in langevin_at_zero.output
    unknown_head = runner.invoke(app, [*base, "--head", "CCSD"])
    assert unknown_head.exit_code == 2
    assert "'CCSD' is not one of this model's heads" in unknown_head.output
    missing = runner.invoke(app, ["md", "db:x", "--model", str(model_file), "--head", "hybrid"])
    assert missing.exit_code == 2 and "expected db:ID" in missing.output


def test_phonons_command_plots_bcc_lithium(model_file: Path, tmp_path: Path) -> None:
    plot = tmp_path / "band.png"
    result = runner.invoke(
        app,
        [
            "phonons", "--model", str(model_file), "--head", "PBE-D3",
            "--supercell", "2", "2", "2", "--output", str(plot),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = {line.split(":")[0].strip(): line for line in result.output.splitlines()}
    for point in ("Γ", "H", "P", "N"):
        values = lines[point].split(":")[1].replace("THz", "").split(",")
        assert len(values) == 3 and all(np.isfinite(float(v)) for v in values)


def test_bcc_band_structure_has_the_symmetry_of_the_lattice(model: MultiHeadPotential) -> None:
    calculator = InterphaseCalculator(model, "PBE-D3")
    bands = phonons.phonon_bands(phonons.bcc_lithium(), calculator, supercell=(2, 2, 2))
    assert bands.path == "GHPGN"
    assert bands.special_labels == ["Γ", "H", "P", "Γ", "N"]
    gamma, h, p = (bands.special_frequencies_thz[k] for k in "GHP")
    np.testing.assert_allclose(gamma, 0.0, atol=1e-3)  # three acoustic modes
    assert np.ptp(h) < 1e-6 * max(1.0, np.abs(h).max())  # triply degenerate at H
    assert np.ptp(p) < 1e-6 * max(1.0, np.abs(p).max())  # and at P
    assert np.abs(h).max() > 0.1  # not a trivial zero model
    assert np.isfinite(bands.frequencies_thz).all()


def test_relaxed_cell_has_no_stress(model: MultiHeadPotential) -> None:
    calculator = InterphaseCalculator(model, "PBE-D3")
    start = phonons.bcc_lithium(3.3)
    start.calc = calculator
    assert np.abs(start.get_stress()).max() > 1e-3  # eV/Å³
    relaxed = phonons.relax_cell(start, calculator)
    relaxed.calc = calculator
    assert np.abs(relaxed.get_stress()).max() < 2e-5
    assert relaxed.cell.cellpar()[0] != pytest.approx(3.3, abs=0.01)
    assert relaxed.cell.cellpar()[3:] == pytest.approx([90.0] * 3, abs=1e-3)


def test_phonon_settings_are_checked(model: MultiHeadPotential) -> None:
    calculator = InterphaseCalculator(model, "PBE-D3")
    with pytest.raises(phonons.PhononSettingsError, match="not special points of the BCC"):
        phonons.phonon_bands(phonons.bcc_lithium(), calculator, supercell=(1, 1, 1), path="GXL")
    with pytest.raises(phonons.PhononSettingsError, match="periodic in all three"):
        phonons.phonon_bands(ethanol_and_lithium(), calculator)


def test_missing_phonopy_names_the_extra(
    model: MultiHeadPotential, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "phonopy", None)  # import phonopy -> ImportError
    calculator = InterphaseCalculator(model, "PBE-D3")
    with pytest.raises(phonons.PhonopyMissingError, match=r"interphase\[phonons\]"):
        phonons.phonon_bands(phonons.bcc_lithium(), calculator)
