"""A training run's curves (loss, energy and force MAE per epoch) and what their caption says.

The caption describes only the lines drawn. A validation split of fewer than
:data:`MIN_VALIDATION_STRUCTURES` structures is not drawn as a curve: the page
says how small it is instead. With ``n`` structures the mean of a squared
error has a relative standard error of about ``sqrt(2 / n)`` (141 % for one
structure, 63 % for five); with one structure a value below a tenth of the
true mean turns up one time in four, so a validation loss 10–100× below the
training loss says nothing about the model. From five structures on, the
curve's trend over epochs starts to mean something.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from interphase.dashboard.charts import COLOURS, Series, line_figure
from interphase.dashboard.queries.models import Curves, HeadData

#: Fewer validation structures than this: the split is named too small to judge.
MIN_VALIDATION_STRUCTURES = 5

TRAIN, VALIDATION = "train", "validation"

#: The loss's definition, as the page states it (see interphase.training.metrics).
LOSS_DEFINITION = (
    "loss = Σ over terms (energy, force, synthetic energy per head; charges) of weight × "
    "mean squared scaled error over all of the split's labels; the same for both splits, "
    "training taken while the epoch trains, validation after it"
)
#: Runs recorded before that definition (no structure count on their loss rows).
OLD_LOSS_DEFINITION = (
    "recorded before the loss was defined per label: its losses were averaged per batch, "
    "so training and validation losses are not comparable"
)


@dataclass(frozen=True)
class CurveCaption:
    """What the charts show, in words: which lines, small or missing splits, the loss."""

    lines: str
    notes: list[str] = field(default_factory=list)
    loss_definition: str = LOSS_DEFINITION
    #: Validation splits smaller than this are named too small to judge.
    min_structures: int = MIN_VALIDATION_STRUCTURES


@dataclass(frozen=True)
class TrainingCurves:
    """Plotly figures by name (``loss``, ``energy``, ``force``) and their caption."""

    figures: dict[str, dict[str, object]]
    caption: CurveCaption


def _structures(n: int) -> str:
    return f"{n} structure" if n == 1 else f"{n} structures"


def _judgeable(n: int | None) -> bool:
    return n is not None and n >= MIN_VALIDATION_STRUCTURES


def validation_sizes(curves: Curves, heads: Sequence[HeadData]) -> dict[str | None, int]:
    """Validation structures per head (reference energies) and, under None, of the loss.

    Runs recorded before the loss's structure count fall back to the largest
    head's energies and synthetic energies.
    """
    sizes: dict[str | None, int] = {
        head.head: head.energies.get(VALIDATION, 0) for head in heads if VALIDATION in head.energies
    }
    recorded = curves.structures.get(VALIDATION)
    if recorded is not None:
        sizes[None] = recorded
    elif sizes:
        sizes[None] = max(
            head.energies.get(VALIDATION, 0) + head.synthetic.get(VALIDATION, 0) for head in heads
        )
    return sizes


def _has_values(values: Sequence[float | None]) -> bool:
    return any(v is not None for v in values)


def _series(
    values: Mapping[tuple[str, str], list[float | None]],
    x: list[int],
    sizes: Mapping[str | None, int],
    colours: Mapping[str, str],
) -> list[Series]:
    drawn = []
    for (head, split), y in sorted(values.items()):
        if not _has_values(y) or (split == VALIDATION and not _judgeable(sizes.get(head))):
            continue
        dash = "dot" if split == TRAIN else None
        drawn.append(Series(f"{head} ({split})", x, y, dash, colours.get(head)))
    return drawn


def _caption(
    curves: Curves, sizes: Mapping[str | None, int], drawn: set[str], heads: Sequence[str]
) -> CurveCaption:
    notes = []
    has_validation = VALIDATION in curves.loss or any(s == VALIDATION for _, s in curves.energy_mae)
    if not has_validation:
        lines = "training only (dotted): the run held out no validation structures"
    elif VALIDATION in drawn:
        lines = "training dotted, validation solid"
    else:
        lines = "training only (dotted): no validation split is large enough to draw"
    if has_validation:
        loss_n = sizes.get(None)
        if loss_n is not None and not _judgeable(loss_n):
            notes.append(f"loss: validation split of {_structures(loss_n)}: too small to judge")
        for head in heads:
            n = sizes.get(head, 0)
            if n == 0:
                notes.append(f"{head}: no validation structures")
            elif not _judgeable(n):
                notes.append(f"{head}: validation split of {_structures(n)}: too small to judge")
        if notes:
            notes.append(
                f"validation lines of fewer than {MIN_VALIDATION_STRUCTURES} structures are "
                "not drawn: one structure's error can sit far above or below the mean"
            )
    definition = LOSS_DEFINITION if curves.structures else OLD_LOSS_DEFINITION
    return CurveCaption(lines, notes, definition)


def training_curves(curves: Curves, heads: Sequence[HeadData]) -> TrainingCurves:
    """Loss, energy MAE per head and force MAE per head per epoch, and their caption.

    Training is dotted, validation solid, one colour per head; a validation
    line over fewer than :data:`MIN_VALIDATION_STRUCTURES` structures is left
    out and named in the caption.
    """
    x = curves.epochs
    sizes = validation_sizes(curves, heads)
    names = [head.head for head in heads]
    for head, _ in (*curves.energy_mae, *curves.force_mae):
        if head not in names:
            names.append(head)
    colours = {head: COLOURS[k % len(COLOURS)] for k, head in enumerate(names)}
    loss = [
        Series(f"loss ({split})", x, y, "dot" if split == TRAIN else None, COLOURS[0])
        for split, y in sorted(curves.loss.items())
        if _has_values(y) and (split == TRAIN or _judgeable(sizes.get(None)))
    ]
    energy = _series(curves.energy_mae, x, sizes, colours)
    force = _series(curves.force_mae, x, sizes, colours)
    figures: dict[str, dict[str, object]] = {}
    if loss:
        figures["loss"] = line_figure(loss, x_title="epoch", y_title="loss", log_y=True)
    if energy:
        figures["energy"] = line_figure(
            energy, x_title="epoch", y_title="energy MAE (meV/atom)", log_y=True
        )
    if force:
        figures["force"] = line_figure(
            force, x_title="epoch", y_title="force MAE (meV/Å)", log_y=True
        )
    drawn = {"train" if s.dash else VALIDATION for s in (*loss, *energy, *force)}
    return TrainingCurves(figures, _caption(curves, sizes, drawn, names))
