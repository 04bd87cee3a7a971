"""Upper bounds of a campaign file's counts, and checks that span its nested settings.

Each bound is far above what a real campaign uses (the examples' largest
values are a few hundred), so reaching one means a typo such as
``workers: 100000`` or ``epochs: 1.0e+11``: it is refused by ``campaign
validate`` before anything is stored, queued or paid for. The field
descriptions in :mod:`interphase.campaign.config_sections` name their bound.
The bounds of settings that other modules own live with those settings:
epochs in :mod:`interphase.training.settings`, GP searches in
:mod:`interphase.gpr.settings`.

Two checks here walk the whole validated configuration, including the
settings models other modules own (training, descriptors, executor, engine
settings of levels): every float is finite, and every integer fits the 32-bit
range of the database columns and of numpy's and the engines' integers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from interphase.execution import ExecutorSettings
from interphase.training.settings import MAX_EPOCHS, TrainingSettings

#: Most local worker processes or Dask workers (labeling, GP fits).
MAX_WORKERS = 256
#: Most labels drawn, picked or held out per level and iteration.
MAX_LABELS = 100_000
#: Most labels a budget may allow per level.
MAX_LABEL_BUDGET = 100_000_000
#: Most atoms a ``max_atoms`` filter may name.
MAX_FILTER_ATOMS = 1_000_000
#: Most iterations of a campaign.
MAX_ITERATIONS = 10_000
#: Most structures per training batch.
MAX_BATCH_SIZE = 100_000
#: Most hidden layers of a network, and the widest layer.
MAX_LAYERS, MAX_LAYER_WIDTH = 100, 100_000
#: Most augmented copies per reference structure.
MAX_COPIES = 10_000
#: Most exploration MD runs per iteration.
MAX_STARTS = 100_000
#: Longest job lease (s): a dead worker's job returns at the latest after this.
MAX_LEASE_S = 86_400.0
#: Longest wall-clock limit of one labeling job (s): 30 days.
MAX_TIME_LIMIT_S = 30 * 86_400.0
#: Longest wall-clock budget of a campaign (h): about 11 years.
MAX_WALL_CLOCK_HOURS = 100_000.0
#: Largest integer anywhere in a campaign file: a 32-bit signed column or C int.
MAX_INT = 2**31 - 1


def _leaves(value: Any, where: str) -> Iterator[tuple[str, Any]]:
    """Every scalar of a dumped model, with its dotted path."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{where}.{index}")
    else:
        yield where, value


def check_numbers(data: dict[str, Any], prefix: str = "") -> None:
    """Refuse a non-finite float or an integer outside ±:data:`MAX_INT` anywhere in ``data``.

    Raises
    ------
    ValueError
        Naming the first offending key path and value.
    """
    for where, value in _leaves(data, prefix):
        if isinstance(value, bool):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{where}: {value} is not a finite number")
        if isinstance(value, int) and abs(value) > MAX_INT:
            raise ValueError(f"{where}: {value} is out of range (at most {MAX_INT})")


def check_executor_counts(executor: ExecutorSettings) -> None:
    """Bound the executor's worker counts by :data:`MAX_WORKERS` (``executor.*``)."""
    for name in ("workers", "cores", "processes", "adapt_minimum", "adapt_maximum"):
        value = getattr(executor, name)
        if value is not None and value > MAX_WORKERS:
            raise ValueError(f"executor.{name}: {value} is more than the {MAX_WORKERS} allowed")


def check_training_counts(settings: TrainingSettings) -> None:
    """Bound the counts of ``training.settings`` (batch size, patience, network sizes)."""
    bounds = (
        ("batch_size", settings.batch_size, MAX_BATCH_SIZE),
        ("plateau_patience", settings.plateau_patience, MAX_EPOCHS),
        ("model.hidden_sizes", len(settings.model.hidden_sizes), MAX_LAYERS),
        ("model.charge_hidden_sizes", len(settings.model.charge_hidden_sizes or []), MAX_LAYERS),
    )
    widths = [*settings.model.hidden_sizes, *(settings.model.charge_hidden_sizes or [])]
    for name, value, bound in (*bounds, ("model layer width", max(widths), MAX_LAYER_WIDTH)):
        if value > bound:
            raise ValueError(f"training.settings.{name}: {value} is more than the {bound} allowed")
