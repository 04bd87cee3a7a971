"""Validated settings of the structure generators (``interphase generate --config FILE``).

One pydantic model per generator kind plus :class:`MixedConfig` that runs
several of them in one call. Every field has a description and unknown keys
are refused, so a typo in a JSON file is an error, not a silently ignored
setting.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Packing = Literal["bcc", "fcc", "sc"]
XTBMethod = Literal["GFN2-xTB", "GFN1-xTB"]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
        default=2, ge=1, description="Structures per kind, packing (and Miller index for slabs)."
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
    bulk_repeats: tuple[int, int, int] = Field(
        default=(2, 2, 2), description="Supercell repeats of the cubic cell for bulk outputs."
    )
    cluster_n_atoms: int = Field(default=20, ge=1, description="Atoms per cluster.")
    cluster_source_repeats: int | None = Field(
        default=None,
        ge=1,
        description="Repeats of the cubic cell clusters are cut from (default: just large enough).",
    )
    slab_miller: list[tuple[int, int, int]] = Field(
        default=[(1, 0, 0), (1, 1, 0), (1, 1, 1)], min_length=1, description="Surfaces of slabs."
    )
    slab_layers: int = Field(default=4, ge=1, description="Surface cells stacked along z.")
    slab_repeats_xy: tuple[int, int] = Field(default=(2, 2), description="In-plane repeats.")
    vacuum_angstrom: float = Field(default=8.0, gt=0, description="Vacuum each side of a slab (Å).")
    seed: int = Field(default=0, description="Random seed (same seed, same structures).")

    @model_validator(mode="after")
    def _check(self) -> LatticeConfig:
        low, high = self.scale_range
        if not 0 < low <= high:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {self.scale_range}")
        if min(self.bulk_repeats) < 1 or min(self.slab_repeats_xy) < 1:
            raise ValueError("bulk_repeats and slab_repeats_xy must be >= 1")
        return self


class MoleculesConfig(_Config):
    """Electrolyte molecules from SMILES and random molecular clusters with Li."""

    molecules: list[str] = Field(
        default=["EC", "PC", "VC", "DMC", "DEC", "EMC", "FEC"],
        description="Single molecules: electrolyte names, 'Li', 'Li+' or SMILES.",
    )
    conformers: int = Field(default=1, ge=1, description="Embeddings (seeds) per single molecule.")
    clusters: list[list[str]] = Field(
        default=[["EC", "EC", "Li+"], ["EC", "DMC", "Li"]],
        description="Cluster compositions, one species per molecule.",
    )
    n_per_cluster: int = Field(default=2, ge=1, description="Random clusters per composition.")
    region: Literal["sphere", "box"] = Field(default="sphere", description="Placement region.")
    size_angstrom: float = Field(
        default=3.0, gt=0, description="Sphere radius or box edge for molecule centres (Å)."
    )
    min_distance_angstrom: float = Field(
        default=2.0, gt=0, description="Smallest distance between atoms of different molecules (Å)."
    )
    seed: int = Field(default=0, description="Random seed.")


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
        default=20, ge=0, description="Fragments mode: B is a BCC Li cluster of this many atoms."
    )
    separation_angstrom: float = Field(
        default=3.0, gt=0, description="Fragments mode: initial gap between the fragments (Å)."
    )
    n_paths: int = Field(default=2, ge=1, description="Number of AFIR paths.")
    direction: Literal["push", "pull"] = Field(default="push", description="ρ = +1 or −1.")
    gammas_kj_per_mol: list[float] = Field(
        default=[100.0, 150.0, 200.0, 250.0], min_length=1, description="γ schedule (kJ/mol)."
    )
    optimizer: Literal["FIRE", "BFGS", "LBFGS"] = Field(
        default="FIRE", description="ASE optimizer."
    )
    fmax_ev_per_angstrom: float = Field(default=0.1, gt=0, description="Force convergence (eV/Å).")
    max_steps_per_gamma: int = Field(
        default=30, ge=1, description="Optimizer steps per γ, at most."
    )
    snapshot_every: int = Field(default=10, ge=1, description="Snapshot interval (steps).")
    max_step_angstrom: float = Field(default=0.2, gt=0, description="Largest step per atom (Å).")
    driver: DriverSettings = Field(default_factory=DriverSettings, description="xTB driver.")
    seed: int = Field(default=0, description="Random seed.")


class InterfaceConfig(_Config):
    """An EC/Li-metal interface: a periodic Li slab with molecules packed above."""

    species: list[str] = Field(default=["EC", "EC"], description="Molecules above the slab.")
    packing: Packing = Field(default="bcc", description="Packing of the Li slab.")
    miller: tuple[int, int, int] = Field(default=(1, 0, 0), description="Li surface.")
    layers: int = Field(default=3, ge=1, description="Slab layers (surface cells along z).")
    repeats_xy: tuple[int, int] = Field(default=(2, 2), description="In-plane repeats.")
    lattice_constant_angstrom: float = Field(default=3.49, gt=0, description="Li cubic a (Å).")
    gap_angstrom: float = Field(default=1.5, ge=0, description="Gap above the slab (Å).")
    region_height_angstrom: float = Field(default=3.0, gt=0, description="Molecule layer (Å).")
    vacuum_angstrom: float = Field(default=4.0, gt=0, description="Vacuum above molecules (Å).")
    min_distance_angstrom: float = Field(default=2.0, gt=0, description="Placement minimum (Å).")


class MDConfig(_Config):
    """Langevin MD of an interface, snapshots, and clusters cut from the snapshots."""

    interface: InterfaceConfig = Field(default_factory=InterfaceConfig, description="Start system.")
    temperature_k: float = Field(default=300.0, gt=0, description="Thermostat temperature (K).")
    timestep_fs: float = Field(default=0.5, gt=0, description="Time step (fs).")
    n_steps: int = Field(default=10, ge=0, description="MD steps.")
    snapshot_every: int = Field(default=5, ge=1, description="Snapshot interval (steps).")
    friction_per_fs: float = Field(default=0.01, gt=0, description="Langevin friction (1/fs).")
    clusters_per_snapshot: int = Field(default=2, ge=0, description="Clusters cut per snapshot.")
    cutoff_angstrom: float = Field(default=4.5, gt=0, description="Cluster cutoff radius (Å).")
    below_surface_angstrom: float = Field(
        default=2.0, ge=0, description="Interface region: depth below the top Li layer (Å)."
    )
    above_surface_angstrom: float = Field(
        default=3.0, ge=0, description="Interface region: height above the top Li layer (Å)."
    )
    cluster_charge: int = Field(default=0, description="Total charge of extracted clusters (e).")
    max_cluster_attempts: int = Field(
        default=20, ge=1, description="Centres tried per cluster before giving up."
    )
    driver: DriverSettings = Field(default_factory=DriverSettings, description="xTB driver.")
    seed: int = Field(default=0, description="Random seed.")


class MixedConfig(_Config):
    """Several generators in one call (``interphase generate all``)."""

    lattice: LatticeConfig | None = Field(default=None, description="Lattice noise, if any.")
    molecules: MoleculesConfig | None = Field(default=None, description="Molecules, if any.")
    afir: list[AFIRConfig] = Field(default=[], description="AFIR runs (pair and/or fragments).")
    md: MDConfig | None = Field(default=None, description="MD + interface clusters, if any.")
