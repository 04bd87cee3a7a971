"""Validated settings of the structure generators (``interphase generate --config FILE``).

One pydantic model per generator kind plus :class:`MixedConfig` that runs
several of them in one call. Every field has a description and unknown keys
are refused, so a typo in a JSON file is an error, not a silently ignored
setting.

Every float must be finite, and every count has an upper bound that a real
run never reaches (named in the field's description), so a typo such as
``n_per_packing: 1.0e+9`` is refused before anything is generated or stored.
Seeds lie in ``[0, SEED_MAX]``: numpy's generators refuse negative seeds, and
seeds are stored in 32-bit integer columns (PostgreSQL ``INTEGER``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Packing = Literal["bcc", "fcc", "sc"]
XTBMethod = Literal["GFN2-xTB", "GFN1-xTB"]

#: Largest seed: fits numpy's ``default_rng``, a 32-bit signed integer column and
#: the range :func:`interphase.campaign.records.derived_seed` draws from.
SEED_MAX = 2**31 - 1
#: Most structures one generator setting asks for (per packing, per cluster, paths).
MAX_STRUCTURES = 100_000
#: Most atoms asked for directly (a cluster, a Li fragment).
MAX_ATOMS = 10_000
#: Most repeats of a unit cell along one direction, or layers of a slab.
MAX_REPEATS = 30
#: Largest Miller index of a surface.
MAX_MILLER = 10
#: Most optimisation or MD steps of one run.
MAX_STEPS = 1_000_000
#: Most items cut or tried per snapshot (clusters, attempts).
MAX_PER_SNAPSHOT = 1_000
#: Largest total charge of a structure (e), in magnitude.
MAX_CHARGE = 100

Seed = Annotated[int, Field(ge=0, le=SEED_MAX)]
Repeats = Annotated[int, Field(ge=1, le=MAX_REPEATS)]
MillerIndex = Annotated[int, Field(ge=-MAX_MILLER, le=MAX_MILLER)]
Miller = tuple[MillerIndex, MillerIndex, MillerIndex]


class _Config(BaseModel):
    # allow_inf_nan=False: .inf or .nan in a file is refused (pydantic allows them by default).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _check_miller(miller: Miller, where: str) -> None:
    if not any(miller):
        raise ValueError(f"{where}: the Miller index (0, 0, 0) is no surface")


class DriverSettings(_Config):
    """The GFN2-xTB driver of AFIR and MD (the labeling engine's tblite harness)."""

    method: XTBMethod = Field(default="GFN2-xTB", description="tblite method driving the dynamics.")
    electronic_temperature_k: float = Field(
        default=1000.0,
        gt=0,
        description="Fermi smearing (K); metallic Li needs well above 300 K to converge the SCF.",
    )
    fallback_settings: list[dict[str, float]] = Field(
        default=[
            {"max_iterations": 1000, "mixer_damping": 0.2},
            {"max_iterations": 1000, "electronic_temperature_k": 5000.0},
        ],
        description="tblite settings tried in turn when the SCF of a step does not converge.",
    )


class LatticeConfig(_Config):
    """Li lattice noise: bulk supercells, clusters and slabs."""

    kinds: list[Literal["bulk", "cluster", "slab"]] = Field(
        default=["bulk", "cluster", "slab"], min_length=1, description="Outputs to make."
    )
    packings: list[Packing] = Field(
        default=["bcc", "fcc", "sc"], min_length=1, description="Crystal packings."
    )
    n_per_packing: int = Field(
        default=2,
        ge=1,
        le=MAX_STRUCTURES,
        description="Structures per kind, packing (and Miller index for slabs); at most "
        f"{MAX_STRUCTURES}.",
    )
    bcc_lattice_constant_angstrom: float = Field(
        default=3.49, gt=0, description="BCC constant (Å); others get the same atomic volume."
    )
    scale_range: tuple[float, float] = Field(
        default=(0.95, 1.05), description="Isotropic scale factor drawn uniformly in this range."
    )
    anisotropy: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="Per-axis stretch drawn uniformly in [1 - anisotropy, 1 + anisotropy].",
    )
    noise_angstrom: float = Field(default=0.05, ge=0, description="Gaussian position noise (Å).")
    bulk_repeats: tuple[Repeats, Repeats, Repeats] = Field(
        default=(2, 2, 2),
        description=f"Supercell repeats of the cubic cell for bulk outputs (1 to {MAX_REPEATS}).",
    )
    cluster_n_atoms: int = Field(
        default=20, ge=1, le=MAX_ATOMS, description=f"Atoms per cluster (at most {MAX_ATOMS})."
    )
    cluster_source_repeats: Repeats | None = Field(
        default=None,
        description="Repeats of the cubic cell clusters are cut from (default: just large "
        f"enough; at most {MAX_REPEATS}).",
    )
    slab_miller: list[Miller] = Field(
        default=[(1, 0, 0), (1, 1, 0), (1, 1, 1)],
        min_length=1,
        description=f"Surfaces of slabs (indices from -{MAX_MILLER} to {MAX_MILLER}).",
    )
    slab_layers: Repeats = Field(
        default=4, description=f"Surface cells stacked along z (1 to {MAX_REPEATS})."
    )
    slab_repeats_xy: tuple[Repeats, Repeats] = Field(
        default=(2, 2), description=f"In-plane repeats (1 to {MAX_REPEATS})."
    )
    vacuum_angstrom: float = Field(default=8.0, gt=0, description="Vacuum each side of a slab (Å).")
    seed: Seed = Field(
        default=0, description=f"Random seed, 0 to {SEED_MAX} (same seed, same structures)."
    )

    @model_validator(mode="after")
    def _check(self) -> LatticeConfig:
        low, high = self.scale_range
        if not 0 < low <= high:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {self.scale_range}")
        for miller in self.slab_miller:
            _check_miller(miller, "slab_miller")
        return self


class MoleculesConfig(_Config):
    """Electrolyte molecules from SMILES and random molecular clusters with Li."""

    molecules: list[str] = Field(
        default=["EC", "PC", "VC", "DMC", "DEC", "EMC", "FEC"],
        description="Single molecules: electrolyte names, 'Li', 'Li+' or SMILES.",
    )
    conformers: int = Field(
        default=1,
        ge=1,
        le=MAX_PER_SNAPSHOT,
        description=f"Embeddings (seeds) per single molecule (at most {MAX_PER_SNAPSHOT}).",
    )
    clusters: list[list[str]] = Field(
        default=[["EC", "EC", "Li+"], ["EC", "DMC", "Li"]],
        description="Cluster compositions, one species per molecule.",
    )
    n_per_cluster: int = Field(
        default=2,
        ge=1,
        le=MAX_STRUCTURES,
        description=f"Random clusters per composition (at most {MAX_STRUCTURES}).",
    )
    region: Literal["sphere", "box"] = Field(default="sphere", description="Placement region.")
    size_angstrom: float = Field(
        default=3.0, gt=0, description="Sphere radius or box edge for molecule centres (Å)."
    )
    min_distance_angstrom: float = Field(
        default=2.0, gt=0, description="Smallest distance between atoms of different molecules (Å)."
    )
    seed: Seed = Field(default=0, description=f"Random seed (0 to {SEED_MAX}).")


class AFIRConfig(_Config):
    """AFIR paths: random atom pairs in a molecule/cluster, or two fragments forced together."""

    mode: Literal["pair", "fragments"] = Field(default="pair", description="Pair or fragment AFIR.")
    start_species: list[str] = Field(
        default=["EC"], min_length=1, description="Pair mode: start cluster species."
    )
    fragment_a: list[str] = Field(default=["EC"], description="Fragments mode: species of A.")
    fragment_b: list[str] = Field(
        default=[], description="Fragments mode: species of B (used when li_cluster_atoms is 0)."
    )
    li_cluster_atoms: int = Field(
        default=20,
        ge=0,
        le=MAX_ATOMS,
        description="Fragments mode: B is a BCC Li cluster of this many atoms (at most "
        f"{MAX_ATOMS}).",
    )
    separation_angstrom: float = Field(
        default=3.0, gt=0, description="Fragments mode: initial gap between the fragments (Å)."
    )
    n_paths: int = Field(
        default=2,
        ge=1,
        le=MAX_STRUCTURES,
        description=f"Number of AFIR paths (at most {MAX_STRUCTURES}).",
    )
    direction: Literal["push", "pull"] = Field(default="push", description="ρ = +1 or −1.")
    gammas_kj_per_mol: list[Annotated[float, Field(ge=0)]] = Field(
        default=[100.0, 150.0, 200.0, 250.0],
        min_length=1,
        description="γ schedule (kJ/mol, non-negative).",
    )
    optimizer: Literal["FIRE", "BFGS", "LBFGS"] = Field(
        default="FIRE", description="ASE optimizer."
    )
    fmax_ev_per_angstrom: float = Field(default=0.1, gt=0, description="Force convergence (eV/Å).")
    max_steps_per_gamma: int = Field(
        default=30,
        ge=1,
        le=MAX_STEPS,
        description=f"Optimizer steps per γ, at most (no more than {MAX_STEPS}).",
    )
    snapshot_every: int = Field(
        default=10, ge=1, le=MAX_STEPS, description="Snapshot interval (steps)."
    )
    max_step_angstrom: float = Field(default=0.2, gt=0, description="Largest step per atom (Å).")
    driver: DriverSettings = Field(default_factory=DriverSettings, description="xTB driver.")
    seed: Seed = Field(default=0, description=f"Random seed (0 to {SEED_MAX}).")


class InterfaceConfig(_Config):
    """An EC/Li-metal interface: a periodic Li slab with molecules packed above."""

    species: list[str] = Field(default=["EC", "EC"], description="Molecules above the slab.")
    packing: Packing = Field(default="bcc", description="Packing of the Li slab.")
    miller: Miller = Field(
        default=(1, 0, 0),
        description=f"Li surface (indices from -{MAX_MILLER} to {MAX_MILLER}).",
    )
    layers: Repeats = Field(
        default=3, description=f"Slab layers (surface cells along z; 1 to {MAX_REPEATS})."
    )
    repeats_xy: tuple[Repeats, Repeats] = Field(
        default=(2, 2), description=f"In-plane repeats (1 to {MAX_REPEATS})."
    )
    lattice_constant_angstrom: float = Field(default=3.49, gt=0, description="Li cubic a (Å).")
    gap_angstrom: float = Field(default=1.5, ge=0, description="Gap above the slab (Å).")
    region_height_angstrom: float = Field(default=3.0, gt=0, description="Molecule layer (Å).")
    vacuum_angstrom: float = Field(default=4.0, gt=0, description="Vacuum above molecules (Å).")
    min_distance_angstrom: float = Field(default=2.0, gt=0, description="Placement minimum (Å).")

    @model_validator(mode="after")
    def _check(self) -> InterfaceConfig:
        _check_miller(self.miller, "miller")
        return self


class MDConfig(_Config):
    """Langevin MD of an interface, snapshots, and clusters cut from the snapshots."""

    interface: InterfaceConfig = Field(default_factory=InterfaceConfig, description="Start system.")
    temperature_k: float = Field(default=300.0, gt=0, description="Thermostat temperature (K).")
    timestep_fs: float = Field(default=0.5, gt=0, description="Time step (fs).")
    n_steps: int = Field(
        default=10, ge=0, le=MAX_STEPS, description=f"MD steps (at most {MAX_STEPS})."
    )
    snapshot_every: int = Field(
        default=5, ge=1, le=MAX_STEPS, description="Snapshot interval (steps)."
    )
    friction_per_fs: float = Field(default=0.01, gt=0, description="Langevin friction (1/fs).")
    clusters_per_snapshot: int = Field(
        default=2,
        ge=0,
        le=MAX_PER_SNAPSHOT,
        description=f"Clusters cut per snapshot (at most {MAX_PER_SNAPSHOT}).",
    )
    cutoff_angstrom: float = Field(default=4.5, gt=0, description="Cluster cutoff radius (Å).")
    below_surface_angstrom: float = Field(
        default=2.0, ge=0, description="Interface region: depth below the top Li layer (Å)."
    )
    above_surface_angstrom: float = Field(
        default=3.0, ge=0, description="Interface region: height above the top Li layer (Å)."
    )
    cluster_charge: int = Field(
        default=0,
        ge=-MAX_CHARGE,
        le=MAX_CHARGE,
        description=f"Total charge of extracted clusters (e; -{MAX_CHARGE} to {MAX_CHARGE}).",
    )
    max_cluster_attempts: int = Field(
        default=20,
        ge=1,
        le=MAX_PER_SNAPSHOT,
        description=f"Centres tried per cluster before giving up (at most {MAX_PER_SNAPSHOT}).",
    )
    driver: DriverSettings = Field(default_factory=DriverSettings, description="xTB driver.")
    seed: Seed = Field(default=0, description=f"Random seed (0 to {SEED_MAX}).")


class MixedConfig(_Config):
    """Several generators in one call (``interphase generate all``)."""

    lattice: LatticeConfig | None = Field(default=None, description="Lattice noise, if any.")
    molecules: MoleculesConfig | None = Field(default=None, description="Molecules, if any.")
    afir: list[AFIRConfig] = Field(default=[], description="AFIR runs (pair and/or fragments).")
    md: MDConfig | None = Field(default=None, description="MD + interface clusters, if any.")
