"""Bundled assets: pinned and checksummed, served locally, nothing from the network."""

from __future__ import annotations

import re

import numpy as np
from fastapi.testclient import TestClient

from interphase.dashboard import vendor
from interphase.dashboard.app import plotly_js_path
from interphase.dashboard.queries.models import id_ranges


def test_vendored_files_match_their_pins_and_the_versions_note() -> None:
    assert vendor.check() == []
    assert (vendor.VENDOR_DIR / "VERSIONS").read_text() == vendor.versions_note()
    for package in vendor.PACKAGES:
        assert any("LICENSE" in f.target for f in package.files), package.name


def test_a_changed_file_is_reported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    for package in vendor.PACKAGES:
        for file in package.files:
            (tmp_path / file.target).write_bytes((vendor.VENDOR_DIR / file.target).read_bytes())
    (tmp_path / "htmx.min.js").write_text("tampered")
    (tmp_path / "3Dmol.LICENSE").unlink()
    problems = vendor.check(tmp_path)
    assert len(problems) == 2
    assert "htmx.min.js (htmx.org 2.0.11) has sha256" in problems[0]
    assert "3Dmol.LICENSE (3dmol) is missing" in problems[1]


def test_pages_load_scripts_and_styles_from_the_dashboard_only(client: TestClient) -> None:
    for path in ("/", "/jobs", "/structures", "/models"):
        page = client.get(path).text
        sources = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert sources and all(s.startswith("/") or s.startswith("?") for s in sources), sources
    for asset in (
        "/static/vendor/htmx.min.js",
        "/static/vendor/3Dmol-min.js",
        "/static/dashboard.js",
        "/static/dashboard.css",
    ):
        assert client.get(asset).status_code == 200, asset
    plotly = client.get("/vendor/plotly.min.js")
    assert plotly.status_code == 200 and plotly.content == plotly_js_path().read_bytes()
    assert plotly.headers["content-type"].startswith("text/javascript")


def test_id_ranges() -> None:
    assert id_ranges(np.array([], dtype=np.int64)) == []
    assert id_ranges(np.array([7, 1, 2, 3, 9, 8, 3])) == [(1, 3), (7, 9)]
    assert id_ranges(np.arange(5, 40005)) == [(5, 40004)]
