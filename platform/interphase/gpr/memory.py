"""Memory planning for exact energy+gradient GPs.

An exact GP over n structures of N atoms conditions on K = n(3N+1) outputs;
its dense float64 kernel takes 8·K² bytes:

=================== ========  ===========
structures × atoms  outputs   kernel (GB)
=================== ========  ===========
100 × 20               6,100        0.30
200 × 20              12,200        1.19
100 × 46              13,900        1.55
200 × 46              27,800        6.18
400 × 46              55,600       24.7
=================== ========  ===========

Peak memory is a multiple of the kernel, measured on CPU (peak RSS above the
baseline, gpytorch 1.15): 2.1 kernels both while hyperparameters are searched
and while conditioning and predicting (8,340 outputs, 60 × 46 atoms): the kernel,
written in place a block of rows at a time (:mod:`interphase.gpr.kernels`), and
its Cholesky factor; the search needs no backward pass
(:mod:`interphase.gpr.hyperparameters`). The plan allows
:data:`FIT_KERNEL_COPIES` and :data:`CONDITION_KERNEL_COPIES`. SOAP inputs add
their stored Jacobians (K·F' floats, F' features per structure, twice) and, while
hyperparameters are searched, a cached J_iᵀJ_j block and the projection that
drops rigid motions (measured 4.8 kernels in all at 6,100 outputs; the plan adds
:data:`DESCRIPTOR_FIT_EXTRA_COPIES`).

A memory budget (default :data:`DEFAULT_CPU_BUDGET_GB` on CPU, a fraction
:data:`DEFAULT_GPU_BUDGET_FRACTION` of the device on CUDA: 8 GB of a 24 GB
workstation, ~68 GB of an 80 GB H100) gives two caps: ``max_outputs`` for
conditioning and ``max_hyperparameter_outputs`` for the likelihood
optimisation. Hyperparameters are fitted on a farthest-point sample under the
second cap and the GP then conditions on everything under the first. A subset
above ``max_outputs`` is subsampled by farthest-point sampling in the GP's
input space (policy ``"subsample"``, the default: the most diverse structures
are kept, so uncertainty stays meaningful) or refused with
:class:`GPTooLargeError` (policy ``"error"``) — never an out-of-memory crash.

With the defaults and Cartesian inputs: CPU (8 GB) conditions on up to 20,000
outputs (143 structures × 46 atoms) and fits hyperparameters on at most
:data:`CPU_HYPERPARAMETER_OUTPUTS` (time, not memory); a GPU with 68 GB
conditions on and fits hyperparameters on up to 58,300 outputs (419 × 46), so
the 200 × 46 case runs whole. SOAP inputs (4 species, n_max=4, l_max=3,
46 atoms: 25,000 features per structure) condition on up to 12,400 outputs
(88 × 46) on CPU and 49,200 (353 × 46) on the GPU, where their hyperparameter
search takes up to 35,000 (252 × 46).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from interphase.devices import default_device_name
from interphase.gpr.errors import GPTooLargeError

__all__ = [
    "GPTooLargeError",
    "MemoryPlan",
    "farthest_point_indices",
    "plan_for_budget",
    "plan_for_device",
    "plan_training_indices",
]

OversizePolicy = Literal["subsample", "error"]

#: Peak bytes / kernel bytes allowed while hyperparameters are searched (measured: 2.1).
FIT_KERNEL_COPIES = 2.5
#: Peak bytes / kernel bytes allowed while conditioning and predicting (measured: 2.1).
CONDITION_KERNEL_COPIES = 2.5
#: More kernel copies for a descriptor (SOAP) search: the cached J_iᵀJ_j block and
#: the rigid-motion projection (measured: 2.8 more).
DESCRIPTOR_FIT_EXTRA_COPIES = 3.0
DEFAULT_CPU_BUDGET_GB = 8.0
DEFAULT_GPU_BUDGET_FRACTION = 0.85
#: The hyperparameter grid and restarts (~150-250 likelihood evaluations) run on a
#: farthest-point sample of at most this many outputs; a larger hyperparameter
#: sample then gets one refining Nelder–Mead run (~40-100 evaluations).
COARSE_HYPERPARAMETER_OUTPUTS = 2_000
#: On CPU, hyperparameters are fitted on at most this many outputs (time, not
#: memory: one likelihood evaluation, a Cholesky factorisation, takes ~0.1 s at
#: 2,000 outputs and ~0.6 s at 5,000 on two cores). Measured on 100 EC + Li36
#: structures: hyperparameters from 14 of them gave 5.3 meV/atom and 337 meV/Å
#: held-out errors, from 30 of them 4.0 and 311.
CPU_HYPERPARAMETER_OUTPUTS = 5_000


@dataclass(frozen=True)
class MemoryPlan:
    """Output caps derived from a memory budget."""

    budget_gb: float
    max_outputs: int  # conditioning and prediction
    max_hyperparameter_outputs: int  # marginal-likelihood gradient steps


def default_budget_gb(device: str | None = None) -> float:
    """Default memory budget (GB) for the device: 8 GB on CPU, 85 % of a GPU."""
    import torch

    name = device if device is not None else default_device_name()
    if name.startswith("cuda") and torch.cuda.is_available():
        total = torch.cuda.get_device_properties(torch.device(name)).total_memory
        return DEFAULT_GPU_BUDGET_FRACTION * total / 1e9
    return DEFAULT_CPU_BUDGET_GB


def _max_outputs(budget_bytes: float, kernel_copies: float, features_per_structure: int) -> int:
    # copies·8·K² + 2·8·K·F' = budget  →  K = (-b + sqrt(b² + 4ac)) / 2a
    a, b = 8.0 * kernel_copies, 16.0 * features_per_structure
    return int((-b + math.sqrt(b * b + 4.0 * a * budget_bytes)) / (2.0 * a))


def plan_for_budget(
    budget_gb: float, features_per_structure: int = 0, *, on_gpu: bool = False
) -> MemoryPlan:
    """Caps on outputs for a budget; ``features_per_structure`` > 0 for SOAP inputs.

    On CPU the hyperparameter cap is also at most :data:`CPU_HYPERPARAMETER_OUTPUTS`.
    """
    if not math.isfinite(budget_gb) or budget_gb <= 0:
        raise ValueError(f"memory budget must be a positive number of GB; got {budget_gb}")
    extra = DESCRIPTOR_FIT_EXTRA_COPIES if features_per_structure else 0.0
    budget = budget_gb * 1e9
    hyperparameter_outputs = _max_outputs(budget, FIT_KERNEL_COPIES + extra, features_per_structure)
    if not on_gpu:
        hyperparameter_outputs = min(hyperparameter_outputs, CPU_HYPERPARAMETER_OUTPUTS)
    return MemoryPlan(
        budget_gb=budget_gb,
        max_outputs=_max_outputs(budget, CONDITION_KERNEL_COPIES, features_per_structure),
        max_hyperparameter_outputs=hyperparameter_outputs,
    )


def plan_for_device(
    device: str | None = None, budget_gb: float | None = None, features_per_structure: int = 0
) -> MemoryPlan:
    """The plan for ``device`` (``None``: CUDA if present) and a budget (default per device)."""
    name = device if device is not None else default_device_name()
    budget = budget_gb if budget_gb is not None else default_budget_gb(name)
    return plan_for_budget(budget, features_per_structure, on_gpu=name.startswith("cuda"))


#: Caps of the default CPU budget, for a GP built without a plan.
DEFAULT_PLAN = plan_for_budget(DEFAULT_CPU_BUDGET_GB)
DEFAULT_MAX_OUTPUTS = DEFAULT_PLAN.max_outputs
DEFAULT_MAX_HYPERPARAMETER_OUTPUTS = DEFAULT_PLAN.max_hyperparameter_outputs


def kernel_gigabytes(n_structures: int, n_atoms: int) -> float:
    """Size of the dense float64 kernel matrix (GB) for n structures of N atoms."""
    outputs = n_structures * (3 * n_atoms + 1)
    return 8.0 * outputs**2 / 1e9


def max_structures(n_atoms: int, max_outputs: int) -> int:
    """How many structures of ``n_atoms`` atoms fit under ``max_outputs``."""
    return max(0, max_outputs // (3 * n_atoms + 1))


def farthest_point_indices(inputs: np.ndarray, k: int, start: int = 0) -> np.ndarray:
    """Greedy farthest-point sample of ``k`` rows of ``inputs`` (n, ...), starting at ``start``.

    Returns the chosen row indices in increasing order.
    """
    flat = np.asarray(inputs, dtype=np.float64).reshape(len(inputs), -1)
    n = len(flat)
    if k >= n:
        return np.arange(n)
    chosen = [int(start)]
    distance = np.linalg.norm(flat - flat[start], axis=1)
    for _ in range(k - 1):
        nxt = int(np.argmax(distance))
        chosen.append(nxt)
        distance = np.minimum(distance, np.linalg.norm(flat - flat[nxt], axis=1))
    return np.sort(np.asarray(chosen, dtype=np.int64))


def plan_training_indices(
    inputs: np.ndarray,
    n_atoms: int,
    *,
    max_outputs: int = DEFAULT_MAX_OUTPUTS,
    policy: OversizePolicy = "subsample",
    subset_key: str = "",
) -> np.ndarray:
    """Indices of the training structures to condition on, within ``max_outputs``.

    Parameters
    ----------
    inputs
        (n, ...) structures in a common frame (aligned coordinates).
    n_atoms
        Atoms per structure.
    max_outputs
        Cap on n(3N+1).
    policy
        ``"subsample"`` keeps a farthest-point sample; ``"error"`` raises
        :class:`GPTooLargeError` naming the subset and the memory it would need.
    subset_key
        Named in the error message.
    """
    n = len(inputs)
    limit = max_structures(n_atoms, max_outputs)
    if n <= limit:
        return np.arange(n)
    if policy == "error" or limit < 2:
        raise GPTooLargeError(
            f"subset {subset_key or '?'}: {n} structures × {n_atoms} atoms = "
            f"{n * (3 * n_atoms + 1)} outputs ({kernel_gigabytes(n, n_atoms):.1f} GB kernel) "
            f"exceeds max_outputs={max_outputs} ({limit} structures); use the 'subsample' "
            "policy, raise the memory budget if the machine has the memory, or split the subset"
        )
    return farthest_point_indices(inputs, limit)
