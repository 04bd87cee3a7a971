"""How well a GP's predicted σ matches its actual errors.

The labels that selection has just bought were scored by a GP that had not
seen them: their reference values against the GP's predictions are an honest
test of its σ. For errors e_i = y_i − μ_i and predicted σ_i (same units):

- **Spearman ρ** between |e| and σ: does a larger σ mean a larger error?
  (ranking; 1 is perfect, 0 is no relation).
- **ZMS**, the mean of z² = (e/σ)²: 1 for a calibrated σ, 4 when σ is half
  the truth, 0.25 when it is twice.
- **Coverage** at 1σ and 2σ: the fractions with |e| ≤ σ and |e| ≤ 2σ
  (0.683 and 0.954 for Gaussian errors and a calibrated σ).
- **Miscalibration area**: the mean absolute gap between the expected fraction
  p and the observed fraction of |z| inside the central p-interval of a
  standard normal, over p in (0, 1) (0 is calibrated; the most is 0.5).
- **Scale factor** s = √ZMS: the σ·s that would make ZMS exactly 1 on these
  points. ``gp.calibrate`` multiplies later predictions by a factor fitted on
  earlier iterations' picks (:func:`fitted_scale`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

#: Expected coverage of the central 1σ and 2σ intervals of a normal distribution.
GAUSSIAN_COVERAGE_1SIGMA = math.erf(1 / math.sqrt(2))
GAUSSIAN_COVERAGE_2SIGMA = math.erf(2 / math.sqrt(2))
_AREA_POINTS = 99


class CalibrationError(ValueError):
    """The errors and σ cannot be compared (shapes, non-positive σ, too few points)."""


@dataclass(frozen=True)
class Calibration:
    """Calibration figures of one GP on ``n`` points (see the module docstring)."""

    n: int
    spearman: float | None
    zms: float
    coverage_1sigma: float
    coverage_2sigma: float
    miscalibration_area: float
    scale: float

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def calibration(
    errors: Sequence[float] | np.ndarray, sigma: Sequence[float] | np.ndarray
) -> Calibration:
    """Calibration figures for ``errors`` (prediction − reference, or the reverse) and ``sigma``.

    Both in the same units (e.g. meV/atom). Points with a non-finite error or σ
    (a candidate no GP could judge) are left out; σ must be positive.
    Spearman ρ needs two points and some spread in both; it is None otherwise.
    """
    e = np.asarray(errors, dtype=np.float64).ravel()
    s = np.asarray(sigma, dtype=np.float64).ravel()
    if e.shape != s.shape:
        raise CalibrationError(f"{e.size} errors but {s.size} sigma values: give one σ per error")
    keep = np.isfinite(e) & np.isfinite(s)
    e, s = e[keep], s[keep]
    if e.size == 0:
        raise CalibrationError("no point has both a finite error and a finite σ")
    if np.any(s <= 0):
        raise CalibrationError("σ must be positive: a GP predicted σ ≤ 0")
    z = np.abs(e) / s
    zms = float(np.mean(z**2))
    return Calibration(
        n=int(e.size),
        spearman=_spearman(np.abs(e), s),
        zms=zms,
        coverage_1sigma=float(np.mean(z <= 1.0)),
        coverage_2sigma=float(np.mean(z <= 2.0)),
        miscalibration_area=miscalibration_area(z),
        scale=math.sqrt(zms),
    )


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(stats.spearmanr(a, b).statistic)


def miscalibration_area(abs_z: np.ndarray) -> float:
    """Mean |observed − expected| coverage of central normal intervals, p = 0.01 … 0.99."""
    p = np.linspace(0.01, 0.99, _AREA_POINTS)
    bounds = stats.norm.ppf(0.5 + p / 2)  # |z| ≤ bound holds with probability p
    observed = np.mean(np.asarray(abs_z)[None, :] <= bounds[:, None], axis=1)
    return float(np.mean(np.abs(observed - p)))


def fitted_scale(batches: Sequence[tuple[np.ndarray, np.ndarray]]) -> float | None:
    """The σ scale factor fitted on earlier batches of (errors, σ): √ of their pooled ZMS.

    None when there is no usable point yet (the first iteration): σ stays as
    the GP predicts it.
    """
    z2: list[np.ndarray] = []
    for errors, sigma in batches:
        e = np.asarray(errors, dtype=np.float64).ravel()
        s = np.asarray(sigma, dtype=np.float64).ravel()
        keep = np.isfinite(e) & np.isfinite(s) & (s > 0)
        z2.append((e[keep] / s[keep]) ** 2)
    pooled = np.concatenate(z2) if z2 else np.empty(0)
    if pooled.size == 0:
        return None
    return math.sqrt(float(np.mean(pooled)))
