"""A batch of generated structures: provenance per structure and rejections by reason.

Every generator returns :class:`GeneratedStructure` items that carry what the
database needs for lineage (generator name, parameters, seed, parent). A
:class:`GenerationBatch` validates each candidate with the shared geometry
checks as it is added: valid ones are kept, invalid ones only counted by
reason, so a rejected structure is never stored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from interphase.records import StructureRecord
from interphase.structures.validate import InvalidStructureError, validate_structure

#: Progress callback of the recipes, called with a number of finished work units.
Advance = Callable[[int], None]


def no_progress(_: int) -> None:
    """An :data:`Advance` that reports nothing."""
    return None


@dataclass
class GeneratedStructure:
    """One generated structure and its provenance.

    Attributes
    ----------
    record
        The structure (positions Å, charge e, multiplicity 2S+1).
    generator
        Generator name stored with the structure, e.g. ``"lattice_bulk"``.
    params
        Generator parameters of this very structure (JSON-serialisable).
    seed
        Seed of the generator call that made it.
    parent
        Index of the parent in the same batch (``None``: no parent in it).
    parent_id
        Database id of a parent stored earlier (used when ``parent`` is None).
    """

    record: StructureRecord
    generator: str
    params: dict[str, Any]
    seed: int | None = None
    parent: int | None = None
    parent_id: int | None = None


@dataclass
class GenerationBatch:
    """Accepted structures in generation order plus rejection counts by reason."""

    min_distance_fraction: float = 0.5
    items: list[GeneratedStructure] = field(default_factory=list)
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, item: GeneratedStructure, *, check_fragments: bool = False) -> int | None:
        """Validate ``item``; keep it and return its index, or count it and return None.

        A child whose parent was rejected is rejected too (reason ``parent_rejected``).
        """
        if item.parent is not None and not 0 <= item.parent < len(self.items):
            self.rejected[(item.generator, "parent_rejected")] += 1
            return None
        try:
            validate_structure(
                item.record,
                min_distance_fraction=self.min_distance_fraction,
                check_fragments=check_fragments,
            )
        except InvalidStructureError as error:
            self.rejected[(item.generator, error.reason)] += 1
            return None
        self.items.append(item)
        return len(self.items) - 1

    def reject(self, generator: str, reason: str, count: int = 1) -> None:
        """Count structures a generator gave up on before making them."""
        self.rejected[(generator, reason)] += count

    def extend(self, other: GenerationBatch) -> None:
        """Append another (already validated) batch, re-indexing its parents."""
        offset = len(self.items)
        for item in other.items:
            parent = None if item.parent is None else item.parent + offset
            self.items.append(
                GeneratedStructure(
                    item.record, item.generator, item.params, item.seed, parent, item.parent_id
                )
            )
        self.rejected.update(other.rejected)

    def made(self) -> Counter[str]:
        """Number of accepted structures by generator name."""
        return Counter(item.generator for item in self.items)
