"""Column types: numpy arrays stored compactly as raw little-endian bytes."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import LargeBinary
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class NumpyArray(TypeDecorator[np.ndarray]):
    """A numpy array of fixed dtype and trailing shape, stored as bytes.

    ``NumpyArray("<f8", (3,))`` stores an ``(N, 3)`` float64 array; the leading
    dimension is recovered from the byte length. Bytes, not JSON text, keep
    rows small and values exact.
    """

    impl = LargeBinary
    cache_ok = True

    def __init__(self, dtype: str, tail_shape: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.dtype = np.dtype(dtype)
        self.tail_shape = tuple(tail_shape)

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        if isinstance(
            value, bytes
        ):  # pre-encoded by a bulk writer (db.structures.prepare_structures)
            return value
        array = np.ascontiguousarray(value, dtype=self.dtype)
        if self.tail_shape and array.shape[1:] != self.tail_shape:
            raise ValueError(
                f"array of shape {array.shape} does not end in {self.tail_shape} for this column"
            )
        return array.tobytes()

    def process_result_value(self, value: Any, dialect: Dialect) -> np.ndarray | None:
        if value is None:
            return None
        flat = np.frombuffer(bytes(value), dtype=self.dtype)
        return flat.reshape((-1, *self.tail_shape)) if self.tail_shape else flat.copy()
