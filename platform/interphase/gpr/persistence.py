"""Byte format of a fitted subset GP (stored in ``GPRModel.state``).

The bytes hold the GP's public :class:`~interphase.gpr.state.GPState` (its
``state()``): the training data, the settings and the GPyTorch state dict;
rebuilding (``EnergyGradientGP.from_state``) conditions on the same data with
the same hyperparameters, so a reloaded GP predicts bit for bit what the fitted
one did (no refitting). Written with :func:`torch.save`, read with
``weights_only=True`` (no pickled code).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from interphase.devices import DeviceUnavailableError
from interphase.gpr.descriptors import DescriptorSettings
from interphase.gpr.errors import GPInputError
from interphase.gpr.gp import EnergyGradientGP
from interphase.gpr.state import GPState

FORMAT_VERSION = 2


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


def gp_to_bytes(gp: EnergyGradientGP) -> bytes:
    """A fitted GP as bytes; :func:`gp_from_bytes` rebuilds it, predicting identically."""
    state = gp.state()
    cells = state.cells_angstrom
    payload: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "numbers": torch.as_tensor(state.numbers),
        "periodic": state.periodic,
        "pbc": list(state.pbc),
        "descriptor": state.descriptor.model_dump(),
        "training_iterations": state.training_iterations,
        "seed": state.seed,
        "max_outputs": state.max_outputs,
        "max_hyperparameter_outputs": state.max_hyperparameter_outputs,
        "restarts": state.restarts,
        "positions_angstrom": torch.as_tensor(state.positions_angstrom),
        "energies_hartree": torch.as_tensor(state.energies_hartree),
        "gradients_hartree_per_angstrom": torch.as_tensor(state.gradients_hartree_per_angstrom),
        "cells_angstrom": None if cells is None else torch.as_tensor(cells),
        "model_state": state.model_state,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


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
    name = _name(gp_id)
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
    with _rebuilding(gp_id):
        return EnergyGradientGP.from_state(_state(payload), device)


@contextmanager
def _rebuilding(gp_id: int | None) -> Iterator[None]:
    """Report what a damaged state raises while a GP is rebuilt from it as :class:`GPStateError`.

    Errors of the request itself (a GP input error, a device that is missing,
    memory running out) pass unchanged.
    """
    try:
        yield
    except (GPInputError, DeviceUnavailableError, torch.OutOfMemoryError):
        raise
    except _UNREADABLE as exc:
        raise _unreadable(_name(gp_id), exc) from exc


def _state(payload: dict[str, Any]) -> GPState:
    pbc = payload["pbc"]
    cells = payload["cells_angstrom"]
    return GPState(
        numbers=payload["numbers"].numpy(),
        periodic=payload["periodic"],
        pbc=(bool(pbc[0]), bool(pbc[1]), bool(pbc[2])),
        descriptor=DescriptorSettings(**payload["descriptor"]),
        training_iterations=payload["training_iterations"],
        seed=payload["seed"],
        max_outputs=payload["max_outputs"],
        max_hyperparameter_outputs=payload["max_hyperparameter_outputs"],
        restarts=payload["restarts"],
        positions_angstrom=payload["positions_angstrom"].numpy(),
        energies_hartree=payload["energies_hartree"].numpy(),
        gradients_hartree_per_angstrom=payload["gradients_hartree_per_angstrom"].numpy(),
        cells_angstrom=None if cells is None else cells.numpy(),
        model_state=payload["model_state"],
    )


def _name(gp_id: int | None) -> str:
    return f"GP {gp_id}" if gp_id is not None else "the GP"


def _unreadable(name: str, exc: Exception) -> GPStateError:
    reason = " ".join(str(exc).split())[:200] or type(exc).__name__
    return GPStateError(
        f"the stored state of {name} is corrupt or not a GP state ({reason}): refit the "
        "subset with `interphase gpr fit`, which stores a new GP that replaces it"
    )
