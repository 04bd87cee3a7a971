"""``interphase generate``: every kind from the command line into a real database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import select
from typer.testing import CliRunner

from interphase.cli import app
from interphase.db.models import Structure
from interphase.db.session import transaction
from interphase.db.structures import lineage

runner = CliRunner()


@pytest.fixture(autouse=True)
def single_openmp_thread() -> Iterator[None]:
    """tblite single-threaded: its busy-waiting OpenMP threads crawl on a shared 2-core box."""
    import tblite.interface  # noqa: F401  (loads the OpenMP runtime to be limited)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def invoke(*args: str) -> Result:
    return runner.invoke(app, ["generate", *args])


def stored(url: str) -> list[Structure]:
    with transaction(url) as session:
        return list(session.scalars(select(Structure).order_by(Structure.id)))


def test_lattice_stores_bulk_clusters_and_slabs(local_env: str) -> None:
    result = invoke("lattice", "--packing", "bcc", "--n", "1", "--seed", "3")
    assert result.exit_code == 0, result.output
    rows = stored(local_env)
    assert sorted({r.generator for r in rows}) == [
        "lattice_bulk",
        "lattice_cluster",
        "lattice_slab",
    ]
    assert len(rows) == 1 + 1 + 3 and all(r.seed == 3 for r in rows)
    bulk = next(r for r in rows if r.generator == "lattice_bulk")
    assert bulk.pbc == "ppp" and bulk.generator_params["packing"] == "bcc"
    assert "lattice_slab" in result.output and "5 new in the database" in result.output
    again = invoke("lattice", "--packing", "bcc", "--n", "1", "--seed", "3")
    assert "0 new in the database" in again.output  # same seed, same structures


def test_molecules_from_config_file_counts_rejections(local_env: str, tmp_path: Path) -> None:
    config = tmp_path / "molecules.json"
    config.write_text(
        json.dumps(
            {"molecules": ["EC", "FEC"], "clusters": [["EC", "EC", "EC"]], "size_angstrom": 0.1}
        )
    )
    result = invoke("molecules", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "placement_failed: 2" in result.output
    assert sorted(r.formula for r in stored(local_env)) == ["C3H3FO3", "C3H4O3"]


def test_afir_snapshots_have_the_start_structure_as_parent(local_env: str) -> None:
    result = invoke("afir", "--paths", "1", "--gamma", "150", "--gamma", "250", "--steps", "10")
    assert result.exit_code == 0, result.output
    rows = stored(local_env)
    start = next(r for r in rows if r.generator == "molecular_cluster")
    snapshots = [r for r in rows if r.generator == "afir"]
    assert snapshots and all(r.parent_id == start.id for r in snapshots)
    params = snapshots[-1].generator_params
    assert len(params["pair"]) == 2 and params["gamma_kj_per_mol"] == 250.0 and params["step"] > 0


@pytest.mark.slow
def test_md_writes_interface_snapshot_cluster_lineage(local_env: str, tmp_path: Path) -> None:
    config = tmp_path / "md.json"
    config.write_text(json.dumps({"interface": {"species": ["EC"]}, "n_steps": 2}))
    result = invoke("md", "--config", str(config), "--every", "2", "--clusters", "1")
    assert result.exit_code == 0, result.output
    rows = stored(local_env)
    clusters = [r for r in rows if r.generator == "interface_cluster"]
    assert len(clusters) == 1
    with transaction(local_env) as session:
        chain = [s.generator for s in lineage(session, clusters[0].id)]
    assert chain == ["interface_cluster", "md_snapshot", "interface"]
    assert clusters[0].pbc == "nnn"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("lattice", "--noise", "-0.1"), "noise_angstrom"),
        (("lattice", "--packing", "hcp"), "packings"),
        (("molecules", "--molecule", "C1CC("), "neither a known species"),
    ],
)
def test_bad_parameters_are_one_line_errors(
    local_env: str, args: tuple[str, ...], message: str
) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert stored(local_env) == []


def test_unknown_config_key_is_refused(local_env: str, tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"lattice": {"noise": 0.1}}))
    result = invoke("all", "--config", str(config))
    assert result.exit_code == 2 and "noise" in result.output


def test_all_runs_a_mixed_set(local_env: str, tmp_path: Path) -> None:
    config = tmp_path / "mixed.json"
    mixed = {
        "lattice": {"packings": ["fcc"], "n_per_packing": 1, "kinds": ["bulk", "cluster"]},
        "molecules": {"molecules": ["PC"], "clusters": []},
        "afir": [{"n_paths": 1, "gammas_kj_per_mol": [200.0], "max_steps_per_gamma": 10}],
    }
    config.write_text(json.dumps(mixed))
    result = invoke("all", "--config", str(config))
    assert result.exit_code == 0, result.output
    generators = {r.generator for r in stored(local_env)}
    assert {"lattice_bulk", "lattice_cluster", "molecule", "afir"} <= generators
