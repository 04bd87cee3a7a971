"""The 3D view's element colours and legend: every element its own colour, Li apart from O.

That the browser draws with these colours is in ``test_browser.py``.
"""

from __future__ import annotations

import json
import re
from itertools import combinations

import numpy as np
from fastapi.testclient import TestClient

from interphase.db.session import transaction
from interphase.db.structures import store_structures
from interphase.records import StructureRecord

#: A piece of electrolyte next to lithium: every element the campaigns meet.
SYMBOLS = ["Li", "Li", "Li", "O", "C", "H", "H", "F", "F", "P", "S", "N"]
#: Two colours closer than this (Euclidean, 0-255 per channel) look alike.
MIN_DISTANCE = 60.0


def store_mixture(url: str, symbols: list[str]) -> int:
    from ase.data import atomic_numbers

    positions = np.array([[2.0 * i, 0.3 * (i % 3), 0.0] for i in range(len(symbols))])
    record = StructureRecord(
        numbers=np.array([atomic_numbers[s] for s in symbols]),
        positions_angstrom=positions,
    )
    with transaction(url) as session:
        return store_structures(session, [record], generator="molecule").ids[0]


def rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def test_the_legend_gives_each_element_a_distinct_colour(
    client: TestClient, local_env: str
) -> None:
    structure_id = store_mixture(local_env, SYMBOLS)
    page = client.get(f"/structures/{structure_id}").text
    legend = dict(
        re.findall(
            r'<li data-element="(\w+)"><span class="swatch" style="background: (#\w{6})"', page
        )
    )
    assert list(legend) == ["H", "Li", "C", "N", "O", "F", "P", "S"]  # by atomic number
    assert '<li data-element="Li">' in page and '>Li <span class="muted small">3</span>' in page
    for (a, color_a), (b, color_b) in combinations(legend.items(), 2):
        distance = float(np.linalg.norm(np.subtract(rgb(color_a), rgb(color_b))))
        assert distance >= MIN_DISTANCE, (a, color_a, b, color_b)
    data = json.loads(page.split('id="structure-data">')[1].split("</script>")[0])
    assert data["colors"] == legend  # the view draws what the legend says
