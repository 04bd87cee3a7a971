"""Errors of the subset GPs (all ``ValueError`` or ``RuntimeError`` subclasses)."""

from __future__ import annotations


class GPInputError(ValueError):
    """Arrays given to the GP have the wrong shape, or too few structures."""


class GPNotFittedError(RuntimeError):
    """``predict`` or ``state`` was called before ``fit``."""


class GPTooLargeError(ValueError):
    """The exact GP would need more memory than its budget allows."""
