"""The campaign file: validated before anything runs, one line naming what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from interphase.campaign.config import CampaignConfigError, load_campaign_config
from tests.campaign.conftest import TINY, CampaignEnv

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("name", ["demo.yaml", "li_ec_campaign.yaml"])
def test_examples_are_valid(name: str) -> None:
    config = load_campaign_config(EXAMPLES / name)
    assert config.routing and config.generators


MINIMAL_TOML = """
name = "small"
seed = 3
[[routing]]
level = "GFN2-xTB"
structures = "molecular"
mode = "all"
[[generators.molecules]]
molecules = ["EC"]
[stopping]
max_iterations = 1
"""
MINIMAL_YAML = """
name: small
seed: 3
routing: [{level: GFN2-xTB, structures: molecular, mode: all}]
generators: {molecules: [{molecules: [EC]}]}
stopping: {max_iterations: 1}
"""


def test_toml_is_read_like_yaml(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(MINIMAL_TOML)
    (tmp_path / "c.yaml").write_text(MINIMAL_YAML)
    assert load_campaign_config(tmp_path / "c.toml") == load_campaign_config(tmp_path / "c.yaml")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gp": {"trainig_iterations": 3}}, "gp.trainig_iterations: unknown key"),
        ({"routing": [{"level": "B3LYP", "structures": "molecular"}]}, "unknown level 'B3LYP'"),
        ({"routing": [{"level": "GFN2-xTB", "structures": "periodic"}]}, "cannot label periodic"),
        ({"selection": {"max_picks_per_level": -1}}, "selection.max_picks_per_level"),
        ({"generators": {}}, "name at least one generator"),
        ({"training": {"settings": {"epochz": 3}}}, "epochz"),
    ],
)
def test_bad_settings_get_one_line(tmp_path: Path, change: dict, message: str) -> None:
    data = yaml.safe_load(TINY.read_text())
    data.update(change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CampaignConfigError, match=message.replace("(", r"\(")) as caught:
        load_campaign_config(path)
    assert "\n" not in str(caught.value)


def test_cli_refuses_bad_files_with_exit_2_and_leaves_the_database_alone(
    campaign_env: CampaignEnv, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nrouting: [\n")
    for command in (["campaign", "validate", str(bad)], ["campaign", "run", str(bad)]):
        result = campaign_env.cli(*command)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr and "not valid YAML" in result.stderr
    missing = campaign_env.cli("campaign", "run", str(tmp_path / "none.yaml"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    listed = campaign_env.cli("campaign", "list")
    assert listed.returncode == 0 and "x" not in listed.stdout.split("\n", 3)[-1]
    valid = campaign_env.cli("campaign", "validate", str(TINY))
    assert valid.returncode == 0 and "GFN1-xTB" in valid.stdout
    unknown = campaign_env.cli("campaign", "show", "nope")
    assert unknown.returncode == 2 and "no campaign named 'nope'" in unknown.stderr
