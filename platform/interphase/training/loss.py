"""Masked multi-task loss: energies, forces, synthetic energies per head, and charges.

Every term is a mean of squared, scale-normalised errors over the labels that
exist in the batch (a missing label is NaN and is left out; a term with no label
in the batch does not appear at all, so nothing reaches that head's output layer):

- ``energy:<head>``     mean_s ((E_s − E_ref,s) / N_s / σ_E,h)²
- ``synthetic:<head>``  the same on GP synthetic energies
- ``force:<head>``      mean_atoms |g − g_ref|² / σ_g,h²     (g = dE/dx)
- ``charge``            mean_atoms ((q − q_ref) / σ_q)²

σ are the spreads of the training targets (:class:`TargetScales`), so all terms
start near 1. Weighting is fixed (``Σ w_t L_t``) or Kendall et al.'s learnable
homoscedastic uncertainty, ``Σ w_t (½ exp(−s_t) L_t + ½ s_t)`` with one ``s_t``
per task.

The loss *reported* for a split (training and validation alike, see
:class:`~interphase.training.metrics.MetricAccumulator`) is ``Σ_t w_t L_t`` with
the fixed weights, where ``L_t`` is the mean over every label of term ``t`` in
the whole split (structures for energies, atoms for forces and charges), not a
mean of batch values: it does not depend on how the split is batched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from interphase.models.descriptors import AtomsBatch
from interphase.models.multihead import MultiHeadPotential
from interphase.training.dataset import BatchTargets, TargetScales
from interphase.training.settings import LossSettings


@dataclass
class BatchPrediction:
    """Detached predictions of a batch, for metrics."""

    energies: torch.Tensor  # (B, H)
    gradients: torch.Tensor | None  # (H, A, 3), NaN rows for heads not differentiated
    charges: torch.Tensor | None  # (A,)
    #: Labels behind each loss term of the batch (structures for energies, atoms
    #: for forces and charges): the weight of the term's batch mean in a split's mean.
    label_counts: dict[str, int] = field(default_factory=dict)


def task_names(heads: list[str]) -> list[str]:
    """Every loss term a model with these heads can have."""
    kinds = ("energy", "force", "synthetic")
    return [f"{kind}:{head}" for head in heads for kind in kinds] + ["charge"]


class LossWeighting(torch.nn.Module):
    """Fixed or learnable (uncertainty) weights of the loss terms."""

    def __init__(self, heads: list[str], settings: LossSettings) -> None:
        super().__init__()
        self.tasks = task_names(heads)
        self.uncertainty = settings.weighting == "uncertainty"
        weight = {
            "energy": settings.energy_weight,
            "force": settings.force_weight,
            "synthetic": settings.synthetic_weight,
            "charge": settings.charge_weight,
        }
        self.fixed = {task: float(weight[task.split(":")[0]]) for task in self.tasks}
        #: log σ² per task (Kendall et al.); stays zero (unused) for fixed weights.
        self.log_variance = torch.nn.Parameter(
            torch.zeros(len(self.tasks), dtype=torch.float64), requires_grad=self.uncertainty
        )

    def fixed_total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """``Σ w_t L_t`` of one batch with the fixed weights (minimised under fixed weighting)."""
        values = [self.fixed[name] * value for name, value in terms.items()]
        return torch.stack(values).sum() if values else torch.zeros((), dtype=torch.float64)

    def forward(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """The loss to minimise."""
        if not self.uncertainty:
            return self.fixed_total(terms)
        total = []
        for name, value in terms.items():
            s = self.log_variance[self.tasks.index(name)].to(value.dtype)
            total.append(self.fixed[name] * (0.5 * torch.exp(-s) * value + 0.5 * s))
        return torch.stack(total).sum()


def _mean_square(errors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (errors[mask] ** 2).mean()


def batch_loss_terms(
    model: MultiHeadPotential,
    inputs: AtomsBatch,
    targets: BatchTargets,
    scales: TargetScales,
    *,
    forces: bool,
    create_graph: bool,
) -> tuple[dict[str, torch.Tensor], BatchPrediction]:
    """Loss terms present in this batch, and the predictions.

    ``forces``: differentiate energies w.r.t. positions (inputs must require grad)
    for heads with gradient labels; ``create_graph``: keep that graph for training.
    """
    output = model(inputs)
    energy = output.energy_hartree
    dtype, device = energy.dtype, energy.device
    energy_scale = torch.as_tensor(scales.energy_hartree, dtype=dtype, device=device)
    per_atom = targets.n_atoms[:, None] * energy_scale
    terms: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    gradients = None
    if forces:
        gradients = torch.full_like(targets.gradients, float("nan"))
    for h, head in enumerate(model.heads):
        for kind, reference in (("energy", targets.energies), ("synthetic", targets.synthetic)):
            mask = torch.isfinite(reference[:, h])
            if bool(mask.any()):
                terms[f"{kind}:{head}"] = _mean_square(
                    (energy[:, h] - reference[:, h]) / per_atom[:, h], mask
                )
                counts[f"{kind}:{head}"] = int(mask.sum())
        mask = torch.isfinite(targets.gradients[h, :, 0])
        if gradients is not None and bool(mask.any()):
            (gradient,) = torch.autograd.grad(
                energy[:, h].sum(),
                inputs.positions_angstrom,
                create_graph=create_graph,
                retain_graph=True,
            )
            scale = float(scales.gradient_hartree_per_angstrom[h])
            error = (gradient - targets.gradients[h]) / scale
            terms[f"force:{head}"] = (error[mask] ** 2).sum(dim=1).mean()
            counts[f"force:{head}"] = int(mask.sum())
            gradients[h] = gradient.detach()
    charges = output.charges_e
    if charges is not None:
        mask = torch.isfinite(targets.charges)
        if bool(mask.any()):
            terms["charge"] = _mean_square((charges - targets.charges) / scales.charge_e, mask)
            counts["charge"] = int(mask.sum())
    prediction = BatchPrediction(
        energy.detach(), gradients, None if charges is None else charges.detach(), counts
    )
    return terms, prediction
