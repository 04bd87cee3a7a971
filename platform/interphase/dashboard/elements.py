"""Element colours of the 3D view and its legend, from one table: Jmol's, as ASE ships it.

3Dmol's own default draws Li dark red, next to O's red; Jmol's colours tell the
elements of interphase structures apart (Li violet, O red, F green, P orange).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

#: The colour of a symbol Jmol's table does not know.
UNKNOWN_COLOR = "#808080"


def element_color(symbol: str) -> str:
    """``#rrggbb`` of ``symbol`` (Jmol's colour)."""
    from ase.data import atomic_numbers
    from ase.data.colors import jmol_colors

    number = atomic_numbers.get(symbol)
    if number is None or number >= len(jmol_colors):
        return UNKNOWN_COLOR
    red, green, blue = (round(float(c) * 255) for c in jmol_colors[number])
    return f"#{red:02x}{green:02x}{blue:02x}"


@dataclass(frozen=True)
class LegendEntry:
    """One element of a structure: its colour and how many atoms it has."""

    symbol: str
    color: str
    count: int


def element_legend(symbols: Sequence[str]) -> list[LegendEntry]:
    """The elements of ``symbols`` by atomic number, each with its colour and count."""
    from ase.data import atomic_numbers

    counts = Counter(symbols)
    ordered = sorted(counts, key=lambda s: (atomic_numbers.get(s, 1000), s))
    return [LegendEntry(s, element_color(s), counts[s]) for s in ordered]
