"""Artificial force induced reaction (AFIR, Maeda et al.) as an ASE calculator and path driver.

The biased function minimised is

    F(Q) = E(Q) + ρ·α·Σ_ij ω_ij r_ij / Σ_ij ω_ij,   ω_ij = ((R_i + R_j) / r_ij)^6,
    α = γ / ([2^(-1/6) − (1 + sqrt(1 + γ/ε))^(-1/6)] · R0),

with i in fragment A, j in fragment B, R covalent radii, R0 = 3.8164 Å,
ε = 1.0061 kJ/mol and γ (kJ/mol) the model collision energy. ρ = +1 pushes
the fragments together, ρ = −1 pulls them apart. Pair mode is the special
case of one atom per fragment (the weights cancel: the bias is ρ·α·r_ij).
The bias gradient is analytic; with f = S/W, S = Σ ω r, W = Σ ω:

    ∂f/∂r_ij = ω_ij (6 S / r_ij − 5 W) / W².
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes
from ase.data import covalent_radii

#: Maeda's AFIR constants: Ar–Ar Lennard-Jones distance (Å) and well depth (kJ/mol).
R0_ANGSTROM = 3.8164
EPSILON_KJ_PER_MOL = 1.0061
#: eV per kJ/mol.
EV_PER_KJ_PER_MOL = units.kJ / units.mol
OPTIMIZERS = ("FIRE", "BFGS", "LBFGS")


class AFIRParameterError(ValueError):
    """An AFIR setting (fragments, γ, ρ, optimiser) is invalid."""


def afir_alpha_kj_per_mol_angstrom(gamma_kj_per_mol: float) -> float:
    """Force constant α (kJ/mol/Å) of the AFIR bias for model collision energy γ (kJ/mol)."""
    if gamma_kj_per_mol <= 0:
        raise AFIRParameterError(f"gamma must be > 0 kJ/mol, got {gamma_kj_per_mol}")
    ratio = 1.0 + np.sqrt(1.0 + gamma_kj_per_mol / EPSILON_KJ_PER_MOL)
    return float(gamma_kj_per_mol / ((2 ** (-1 / 6) - ratio ** (-1 / 6)) * R0_ANGSTROM))


def afir_bias(
    positions_angstrom: np.ndarray,
    numbers: np.ndarray,
    fragment_a: Sequence[int],
    fragment_b: Sequence[int],
    gamma_kj_per_mol: float,
    rho: int,
) -> tuple[float, np.ndarray, float]:
    """AFIR bias energy (eV), its gradient dE/dx (eV/Å, (N, 3)) and the weighted distance (Å).

    Parameters
    ----------
    positions_angstrom
        (N, 3) Cartesian positions, non-periodic.
    numbers
        (N,) atomic numbers (for the covalent radii).
    fragment_a, fragment_b
        Disjoint atom indices of the two fragments (one each for pair mode).
    gamma_kj_per_mol
        Model collision energy γ.
    rho
        +1 pushes, −1 pulls.
    """
    a = np.asarray(fragment_a, dtype=int)
    b = np.asarray(fragment_b, dtype=int)
    vectors = positions_angstrom[a][:, None, :] - positions_angstrom[b][None, :, :]
    r = np.linalg.norm(vectors, axis=2)
    radius_sum = covalent_radii[numbers[a]][:, None] + covalent_radii[numbers[b]][None, :]
    omega = (radius_sum / r) ** 6
    s, w = float((omega * r).sum()), float(omega.sum())
    distance = s / w
    scale = rho * afir_alpha_kj_per_mol_angstrom(gamma_kj_per_mol) * EV_PER_KJ_PER_MOL
    d_distance_d_r = omega * (6.0 * s / r - 5.0 * w) / w**2
    pair_gradient = (scale * d_distance_d_r / r)[:, :, None] * vectors  # d/dx_a; d/dx_b = −that
    gradient = np.zeros_like(positions_angstrom, dtype=float)
    np.add.at(gradient, a, pair_gradient.sum(axis=1))
    np.add.at(gradient, b, -pair_gradient.sum(axis=0))
    return scale * distance, gradient, distance


class AFIRCalculator(Calculator):  # type: ignore[misc]
    """A base ASE calculator plus the AFIR bias between two fragments (analytic forces).

    Parameters
    ----------
    base
        Any ASE calculator giving energy (eV) and forces (eV/Å).
    fragment_a, fragment_b
        Disjoint, non-empty atom index lists.
    gamma_kj_per_mol
        Model collision energy γ (kJ/mol); may be changed between relaxations.
    rho
        +1 (push together) or −1 (pull apart).

    Notes
    -----
    ``energy`` and ``forces`` are those of the biased function F. The
    unbiased energy (eV) and the AFIR weighted distance (Å) of the last
    evaluation are kept in :attr:`base_energy_ev` and :attr:`afir_distance_angstrom`.
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces"]  # type: ignore[misc]

    def __init__(
        self,
        base: Calculator,
        fragment_a: Sequence[int],
        fragment_b: Sequence[int],
        *,
        gamma_kj_per_mol: float,
        rho: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not len(fragment_a) or not len(fragment_b):
            raise AFIRParameterError("both AFIR fragments need at least one atom")
        if set(map(int, fragment_a)) & set(map(int, fragment_b)):
            raise AFIRParameterError("AFIR fragments must not share atoms")
        if rho not in (1, -1):
            raise AFIRParameterError(f"rho must be +1 (push) or -1 (pull), got {rho}")
        afir_alpha_kj_per_mol_angstrom(gamma_kj_per_mol)  # validates gamma
        self.base = base
        self.fragment_a = [int(i) for i in fragment_a]
        self.fragment_b = [int(i) for i in fragment_b]
        self.gamma_kj_per_mol = float(gamma_kj_per_mol)
        self.rho = int(rho)
        self.base_energy_ev = float("nan")
        self.afir_distance_angstrom = float("nan")

    def set_gamma(self, gamma_kj_per_mol: float) -> None:
        """Change γ; cached results are dropped."""
        afir_alpha_kj_per_mol_angstrom(gamma_kj_per_mol)
        self.gamma_kj_per_mol = float(gamma_kj_per_mol)
        self.reset()

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: list[str] | None = None,
        system_changes: list[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties or ["energy"], system_changes)
        assert self.atoms is not None  # set by Calculator.calculate
        if self.atoms.pbc.any():
            raise AFIRParameterError("AFIR is implemented for non-periodic structures only")
        work = self.atoms.copy()
        work.calc = self.base
        energy = float(work.get_potential_energy())
        forces = np.asarray(work.get_forces())
        bias, gradient, distance = afir_bias(
            self.atoms.positions,
            self.atoms.numbers,
            self.fragment_a,
            self.fragment_b,
            self.gamma_kj_per_mol,
            self.rho,
        )
        self.base_energy_ev = energy
        self.afir_distance_angstrom = distance
        self.results = {
            "energy": energy + bias,
            "free_energy": energy + bias,
            "forces": forces - gradient,
        }


@dataclass
class AFIRSnapshot:
    """One geometry along an AFIR path."""

    positions_angstrom: np.ndarray
    gamma_kj_per_mol: float
    gamma_index: int
    step: int  # optimiser steps since the start of the path
    energy_hartree: float  # unbiased energy of the base calculator
    afir_distance_angstrom: float
    converged: bool  # the relaxation at this γ had converged here


@dataclass
class AFIRPath:
    """Snapshots of one path and, if it ended early, the error that stopped it."""

    snapshots: list[AFIRSnapshot] = field(default_factory=list)
    error: Exception | None = None


def afir_path(
    atoms: Atoms,
    afir: AFIRCalculator,
    gammas_kj_per_mol: Sequence[float],
    *,
    optimizer: str = "FIRE",
    fmax_ev_per_angstrom: float = 0.1,
    max_steps_per_gamma: int = 50,
    snapshot_every: int = 10,
    max_step_angstrom: float = 0.2,
    stop_on: tuple[type[Exception], ...] = (),
) -> AFIRPath:
    """Ramp γ over a schedule, relax at each γ, and keep snapshots along the way.

    A snapshot is taken every ``snapshot_every`` optimiser steps and at the
    end of each relaxation (never the unmoved start geometry).

    Parameters
    ----------
    atoms
        Start geometry; it is moved along the path (pass a copy to keep it).
    afir
        The biased calculator (its γ is overwritten by the schedule).
    gammas_kj_per_mol
        The γ schedule, e.g. ``[100, 150, 200, 250]``.
    optimizer
        ``"FIRE"``, ``"BFGS"`` or ``"LBFGS"`` (ASE).
    fmax_ev_per_angstrom
        Force convergence of each relaxation.
    max_steps_per_gamma
        Bound on optimiser steps per γ.
    max_step_angstrom
        Largest atomic displacement per optimiser step.
    stop_on
        Exception types (e.g. the engine's SCF failure) that end the path
        early; the snapshots taken so far are returned with the error.
    """
    if optimizer not in OPTIMIZERS:
        raise AFIRParameterError(f"unknown optimizer {optimizer!r}; choose {', '.join(OPTIMIZERS)}")
    if not gammas_kj_per_mol:
        raise AFIRParameterError("the gamma schedule is empty")
    if max_steps_per_gamma < 1 or snapshot_every < 1:
        raise AFIRParameterError("max_steps_per_gamma and snapshot_every must be >= 1")

    atoms.calc = afir
    path = AFIRPath()
    try:
        _ramp(
            atoms,
            afir,
            gammas_kj_per_mol,
            path.snapshots,
            optimizer,
            fmax_ev_per_angstrom,
            max_steps_per_gamma,
            snapshot_every,
            max_step_angstrom,
        )
    except stop_on as error:
        path.error = error
    return path


def _ramp(
    atoms: Atoms,
    afir: AFIRCalculator,
    gammas_kj_per_mol: Sequence[float],
    snapshots: list[AFIRSnapshot],
    optimizer: str,
    fmax_ev_per_angstrom: float,
    max_steps_per_gamma: int,
    snapshot_every: int,
    max_step_angstrom: float,
) -> None:
    from ase import optimize

    total_steps = 0
    for gamma_index, gamma in enumerate(gammas_kj_per_mol):
        afir.set_gamma(gamma)
        opt = getattr(optimize, optimizer)(atoms, logfile=None, maxstep=max_step_angstrom)
        last_taken = -1
        converged = False
        for converged in opt.irun(fmax=fmax_ev_per_angstrom, steps=max_steps_per_gamma):
            step = total_steps + opt.nsteps
            if opt.nsteps > 0 and opt.nsteps % snapshot_every == 0:
                snapshots.append(_snapshot(atoms, afir, gamma, gamma_index, step, converged))
                last_taken = step
        total_steps += opt.nsteps
        if last_taken != total_steps and total_steps > 0:
            snapshots.append(_snapshot(atoms, afir, gamma, gamma_index, total_steps, converged))


def _snapshot(
    atoms: Atoms,
    afir: AFIRCalculator,
    gamma: float,
    gamma_index: int,
    step: int,
    converged: bool,
) -> AFIRSnapshot:
    return AFIRSnapshot(
        positions_angstrom=atoms.positions.copy(),
        gamma_kj_per_mol=float(gamma),
        gamma_index=gamma_index,
        step=step,
        energy_hartree=afir.base_energy_ev / units.Hartree,
        afir_distance_angstrom=afir.afir_distance_angstrom,
        converged=bool(converged),
    )


def random_pair(n_atoms: int, rng: np.random.Generator) -> tuple[int, int]:
    """Two distinct atom indices, the pair drawn uniformly from all N(N−1)/2 pairs."""
    if n_atoms < 2:
        raise AFIRParameterError(f"a pair needs at least 2 atoms, got {n_atoms}")
    i, j = rng.choice(n_atoms, size=2, replace=False)
    return int(min(i, j)), int(max(i, j))
