"""Training checkpoints: everything needed to continue a run exactly where it stopped.

The file holds the model, its best weights so far, optimiser, scheduler and
loss-weighting states, the epoch counter, the batch-order random state, the
split and the epoch history, as plain containers and tensors, so it loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_KIND = "interphase-training-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or belongs to different data."""


def data_fingerprint(structure_ids: np.ndarray, n_atoms: np.ndarray, heads: list[str]) -> str:
    """Short digest of the dataset a run trains on (resume refuses other data)."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(structure_ids, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(n_atoms, dtype=np.int64).tobytes())
    digest.update("\x1f".join(heads).encode())
    return digest.hexdigest()[:16]


@dataclass
class Checkpoint:
    """The contents of a checkpoint file (see module docstring)."""

    settings_json: str
    fingerprint: str
    model: dict[str, Any]  # interphase.models.artifact.model_payload
    best_state: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    weighting: dict[str, torch.Tensor]
    epoch: int
    best_loss: float
    best_epoch: int
    rng_state: dict[str, Any]
    train_indices: np.ndarray
    validation_indices: np.ndarray
    scales: dict[str, Any]
    history: list[dict[str, Any]]

    def save(self, path: str | Path) -> Path:
        """Write atomically (a crash mid-write leaves the previous checkpoint)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "kind": CHECKPOINT_KIND,
            "version": CHECKPOINT_VERSION,
            **{k: v for k, v in vars(self).items() if not k.endswith("_indices")},
            "train_indices": torch.as_tensor(self.train_indices, dtype=torch.long),
            "validation_indices": torch.as_tensor(self.validation_indices, dtype=torch.long),
        }
        partial = path.with_suffix(path.suffix + ".partial")
        torch.save(payload, partial)
        os.replace(partial, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Checkpoint:
        path = Path(path)
        if not path.exists():
            raise CheckpointError(f"checkpoint {path} does not exist; the run cannot be resumed")
        try:
            payload = torch.load(path, weights_only=True, map_location="cpu")
        except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as error:
            raise CheckpointError(f"checkpoint {path} is unreadable: {error}") from None
        if not isinstance(payload, dict) or payload.get("kind") != CHECKPOINT_KIND:
            raise CheckpointError(f"{path} is not an interphase training checkpoint")
        if payload.get("version") != CHECKPOINT_VERSION:
            raise CheckpointError(
                f"checkpoint {path} has version {payload.get('version')!r}; this interphase "
                f"reads version {CHECKPOINT_VERSION}"
            )
        fields = {k: v for k, v in payload.items() if k not in ("kind", "version")}
        fields["train_indices"] = payload["train_indices"].numpy()
        fields["validation_indices"] = payload["validation_indices"].numpy()
        return cls(**fields)
