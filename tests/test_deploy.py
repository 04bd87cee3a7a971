"""Deployment files: docker-compose.yml and the Kubernetes work pool's base job template."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "deploy" / "k8s" / "base-job-template.json"
TOKEN = "0123456789abcdef0123"


def _compose_command() -> list[str] | None:
    """``docker compose`` (the CLI plugin) or the standalone ``docker-compose``."""
    if shutil.which("docker") is not None:
        plugin = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, check=False, timeout=30
        )
        if plugin.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose") is not None:
        return ["docker-compose"]
    return None


COMPOSE = _compose_command()
needs_compose = pytest.mark.skipif(
    COMPOSE is None, reason="neither `docker compose` nor `docker-compose` is installed"
)


def compose_config(**env: str) -> subprocess.CompletedProcess[str]:
    assert COMPOSE is not None
    environment = {k: v for k, v in os.environ.items() if k != "INTERPHASE_DASHBOARD_TOKEN"}
    return subprocess.run(
        [*COMPOSE, "config"],
        cwd=ROOT,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@needs_compose
def test_docker_compose_config_validates_with_the_dashboard() -> None:
    import yaml

    run = compose_config(INTERPHASE_DASHBOARD_TOKEN=TOKEN)
    assert run.returncode == 0, run.stderr
    services = yaml.safe_load(run.stdout)["services"]
    assert set(services) == {"postgres", "prefect-server", "worker", "dashboard"}
    dashboard = services["dashboard"]
    command = dashboard["command"]
    command = command if isinstance(command, list) else command.split()
    assert command[:4] == ["interphase", "dashboard", "--host", "0.0.0.0"]
    assert dashboard["environment"]["INTERPHASE_DASHBOARD_TOKEN"] == TOKEN
    assert dashboard["environment"]["INTERPHASE_DATABASE_URL"].startswith("postgresql+psycopg://")


@needs_compose
def test_docker_compose_refuses_a_dashboard_without_a_token() -> None:
    run = compose_config()
    assert run.returncode != 0 and "set INTERPHASE_DASHBOARD_TOKEN" in run.stderr


def template() -> dict[str, Any]:
    return json.loads(TEMPLATE.read_text())


def test_the_kubernetes_template_declares_every_variable_it_uses() -> None:
    from prefect.server.schemas.actions import validate_base_job_template

    validate_base_job_template(template())  # raises on an undeclared {{ variable }}


def test_the_kubernetes_template_renders_interphase_pods() -> None:
    from prefect.utilities.templating import apply_values

    base = template()
    defaults = {
        name: spec["default"]
        for name, spec in base["variables"]["properties"].items()
        if "default" in spec
    }
    job = apply_values(base["job_configuration"], defaults)
    pod = job["job_manifest"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "interphase:0.1.0"
    assert container["envFrom"] == [{"secretRef": {"name": "interphase-database"}}]
    assert container["volumeMounts"][0]["mountPath"] == "/data"
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "interphase-data"
    assert job["namespace"] == "interphase"
    assert job["env"]["INTERPHASE_DATA_DIR"] == "/data"


@pytest.mark.slow
def test_a_kubernetes_work_pool_is_created_from_the_template(tmp_path: Path) -> None:
    from interphase_flows.runtime import configure_local_prefect

    configure_local_prefect(tmp_path)
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(), get_client(sync_client=True) as client:
        client.create_work_pool(
            WorkPoolCreate(name="interphase-k8s", type="kubernetes", base_job_template=template())
        )
        pool = client.read_work_pool("interphase-k8s")
    assert pool.type == "kubernetes"
    assert pool.base_job_template["variables"]["properties"]["database_secret"]["default"] == (
        "interphase-database"
    )
