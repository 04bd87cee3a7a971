"""Model artifacts: architecture config, elements, heads, self-energies and weights.

One ``torch.save`` file holding only plain containers and tensors, so it loads
with ``torch.load(weights_only=True)`` (no pickled code runs on load).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from interphase.models.multihead import MultiHeadPotential

#: Version 1: own AEV code, energies only. Version 2: torchani AEV, charges, Coulomb.
FORMAT_VERSION = 2


class ModelFormatError(ValueError):
    """A file is not a model artifact this interphase can read."""


def model_payload(
    model: MultiHeadPotential, metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The dictionary :func:`save_model` writes (also embedded in training checkpoints)."""
    return {
        "format_version": FORMAT_VERSION,
        "config": model.config(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": metadata or {},
    }


def model_from_payload(payload: dict[str, Any], where: str = "payload") -> MultiHeadPotential:
    """Rebuild a model (eval mode, CPU) from :func:`model_payload` output."""
    version = payload.get("format_version") if isinstance(payload, dict) else None
    if version != FORMAT_VERSION:
        raise ModelFormatError(
            f"{where}: model format_version {version!r}; this interphase reads version "
            f"{FORMAT_VERSION} (retrain older models with `interphase train`)"
        )
    state = payload["state_dict"]
    dtype = state["self_energy_hartree"].dtype
    model = MultiHeadPotential.from_config(payload["config"], dtype=dtype)
    model.load_state_dict(state)
    return model.eval()


def save_model(
    model: MultiHeadPotential, path: str | Path, metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` (and JSON-like ``metadata``, e.g. training settings) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model_payload(model, metadata), path)
    return path


def load_model(path: str | Path, device: str | torch.device | None = None) -> MultiHeadPotential:
    """Read a model written by :func:`save_model` (``weights_only=True``), in eval mode."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file {path} does not exist")
    try:
        payload = torch.load(path, weights_only=True, map_location="cpu")
    except (
        RuntimeError,
        EOFError,
        ValueError,
        pickle.UnpicklingError,
    ) as error:  # not a torch file at all
        raise ModelFormatError(f"{path} is not a readable model file: {error}") from None
    model = model_from_payload(payload, str(path))
    return model.to(device) if device is not None else model


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata stored with a model (training settings, run id, metrics summary)."""
    payload = torch.load(Path(path), weights_only=True, map_location="cpu")
    return dict(payload.get("metadata", {}))
