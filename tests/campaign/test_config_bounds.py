"""Values that would fail or run away later are refused by `campaign validate`, before anything.

Each case is tests/campaign/tiny.yaml with one key changed. ``campaign validate``
and ``campaign run`` both exit 2 with one line naming the key, and the database
stays empty: no campaign, no structure, no job. The refused values are the
issue's (a seed numpy and the database cannot hold, infinite noise, negative
temperatures and counts, an unknown basis, absurd counts) in the forms YAML
reads as numbers: PyYAML reads ``1e23`` without a dot as a string, which was
refused already; ``1.0e+23`` and ``100000000000000000000000`` are numbers.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select
from typer.testing import CliRunner

from interphase.campaign.config import CampaignConfig
from interphase.cli import app
from interphase.db.models import Campaign, LabelingJob, Structure
from interphase.db.session import transaction
from tests.campaign.conftest import TINY

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]

PYSCF_LEVEL = {"name": "GFN1-xTB", "engine": "pyscf", "method": "HF", "basis": "def2-SVP"}
PSI4_LEVEL = {"name": "GFN1-xTB", "engine": "psi4", "method": "HF", "basis": "def2-SVP"}


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    """Set the dotted ``key`` (list indices as numbers) of ``data`` to ``value``."""
    *parents, last = key.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def variant(tmp_path: Path, key: str, value_yaml: str) -> Path:
    """tiny.yaml with ``key`` set to the YAML text ``value_yaml`` (read as a file would be)."""
    data = yaml.safe_load(TINY.read_text())
    _set(data, key, yaml.safe_load(value_yaml))
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _stored(url: str) -> list[int]:
    with transaction(url, read_only=True) as session:
        return [
            int(session.scalar(select(func.count()).select_from(table)) or 0)
            for table in (Campaign, Structure, LabelingJob)
        ]


def assert_refused(path: Path, url: str, *expected: str) -> None:
    """``validate`` and ``run`` of ``path`` exit 2 with one line containing ``expected``."""
    for command in ("validate", "run"):  # validate first: before the fix, run would run
        result = runner.invoke(app, ["campaign", command, str(path)])
        message = result.output.strip()
        assert result.exit_code == 2, (command, message)
        assert "\n" not in message and "Traceback" not in message, message
        for text in expected:
            assert text in message, message
    assert _stored(url) == [0, 0, 0]


ISSUE_CASES = [
    ("seed", "1.0e+23"),
    ("seed", "100000000000000000000000"),
    ("seed", "2147483648"),
    ("seed", "-1"),
    ("generators.lattice.0.noise_angstrom", ".inf"),
    ("generators.lattice.0.noise_angstrom", ".nan"),
    ("exploration.temperatures_k", "[-300]"),
    ("exploration.temperatures_k", "[0]"),
    ("routing.1.initial_per_iteration", "[-3, 0]"),
    ("routing.1.initial_per_iteration", "[1.0e+9, 0]"),
    ("labeling.workers", "100000"),
    ("gp.workers", "100000"),
    ("executor.workers", "100000"),
    ("generators.lattice.0.n_per_packing", "1.0e+9"),
    ("training.epochs", "1.0e+11"),
]


@pytest.mark.parametrize(("key", "value"), ISSUE_CASES)
def test_the_issues_values_are_refused_before_anything_is_stored(
    local_env: str, tmp_path: Path, key: str, value: str
) -> None:
    assert_refused(variant(tmp_path, key, value), local_env, key)


MORE_CASES = [
    ("gp.memory_budget_gb", ".inf"),
    ("augmentation.delta_angstrom", ".nan"),
    ("selection.threshold_mev_per_atom", "{GFN1-xTB: .inf}"),
    ("selection.threshold_mev_per_atom", "{GFN1-xTB: -2.0}"),
    ("stopping.cpu_hours_budget", "{GFN1-xTB: -1.0}"),
    ("stopping.label_budget", "{GFN1-xTB: -5}"),
    ("stopping.max_iterations", "1.0e+9"),
    ("stopping.wall_clock_hours", "1.0e+300"),
    ("labeling.lease_s", "1.0e+300"),
    ("labeling.time_limit_s", "1.0e+300"),
    ("exploration.steps", "1.0e+12"),
    ("exploration.starts", "1.0e+9"),
    ("augmentation.copies", "1.0e+9"),
    ("generators.lattice.0.cluster_n_atoms", "1.0e+9"),
    ("generators.lattice.0.bulk_repeats", "[1000, 1000, 1000]"),
    ("generators.lattice.0.seed", "-1"),
    ("generators.molecules.0.n_per_cluster", "1.0e+9"),
    ("training.settings.batch_size", "1.0e+9"),
    ("training.settings.learning_rate", ".inf"),
    ("levels.0.reference_energies_hartree", "{Li: .inf}"),
]


@pytest.mark.parametrize(("key", "value"), MORE_CASES)
def test_every_float_is_finite_and_every_count_bounded(
    local_env: str, tmp_path: Path, key: str, value: str
) -> None:
    assert_refused(variant(tmp_path, key, value), local_env, key)


def test_the_bound_is_named_in_the_message_and_the_field_description(
    local_env: str, tmp_path: Path
) -> None:
    assert_refused(variant(tmp_path, "labeling.workers", "100000"), local_env, "256")
    description = CampaignConfig.model_json_schema()["$defs"]["LabelingConfig"]["properties"]
    assert "256" in description["workers"]["description"]


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ({**PYSCF_LEVEL, "basis": "def2-NOPE"}, "pyscf does not know the basis 'def2-NOPE'"),
        ({**PYSCF_LEVEL, "method": "wB97X-NOPE"}, "pyscf does not know the method 'wB97X-NOPE'"),
        (
            {**PYSCF_LEVEL, "settings": {"auxbasis": "def2-NOPE-jkfit"}},
            "pyscf does not know the auxbasis",
        ),
        ({**PYSCF_LEVEL, "basis": None}, "pyscf needs a basis set"),
    ],
    ids=["basis", "method", "auxbasis", "no-basis"],
)
def test_pyscf_levels_are_looked_up_in_pyscf(
    local_env: str, tmp_path: Path, level: dict[str, Any], expected: str
) -> None:
    pytest.importorskip("pyscf", reason="the pyscf extra is not installed")
    path = variant(tmp_path, "levels.0", yaml.safe_dump(level))
    assert_refused(path, local_env, "level 'GFN1-xTB'", expected)


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (
            {"name": "GFN1-xTB", "engine": "tblite", "method": "GFN3-xTB"},
            "tblite has no method 'GFN3-xTB'",
        ),
        (
            {"name": "GFN1-xTB", "engine": "tblite", "method": "GFN1-xTB", "basis": "def2-SVP"},
            "tblite takes no basis set",
        ),
    ],
    ids=["method", "basis"],
)
def test_tblite_levels_are_looked_up(
    local_env: str, tmp_path: Path, level: dict[str, Any], expected: str
) -> None:
    assert_refused(variant(tmp_path, "levels.0", yaml.safe_dump(level)), local_env, expected)


@pytest.mark.psi4
def test_an_unknown_psi4_basis_is_refused(local_env: str, tmp_path: Path) -> None:
    if shutil.which("psi4") is None:
        pytest.skip("no psi4 executable on PATH")
    good = variant(tmp_path, "levels.0", yaml.safe_dump(PSI4_LEVEL))
    result = runner.invoke(app, ["campaign", "validate", str(good)])
    assert result.exit_code == 0, result.output
    assert "psi4 method names are not checked" in " ".join(result.output.split())
    bad = variant(tmp_path, "levels.0", yaml.safe_dump({**PSI4_LEVEL, "basis": "def2-NOPE"}))
    assert_refused(bad, local_env, "psi4 has no basis 'def2-NOPE'")


def test_without_psi4_the_level_is_not_checked_and_validate_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERPHASE_PSI4", "no-psi4-is-called-this")
    path = variant(tmp_path, "levels.0", yaml.safe_dump({**PSI4_LEVEL, "basis": "def2-NOPE"}))
    result = runner.invoke(app, ["campaign", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "psi4 is not installed here: method and basis not checked" in " ".join(
        result.output.split()
    )


def test_a_stored_configuration_is_not_looked_up_again() -> None:
    # Stored campaigns are validated again on resume; their levels were checked at `run`,
    # and the machine resuming need not have the engine.
    data = yaml.safe_load(TINY.read_text())
    data["levels"] = [{**PYSCF_LEVEL, "basis": "def2-NOPE"}]
    assert CampaignConfig.model_validate(data).levels[0].basis == "def2-NOPE"


CAMPAIGN_FILES = sorted(
    path
    for folder in ("examples", "tests")
    for path in (ROOT / folder).rglob("*.y*ml")
    if "routing" in (yaml.safe_load(path.read_text()) or {})
)


@pytest.mark.parametrize("path", CAMPAIGN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_campaign_file_in_the_repository_still_validates(path: Path) -> None:
    result = runner.invoke(app, ["campaign", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output.splitlines()[0]
