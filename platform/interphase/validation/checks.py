"""A property of a head against its reference: the tolerance and the check."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Tolerance:
    """How far a head may be from its reference: relative (fraction) or absolute (in units)."""

    relative: float | None = None
    absolute: float | None = None

    def allows(self, model: float, reference: float) -> bool:
        if not (math.isfinite(model) and math.isfinite(reference)):
            return False
        if self.relative is not None:
            return abs(model - reference) <= self.relative * abs(reference)
        return abs(model - reference) <= (self.absolute or 0.0)

    def describe(self, unit: str) -> str:
        if self.relative is not None:
            return f"{self.relative:.1%}"
        return f"{self.absolute:g} {unit}"


@dataclass(frozen=True)
class Check:
    """One property of one head against its reference."""

    name: str
    unit: str
    model: float
    reference: float
    difference: float  # model − reference, or the aggregate error for a spectrum
    tolerance: str
    passed: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """As JSON: a non-finite number (a failed comparison) becomes null."""
        return {
            key: None if isinstance(value, float) and not math.isfinite(value) else value
            for key, value in asdict(self).items()
        }
