"""The GPR-ANN paper's H2 benchmark (paper 002, section II.5 and Figure 2), reproduced.

H2 is a Lennard-Jones dimer from ASE (defaults: σ = 1 Å, ε = 1 eV, rc = 3σ, so
the minimum is at 2^(1/6) Å ≈ 1.12 Å). Seven training bond lengths between 1 and
2 Å, 200 test bond lengths between 0.95 and 2.05 Å. A committee of 10 small
networks (per-atom N-5-5-1 tanh on a 10-term Chebyshev radial descriptor with an
8 Å cutoff, as in the paper) is trained four ways:

* energy only: the 7 reference energies;
* Taylor-ANN: plus M displaced copies per reference, energies by first-order
  extrapolation E(x + d) ≈ E(x) + ∇E·d;
* GPR-ANN: plus the same copies labeled by interphase's subset GP
  (:func:`interphase.gpr.augment.augment_positions`, fitted on the 7 energies
  and forces);
* direct force training: 7 energies and forces.

Copies displace every Cartesian component by N(0, δ²) (interphase's
augmentation); the paper's H2 figure uses ±δ copies along the bond (M = 2,
"7 + 14 = 21" energies). Output: a table of energy/force MAE of the committee
mean and mean committee SD over the 200 test points vs δ, as CSV and markdown,
and a PNG.

    .venv/bin/python bench/gpr_ann_h2.py            # ~1 min on 2 cores
    .venv/bin/python bench/gpr_ann_h2.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.calculators.lj import LennardJones

from interphase.gpr.augment import augment_positions, displaced_copies
from interphase.gpr.gp import EnergyGradientGP

RESULTS = Path(__file__).parent / "results"
DELTAS_ANGSTROM = (0.003, 0.005, 0.008, 0.013, 0.021, 0.034, 0.055)
CUTOFF_ANGSTROM = 8.0
CHEBYSHEV_ORDER = 10


def lj_energy_and_gradient(distance: float) -> tuple[float, np.ndarray, np.ndarray]:
    """LJ energy (eV), positions (2, 3) and gradient dE/dx (2, 3, eV/Å) of H2 at r."""
    atoms = Atoms("H2", positions=[[0.0, 0.0, 0.0], [distance, 0.0, 0.0]])
    atoms.calc = LennardJones()
    return atoms.get_potential_energy(), atoms.positions.copy(), -atoms.get_forces()


def lj_reference(distances: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Energies (n,), positions (n, 2, 3), gradients (n, 2, 3) at the given bond lengths."""
    rows = [lj_energy_and_gradient(float(r)) for r in distances]
    return (
        np.array([e for e, _, _ in rows]),
        np.stack([p for _, p, _ in rows]),
        np.stack([g for _, _, g in rows]),
    )


class Committee(torch.nn.Module):
    """K independent per-atom networks N-5-5-1 (tanh) evaluated in one batched pass."""

    def __init__(self, members: int, n_in: int, hidden: int = 5, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)

        def layer(fan_in: int, fan_out: int) -> tuple[torch.nn.Parameter, torch.nn.Parameter]:
            bound = 1.0 / np.sqrt(fan_in)
            w = (torch.rand(members, fan_in, fan_out, generator=generator) * 2 - 1) * bound
            b = (torch.rand(members, 1, fan_out, generator=generator) * 2 - 1) * bound
            return torch.nn.Parameter(w.double()), torch.nn.Parameter(b.double())

        self.w1, self.b1 = layer(n_in, hidden)
        self.w2, self.b2 = layer(hidden, hidden)
        self.w3, self.b3 = layer(hidden, 1)

    @property
    def members(self) -> int:
        return int(self.w1.shape[0])

    def forward(self, descriptor: torch.Tensor) -> torch.Tensor:
        """(K, n, n_in) atomic descriptors, one set per member -> (K, n) atomic energies."""
        x = torch.tanh(descriptor @ self.w1 + self.b1)
        x = torch.tanh(x @ self.w2 + self.b2)
        return (x @ self.w3 + self.b3).squeeze(-1)


def chebyshev_descriptor(distance: torch.Tensor) -> torch.Tensor:
    """(..., n) bond lengths -> (..., n, order) Chebyshev terms times a cosine cutoff."""
    x = 2.0 * distance / CUTOFF_ANGSTROM - 1.0
    cutoff = 0.5 * (torch.cos(torch.pi * distance / CUTOFF_ANGSTROM) + 1.0)
    terms = [torch.ones_like(x), x]
    for _ in range(CHEBYSHEV_ORDER - 2):
        terms.append(2 * x * terms[-1] - terms[-2])
    return torch.stack(terms, dim=-1) * cutoff[..., None]


@dataclass
class TrainingSet:
    distances_angstrom: np.ndarray  # (n,)
    energies_ev: np.ndarray  # (n,)
    forces_ev_per_angstrom: np.ndarray | None = None  # (n,) -dE/dr, direct training only


def committee_energy_and_slope(
    committee: Committee, distances: np.ndarray, create_graph: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, n) molecular energies and dE/dr of every member.

    Each member gets its own copy of the bond lengths, so one backward pass gives
    every member's slope. Both atoms see the same environment: E = 2 E_atom(r).
    """
    r = torch.tensor(distances).expand(committee.members, -1).clone().requires_grad_(True)
    energy = 2.0 * committee(chebyshev_descriptor(r))
    (slope,) = torch.autograd.grad(energy.sum(), r, create_graph=create_graph, retain_graph=True)
    return energy, slope


def train_committee(
    data: TrainingSet, *, members: int, steps: int, seed: int, force_weight: float = 1.0
) -> Committee:
    """Adam on the (normalised) energy loss, plus the force loss when forces are given."""
    committee = Committee(members, CHEBYSHEV_ORDER, seed=seed)
    energy = torch.tensor(data.energies_ev)
    with_forces = data.forces_ev_per_angstrom is not None
    scale = energy.std().clamp(min=1e-6)
    optimiser = torch.optim.Adam(committee.parameters(), lr=0.01)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps, eta_min=1e-4)
    for _ in range(steps):
        optimiser.zero_grad()
        predicted, slope = committee_energy_and_slope(
            committee, data.distances_angstrom, create_graph=with_forces
        )
        loss = (((predicted - energy) / scale) ** 2).mean(dim=1).sum()
        if data.forces_ev_per_angstrom is not None:
            force = torch.tensor(data.forces_ev_per_angstrom)
            loss = loss + force_weight * (((-slope - force) / scale) ** 2).mean(dim=1).sum()
        loss.backward()
        optimiser.step()
        schedule.step()
    return committee


def evaluate(committee: Committee, distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, n) energies (eV) and forces -dE/dr (eV/Å) of every member."""
    energy, slope = committee_energy_and_slope(committee, distances)
    return energy.detach().numpy(), -slope.detach().numpy()


def bond_length(positions: np.ndarray) -> np.ndarray:
    """(n, 2, 3) -> (n,) H-H distances."""
    return np.linalg.norm(positions[:, 1] - positions[:, 0], axis=1)


def augmented_sets(
    reference: tuple[np.ndarray, np.ndarray, np.ndarray],
    gp: EnergyGradientGP,
    delta: float,
    copies: int,
    seed: int,
    std_filter_ev_per_atom: float | None,
) -> tuple[TrainingSet, TrainingSet, float, float]:
    """Taylor and GPR training sets on the same displaced copies, and their label MAEs."""
    energies, positions, gradients = reference
    rng = np.random.default_rng(seed)
    taylor_r, taylor_e, gpr_r, gpr_e, true_e, kept = [], [], [], [], [], []
    for k in range(len(energies)):
        copy_seed = int(rng.integers(2**31))
        displaced = displaced_copies(positions[k], copies, delta, np.random.default_rng(copy_seed))
        taylor = energies[k] + np.einsum("mai,ai->m", displaced - positions[k], gradients[k])
        gpr = augment_positions(
            gp,
            positions[k],
            copies=copies,
            delta_angstrom=delta,
            std_filter_hartree_per_atom=std_filter_ev_per_atom,
            seed=copy_seed,
        )
        assert np.allclose(gpr.positions_angstrom, displaced)  # same copies for both
        r = bond_length(displaced)
        taylor_r += list(r)
        taylor_e += list(taylor)
        # The GP was fitted in eV, so its "hartree" values are eV here.
        gpr_r += list(r[gpr.kept])
        gpr_e += list(gpr.energy_hartree[gpr.kept])
        kept += list(gpr.kept)
        true_e += list(lj_reference(r)[0])
    base_r, base_e = bond_length(positions), energies
    taylor_set = TrainingSet(np.concatenate([base_r, taylor_r]), np.concatenate([base_e, taylor_e]))
    gpr_set = TrainingSet(np.concatenate([base_r, gpr_r]), np.concatenate([base_e, gpr_e]))
    true = np.array(true_e)
    taylor_mae = float(np.mean(np.abs(np.array(taylor_e) - true)))
    gpr_mae = float(np.mean(np.abs(np.array(gpr_e) - true[np.array(kept)]))) if gpr_e else 0.0
    return taylor_set, gpr_set, taylor_mae, gpr_mae


def fit_gp(reference: tuple[np.ndarray, np.ndarray, np.ndarray]) -> EnergyGradientGP:
    """interphase's default: hyperparameters by marginal likelihood on the 7 points."""
    energies, positions, gradients = reference
    # Energies in eV go straight into the GP (its units are whatever the labels are).
    return EnergyGradientGP(np.array([1, 1]), periodic=False, training_iterations=100).fit(
        positions, energies, gradients
    )


def validated_gp(reference: tuple[np.ndarray, np.ndarray, np.ndarray]) -> EnergyGradientGP:
    """The paper's protocol: kernel chosen by energy error on extra reference points.

    The paper tuned on its 200 test points; here 20 validation bond lengths
    between the training points (none of them test points) are used instead.
    """
    gp = fit_gp(reference)
    validation_e, validation_x, _ = lj_reference(np.linspace(1.02, 1.98, 20))
    scale = gp.hyperparameters()["outputscale_hartree2"]
    best = (np.inf, 0.0, 0.0)
    for lengthscale in np.geomspace(0.03, 0.5, 16):
        for factor in (0.1, 1.0, 10.0, 100.0, 1000.0):
            gp.set_hyperparameters(
                lengthscale_angstrom=lengthscale, outputscale_hartree2=scale * factor
            )
            error = float(np.abs(gp.predict(validation_x).energy_hartree - validation_e).mean())
            best = min(best, (error, lengthscale, scale * factor))
    return gp.set_hyperparameters(lengthscale_angstrom=best[1], outputscale_hartree2=best[2])


def metrics(committee: Committee, test_r: np.ndarray, test_e: np.ndarray, test_f: np.ndarray):  # type: ignore[no-untyped-def]
    energies, forces = evaluate(committee, test_r)
    return {
        "energy_mae_ev": float(np.mean(np.abs(energies.mean(0) - test_e))),
        "energy_msd_ev": float(np.mean(energies.std(0))),
        "force_mae_ev_per_angstrom": float(np.mean(np.abs(forces.mean(0) - test_f))),
        "force_msd_ev_per_angstrom": float(np.mean(forces.std(0))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 members, few steps, 2 deltas")
    parser.add_argument("--copies", type=int, default=2, help="copies M per reference (paper: 2)")
    parser.add_argument("--steps", type=int, default=3000, help="Adam steps per committee")
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--std-filter",
        type=float,
        default=0.05,
        help="keep GP-labeled copies with energy std per atom below this (eV); 0: keep all",
    )
    args = parser.parse_args()
    args.std_filter = args.std_filter or None
    torch.set_num_threads(1)
    members, steps = (3, 300) if args.quick else (args.members, args.steps)
    deltas = DELTAS_ANGSTROM[::3] if args.quick else DELTAS_ANGSTROM

    train_r = np.linspace(1.0, 2.0, 7)
    test_r = np.linspace(0.95, 2.05, 200)
    reference = lj_reference(train_r)
    test_e = lj_reference(test_r)[0]
    test_f = np.array([-g[1, 0] for g in lj_reference(test_r)[2]])  # force on atom 2 along x
    gps = {"ML": fit_gp(reference), "validated": validated_gp(reference)}
    for name, gp in gps.items():
        print(f"GP ({name}) hyperparameters, eV units: {gp.hyperparameters()}")

    rows = []
    started = time.perf_counter()
    ref_forces = np.array([-g[1, 0] for g in reference[2]])
    baselines = {
        "energy-only": TrainingSet(train_r, reference[0]),
        "direct-force": TrainingSet(train_r, reference[0], ref_forces),
    }
    for name, data in baselines.items():
        committee = train_committee(data, members=members, steps=steps, seed=args.seed)
        rows.append(
            {"method": name, "delta_angstrom": "", "label_mae_ev": ""}
            | metrics(committee, test_r, test_e, test_f)
        )
        print(rows[-1])
    for delta in deltas:
        variants = []
        for gp_name, gp in gps.items():
            taylor, gpr, taylor_mae, gpr_mae = augmented_sets(
                reference, gp, delta, args.copies, args.seed, args.std_filter
            )
            variants.append((f"GPR-ANN ({gp_name} GP)", gpr, gpr_mae))
        variants.insert(0, ("Taylor-ANN", taylor, taylor_mae))
        for name, data, label_mae in variants:
            committee = train_committee(data, members=members, steps=steps, seed=args.seed)
            rows.append(
                {"method": name, "delta_angstrom": delta, "label_mae_ev": label_mae}
                | metrics(committee, test_r, test_e, test_f)
            )
            print(rows[-1])
    elapsed = time.perf_counter() - started
    suffix = "-quick" if args.quick else ""
    write_outputs(rows, suffix, elapsed, members, steps, args.copies, args.std_filter)


def write_outputs(
    rows: list[dict],  # type: ignore[type-arg]
    suffix: str,
    elapsed: float,
    members: int,
    steps: int,
    copies: int,
    std_filter: float | None,
) -> None:
    RESULTS.mkdir(exist_ok=True)
    csv_path = RESULTS / f"gpr_ann_h2{suffix}.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        f"committee of {members}, {steps} Adam steps, M = {copies} copies per reference, "
        f"GP std filter {std_filter} eV/atom; "
        f"{elapsed:.0f} s in total",
        "",
        "| method | δ (Å) | synthetic-label MAE (meV) | E MAE (meV) | E MSD (meV) "
        "| F MAE (meV/Å) | F MSD (meV/Å) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        label = f"{1000 * row['label_mae_ev']:.2f}" if row["label_mae_ev"] != "" else "—"
        lines.append(
            f"| {row['method']} | {row['delta_angstrom'] or '—'} | {label} "
            f"| {1000 * row['energy_mae_ev']:.1f} | {1000 * row['energy_msd_ev']:.1f} "
            f"| {1000 * row['force_mae_ev_per_angstrom']:.1f} "
            f"| {1000 * row['force_msd_ev_per_angstrom']:.1f} |"
        )
    (RESULTS / f"gpr_ann_h2{suffix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(rows, RESULTS / f"gpr_ann_h2{suffix}.png")


def plot(rows: list[dict], path: Path) -> None:  # type: ignore[type-arg]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [
        ("energy_mae_ev", "energy MAE (meV)"),
        ("energy_msd_ev", "energy committee SD (meV)"),
        ("force_mae_ev_per_angstrom", "force MAE (meV/Å)"),
        ("force_msd_ev_per_angstrom", "force committee SD (meV/Å)"),
    ]
    figure, axes = plt.subplots(2, 2, figsize=(9, 7), sharex=True)
    for axis, (key, label) in zip(axes.flat, keys, strict=True):
        styles = (
            ("Taylor-ANN", "s-g"),
            ("GPR-ANN (ML GP)", "^-r"),
            ("GPR-ANN (validated GP)", "v-m"),
        )
        for method, style in styles:
            points = [(r["delta_angstrom"], 1000 * r[key]) for r in rows if r["method"] == method]
            axis.plot(*zip(*points, strict=True), style, label=method)
        for method, color in (("energy-only", "purple"), ("direct-force", "blue")):
            value = next(1000 * r[key] for r in rows if r["method"] == method)
            axis.axhline(value, ls="--", color=color, label=method)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_ylabel(label)
        axis.set_xlabel("δ (Å)")
    axes[0, 0].legend(fontsize=8)
    figure.suptitle("H2 (Lennard-Jones): committees of 10 networks, 7 training points")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
