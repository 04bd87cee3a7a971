"""Inference with a trained potential: the plain path and a fast path for MD.

Plain path: :func:`interphase.models.multihead.evaluate_structure` on every call
(new neighbour list, new batch).

Fast path (:class:`InferenceSession` with ``fast=True``), kept to what measurably
helps on CPU (``bench/md_speed.py``, ``bench/RESULTS.md``):

- a Verlet neighbour list: pairs within the model's cutoff plus a skin, rebuilt
  only when some atom has moved more than half the skin since the last build
  (or the cell, elements, periodicity or total charge changed). Building the
  list (ASE, numpy) costs more than the network on ~1000 atoms; the model
  itself drops pairs beyond its cutoffs, so the extra pairs change nothing;
- a frozen (``requires_grad=False``), eval-mode copy of the model kept on the
  device, with the static inputs (element indices, pairs, image shifts) kept
  there as tensors; only positions travel per step;
- optional float32 (≈2× faster on CPU; total energies of ~1000 atoms then carry
  ~1e-3 Hartree rounding, forces ~1e-6 relative);
- a one-entry cache: the same structure twice in a row is not recomputed.

Stress is (1/V) dE/dε by autograd through a homogeneous strain ε applied to
positions and cell (3D-periodic structures only).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from interphase.devices import select_device
from interphase.models.artifact import load_model
from interphase.models.descriptors import StructureGraph, build_structure_graph, collate
from interphase.models.multihead import MultiHeadPotential, evaluate_structure

_PairKey = tuple[bytes, bytes, tuple[bool, ...], float]

#: Default Verlet skin (Å): at 0.5 fs and 300 K the list lasts tens of steps.
DEFAULT_SKIN_ANGSTROM = 1.0


@dataclass(frozen=True)
class Evaluation:
    """One head's prediction for one structure (Hartree, Å, e).

    ``stress_hartree_per_angstrom3`` is (1/V) dE/dε, (3, 3); None unless asked for
    and the structure is periodic in all three directions.
    """

    energy_hartree: float
    gradient_hartree_per_angstrom: np.ndarray  # (N, 3), dE/dx
    charges_e: np.ndarray | None  # (N,)
    stress_hartree_per_angstrom3: np.ndarray | None = None


def load_for_inference(model_or_path: MultiHeadPotential | str | Path) -> MultiHeadPotential:
    """The model itself, or the artifact at a path (``weights_only=True``)."""
    if isinstance(model_or_path, MultiHeadPotential):
        return model_or_path
    if isinstance(model_or_path, str | Path):
        return load_model(model_or_path)
    raise TypeError(
        f"expected a MultiHeadPotential or a model file path, got {type(model_or_path).__name__}"
    )


@dataclass
class _PairList:
    """Device tensors of one structure's (Verlet) neighbour list and static inputs."""

    key: _PairKey
    reference_positions: np.ndarray  # (N, 3) positions at the build
    species_index: torch.Tensor
    structure_index: torch.Tensor
    total_charge_e: torch.Tensor
    pair_index: torch.Tensor  # (2, P)
    pair_cell_shift: torch.Tensor  # (P, 3)
    cell_angstrom: torch.Tensor  # (3, 3)
    periodic: bool  # all three directions


class InferenceSession:
    """Repeated evaluation of one head on one device (MD, optimisation, phonons).

    Parameters
    ----------
    model
        A trained potential (not modified; the session works on its own copy when
        the device or precision differ, or on the fast path).
    head
        Level of theory, one of ``model.heads``.
    device
        Torch device; default CUDA when available, else CPU.
    dtype
        Evaluation precision; default the model's.
    fast
        Verlet list, frozen on-device copy and cache (module docstring); ``False``
        calls ``evaluate_structure`` every time.
    skin_angstrom
        Verlet skin of the fast path.

    Raises
    ------
    UnknownHeadError
        ``head`` is not one of the model's heads.
    """

    def __init__(
        self,
        model: MultiHeadPotential,
        head: str,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        fast: bool = True,
        skin_angstrom: float = DEFAULT_SKIN_ANGSTROM,
    ) -> None:
        self.head = head
        self.head_index = model.head_index(head)
        self.device = select_device(device)
        self.dtype = dtype or model.dtype
        self.fast = fast
        if skin_angstrom < 0:
            raise ValueError(f"skin_angstrom must be >= 0, got {skin_angstrom}")
        self.skin_angstrom = float(skin_angstrom) if fast else 0.0
        if fast or self.device != model.device or self.dtype != model.dtype:
            model = copy.deepcopy(model)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        if fast:
            self.model.requires_grad_(False)
        self._pairs: _PairList | None = None
        self._last: tuple[tuple[object, ...], Evaluation] | None = None
        #: Neighbour-list builds so far (the Verlet list's reuse shows here).
        self.list_builds = 0

    @property
    def has_charges(self) -> bool:
        return self.model.charge_model is not None

    def describe(self) -> str:
        """One line: path, device, precision."""
        path = f"fast path, skin {self.skin_angstrom:g} Å" if self.fast else "plain path"
        return f"{path}, {self.device}, {str(self.dtype).removeprefix('torch.')}"

    def evaluate(
        self,
        numbers: np.ndarray,
        positions_angstrom: np.ndarray,
        cell_angstrom: np.ndarray | None,
        pbc: Sequence[bool],
        *,
        total_charge: float = 0.0,
        stress: bool = False,
    ) -> Evaluation:
        """Energy, gradient, charges and (if asked, 3D-periodic only) stress.

        Raises
        ------
        UnknownElementError
            The structure holds an element the model was not trained on.
        """
        numbers = np.asarray(numbers)
        positions = np.asarray(positions_angstrom, dtype=np.float64)
        cell = np.zeros((3, 3)) if cell_angstrom is None else np.asarray(cell_angstrom, float)
        flags = tuple(bool(p) for p in pbc)
        if not self.fast and not stress:
            self.list_builds += 1  # evaluate_structure builds its own list
            plain = evaluate_structure(
                self.model, numbers, positions, cell, flags, self.head, total_charge=total_charge
            )
            return Evaluation(
                plain.energy_hartree, plain.gradient_hartree_per_angstrom, plain.charges_e
            )
        key = (numbers.tobytes(), positions.tobytes(), cell.tobytes(), flags, total_charge)
        if self._last is not None and self._last[0] == key:
            cached = self._last[1]
            if not stress or cached.stress_hartree_per_angstrom3 is not None or not all(flags):
                return cached
        pairs = self._pair_list(numbers, positions, cell, flags, float(total_charge))
        result = self._forward(pairs, positions, stress and pairs.periodic)
        self._last = (key, result)
        return result

    def _pair_list(
        self,
        numbers: np.ndarray,
        positions: np.ndarray,
        cell: np.ndarray,
        pbc: tuple[bool, ...],
        total_charge: float,
    ) -> _PairList:
        key: _PairKey = (numbers.tobytes(), cell.tobytes(), pbc, total_charge)
        current = self._pairs
        if (
            self.fast
            and current is not None
            and current.key == key
            and _max_displacement(positions, current.reference_positions) < 0.5 * self.skin_angstrom
        ):
            return current
        graph = build_structure_graph(
            numbers,
            positions,
            cell,
            pbc,
            self.model.pair_cutoff_angstrom + self.skin_angstrom,
            total_charge,
        )
        self._pairs = self._to_device(graph, key, all(pbc))
        self.list_builds += 1
        return self._pairs

    def _to_device(
        self,
        graph: StructureGraph,
        key: tuple[bytes, bytes, tuple[bool, ...], float],
        periodic: bool,
    ) -> _PairList:
        batch = collate([graph], self.model.species, self.dtype, device=self.device)
        return _PairList(
            key=key,
            reference_positions=graph.positions_angstrom.copy(),
            species_index=batch.species_index,
            structure_index=batch.structure_index,
            total_charge_e=batch.total_charge_e,
            pair_index=batch.pair_index,
            pair_cell_shift=batch.pair_cell_shift,
            cell_angstrom=batch.cell_angstrom[0],
            periodic=periodic,
        )

    def _forward(self, pairs: _PairList, positions: np.ndarray, stress: bool) -> Evaluation:
        coordinates = torch.as_tensor(positions, dtype=self.dtype, device=self.device)
        coordinates.requires_grad_(True)
        inputs = [coordinates]
        cell = pairs.cell_angstrom
        if stress:
            strain = torch.zeros(3, 3, dtype=self.dtype, device=self.device, requires_grad=True)
            deformation = torch.eye(3, dtype=self.dtype, device=self.device) + strain
            coordinates, cell = coordinates @ deformation, cell @ deformation
            inputs.append(strain)
        a, b = pairs.pair_index
        diff = coordinates[a] - coordinates[b] + pairs.pair_cell_shift @ cell
        output = self.model.compute(
            pairs.species_index,
            coordinates,
            pairs.structure_index,
            pairs.total_charge_e,
            pairs.pair_index,
            diff,
        )
        energy = output.energy_hartree[0, self.head_index]
        gradients = torch.autograd.grad(energy, inputs)
        stress_tensor = None
        if stress:
            volume = float(torch.linalg.det(pairs.cell_angstrom).abs())
            de_dstrain = gradients[1].detach().double().cpu().numpy()
            stress_tensor = 0.5 * (de_dstrain + de_dstrain.T) / volume
        charges = output.charges_e
        return Evaluation(
            energy_hartree=float(energy.detach()),
            gradient_hartree_per_angstrom=gradients[0].detach().double().cpu().numpy(),
            charges_e=None if charges is None else charges.detach().double().cpu().numpy(),
            stress_hartree_per_angstrom3=stress_tensor,
        )


def _max_displacement(positions: np.ndarray, reference: np.ndarray) -> float:
    if positions.shape != reference.shape:
        return float("inf")
    return float(np.sqrt(((positions - reference) ** 2).sum(axis=1).max(initial=0.0)))
