"""Which torch device a computation runs on (models, training, GPs).

``None`` means "CUDA when torch sees a GPU, else CPU"; a named device is
checked, so asking for CUDA on a machine without it fails at once with a line
that says what to use instead. Torch is imported inside the functions, so
importing this module stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["DeviceUnavailableError", "default_device_name", "select_device"]


class DeviceUnavailableError(ValueError):
    """The requested device does not exist on this machine (CUDA without a GPU)."""


def default_device_name() -> str:
    """``"cuda"`` when torch sees a CUDA device, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def select_device(requested: str | torch.device | None = None) -> torch.device:
    """``requested`` if given (checked), else CUDA when available, else CPU.

    Raises
    ------
    DeviceUnavailableError
        ``requested`` is a CUDA device and torch sees none.
    """
    import torch

    if requested is None:
        return torch.device(default_device_name())
    chosen = torch.device(requested)
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"device {str(requested)!r} requested but torch sees no CUDA device; use cpu"
        )
    return chosen
