"""The story's trend words: each test error (energy, forces) is judged on its own number."""

from __future__ import annotations

from typing import Any

import pytest

from interphase.campaign.report import campaign_story, error_trend, head_error_line
from interphase.db.models import Campaign, Iteration
from interphase.db.session import transaction


def _errors(energy: float | None, forces: float | None) -> dict[str, Any]:
    return {"energy_mae_mev_per_atom": energy, "force_mae_mev_per_angstrom": forces}


def _story(url: str, test_errors: list[dict[str, dict[str, Any]]]) -> list[str]:
    """The story of a hand-built campaign whose iterations had ``test_errors``."""
    with transaction(url) as session:
        campaign = Campaign(name="story", config={}, state="finished")
        session.add(campaign)
        session.flush()
        for index, errors in enumerate(test_errors):
            session.add(
                Iteration(
                    campaign_id=campaign.id,
                    index=index,
                    status="succeeded",
                    summary={"test_errors": errors},
                )
            )
    with transaction(url, read_only=True) as session:
        return campaign_story(session, "story")


def _error_lines(lines: list[str]) -> list[str]:
    return [line.strip() for line in lines if "test error" in line]


def test_rising_errors_are_called_rising_each_on_its_own_number(db_url: str) -> None:
    # The issue's numbers: HF energy 126.3 -> 126.6 and forces 163.6 -> 174.6 both rose.
    lines = _story(
        db_url,
        [
            {"HF": _errors(126.3, 163.6), "GFN2-xTB": _errors(40.0, 90.0)},
            {"HF": _errors(126.6, 174.6), "GFN2-xTB": _errors(35.5, 95.2)},
            {"HF": _errors(100.0, 150.0), "GFN2-xTB": _errors(35.5, None)},
        ],
    )
    second = _error_lines(lines)[3]  # GFN2-xTB: energy fell, forces rose
    assert "forces 95.2 meV/Å (rising)" in second and "(falling)" not in second.split(",")[1]
    assert _error_lines(lines) == [
        "test error HF: energy 126.3 meV/atom, forces 163.6 meV/Å",
        "test error GFN2-xTB: energy 40.0 meV/atom, forces 90.0 meV/Å",
        "test error HF: energy 126.6 meV/atom (rising), forces 174.6 meV/Å (rising)",
        "test error GFN2-xTB: energy 35.5 meV/atom (falling), forces 95.2 meV/Å (rising)",
        "test error HF: energy 100.0 meV/atom (falling), forces 150.0 meV/Å (falling)",
        "test error GFN2-xTB: energy 35.5 meV/atom (unchanged), forces – meV/Å",
    ]


def test_a_head_new_in_an_iteration_has_no_trend(db_url: str) -> None:
    lines = _story(db_url, [{"HF": _errors(10.0, 20.0)}, {"PBE": _errors(5.0, 6.0)}])
    assert _error_lines(lines)[-1] == "test error PBE: energy 5.0 meV/atom, forces 6.0 meV/Å"


@pytest.mark.parametrize(
    ("before", "now", "trend"),
    [
        (163.6, 174.6, " (rising)"),
        (174.6, 163.6, " (falling)"),
        (126.31, 126.34, " (unchanged)"),  # the same as printed (126.3): not called a change
        (126.34, 126.36, " (rising)"),  # 126.3 -> 126.4 as printed
        (None, 5.0, ""),
        (5.0, None, ""),
    ],
)
def test_error_trend(before: float | None, now: float | None, trend: str) -> None:
    assert error_trend(before, now) == trend


def test_head_error_line_judges_energy_and_forces_apart() -> None:
    line = head_error_line("HF", _errors(126.6, 150.2), previous=_errors(126.3, 163.6))
    assert line == "test error HF: energy 126.6 meV/atom (rising), forces 150.2 meV/Å (falling)"
