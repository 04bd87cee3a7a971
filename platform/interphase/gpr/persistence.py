"""Byte format of a fitted subset GP (stored in ``GPRModel.state``).

The bytes hold the training data, the settings and the GPyTorch state dict;
rebuilding conditions on the same data with the same hyperparameters, so a
reloaded GP predicts bit for bit what the fitted one did (no refitting).
Written with :func:`torch.save`, read with ``weights_only=True`` (no pickled code).
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import torch

from interphase.gpr.descriptors import DescriptorSettings
from interphase.gpr.gp import EnergyGradientGP, GPInputError

FORMAT_VERSION = 2


def gp_to_bytes(gp: EnergyGradientGP) -> bytes:
    """Serialise a fitted GP (see :meth:`EnergyGradientGP.to_bytes`)."""
    model = gp._require_model()
    cells = gp._train_cells
    payload: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "numbers": torch.as_tensor(gp.numbers),
        "periodic": gp.periodic,
        "pbc": list(gp.pbc),
        "descriptor": gp.descriptor.model_dump(),
        "training_iterations": gp.training_iterations,
        "seed": gp.seed,
        "max_outputs": gp.max_outputs,
        "max_hyperparameter_outputs": gp.max_hyperparameter_outputs,
        "restarts": gp.restarts,
        "positions_angstrom": torch.as_tensor(gp._train_positions),
        "energies_hartree": torch.as_tensor(gp._train_energies),
        "gradients_hartree_per_angstrom": torch.as_tensor(gp._train_gradients),
        "cells_angstrom": None if cells is None else torch.as_tensor(cells),
        "model_state": {k: v.cpu() for k, v in model.state_dict().items()},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


class GPStateError(GPInputError):
    """A stored GP state cannot be read: corrupt, truncated, or not written by interphase."""


#: What a damaged state can raise while it is unpickled and rebuilt.
_UNREADABLE = (
    RuntimeError,
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
    IndexError,
)


def gp_from_bytes(
    data: bytes, device: str | None = None, *, gp_id: int | None = None
) -> EnergyGradientGP:
    """Rebuild a GP written by :func:`gp_to_bytes` on ``device`` (default: CUDA if any).

    Parameters
    ----------
    data
        The stored bytes (``GPRModel.state``).
    device
        ``cpu`` or ``cuda``; default CUDA when available.
    gp_id
        Id of the stored GP, named in errors.

    Raises
    ------
    GPStateError
        The bytes are not a readable GP state, or are of another format version.
    """
    name = f"GP {gp_id}" if gp_id is not None else "the GP"
    try:
        payload = torch.load(io.BytesIO(data), weights_only=True)
        version = payload.get("format_version") if isinstance(payload, dict) else None
    except _UNREADABLE as exc:
        raise _unreadable(name, exc) from exc
    if version != FORMAT_VERSION:
        raise GPStateError(
            f"the stored state of {name} has format_version {version!r}; this interphase "
            f"reads version {FORMAT_VERSION}: refit with `interphase gpr fit`"
        )
    try:
        return _rebuild(payload, device)
    except (GPInputError, torch.OutOfMemoryError):
        raise
    except _UNREADABLE as exc:
        raise _unreadable(name, exc) from exc


def _unreadable(name: str, exc: Exception) -> GPStateError:
    reason = " ".join(str(exc).split())[:200] or type(exc).__name__
    return GPStateError(
        f"the stored state of {name} is corrupt or not a GP state ({reason}): refit the "
        "subset with `interphase gpr fit`, which stores a new GP that replaces it"
    )


def _rebuild(payload: dict[str, Any], device: str | None) -> EnergyGradientGP:
    pbc = payload["pbc"]
    gp = EnergyGradientGP(
        numbers=payload["numbers"].numpy(),
        periodic=payload["periodic"],
        training_iterations=payload["training_iterations"],
        seed=payload["seed"],
        max_outputs=payload["max_outputs"],
        device=device,
        descriptor=DescriptorSettings(**payload["descriptor"]),
        restarts=payload["restarts"],
        max_hyperparameter_outputs=payload["max_hyperparameter_outputs"],
        pbc=(bool(pbc[0]), bool(pbc[1]), bool(pbc[2])),
    )
    cells = payload["cells_angstrom"]
    gp._set_training_data(
        payload["positions_angstrom"].numpy(),
        payload["energies_hartree"].numpy(),
        payload["gradients_hartree_per_angstrom"].numpy(),
        None if cells is None else cells.numpy(),
    )
    x, y, _ = gp._training_tensors()
    model = gp._new_model(x, y)
    # Priors only shape the search, not predictions; GPs stored before the noise
    # prior existed lack its buffers, which keep this version's values.
    state = model.state_dict()
    state.update(payload["model_state"])
    model.load_state_dict(state)
    gp._finish(model)
    return gp
