"""The sections of a campaign file, each a validated model (:mod:`interphase.campaign.config`).

Where a section configures something another module owns, it shares that
module's settings: ``gp:`` is a :class:`~interphase.gpr.settings.GPSearchSettings`
(with a campaign's own defaults, named there), and ``training:`` takes its
fields from :class:`~interphase.training.settings.TrainingSettings`, so each
field's default, bound and description is written once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from interphase.campaign.limits import (
    MAX_COPIES,
    MAX_FILTER_ATOMS,
    MAX_ITERATIONS,
    MAX_LABEL_BUDGET,
    MAX_LABELS,
    MAX_LEASE_S,
    MAX_STARTS,
    MAX_TIME_LIMIT_S,
    MAX_WALL_CLOCK_HOURS,
    MAX_WORKERS,
)
from interphase.gpr.descriptors import DescriptorSettings
from interphase.gpr.settings import GPFitSettings, GPSearchSettings, Restarts, TrainingIterations
from interphase.labeling.queue.worker_options import MIN_LEASE_S, WorkerOptions
from interphase.structures.config import (
    MAX_PER_SNAPSHOT,
    MAX_STEPS,
    AFIRConfig,
    LatticeConfig,
    MDConfig,
    MoleculesConfig,
)
from interphase.training.settings import TrainingBasics, TrainingSettings

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


def at_most(default: int | None, most: int, description: str, *, least: int = 1) -> Any:
    """A count from ``least`` to ``most``, its description naming the bound."""
    return Field(default=default, ge=least, le=most, description=f"{description} (at most {most}).")


class ConfigModel(BaseModel):
    """Base of every section: unknown keys and non-finite floats are refused."""

    # allow_inf_nan=False: .inf or .nan in a file is refused (pydantic allows them by default).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class RouteConfig(ConfigModel):
    """Which structures one level of theory labels, and how."""

    level: str = Field(description="Level-of-theory name (a key of `levels` or a default level).")
    structures: Literal["periodic", "molecular", "all"] = Field(
        description="Structure class it labels: periodic cells (bulk, slabs), non-periodic "
        "molecules and clusters, or both."
    )
    mode: Literal["all", "selected"] = Field(
        default="selected",
        description="'all': every routed candidate gets a job (the cheap level, charges); "
        "'selected': a seed set, then only candidates the GP is uncertain about.",
    )
    max_atoms: int | None = at_most(None, MAX_FILTER_ATOMS, "Only structures this small (atoms)")
    initial_per_iteration: list[Annotated[int, Field(ge=0, le=MAX_LABELS)]] = Field(
        default=[8],
        description="'selected' mode: seed labels drawn at random per iteration (the last "
        "entry repeats; 0 leaves an iteration to the GP selection alone; 0 to "
        f"{MAX_LABELS} each).",
    )

    def initial_count(self, iteration: int) -> int:
        counts = self.initial_per_iteration or [0]
        return counts[min(iteration, len(counts) - 1)]


class GeneratorsConfig(ConfigModel):
    """Structure generators of one iteration, each with its own settings (seeds are derived)."""

    lattice: list[LatticeConfig] = Field(
        default=[], description="Li lattice noise: bulk supercells, clusters and slabs."
    )
    molecules: list[MoleculesConfig] = Field(
        default=[], description="Electrolyte molecules and molecular clusters with Li."
    )
    afir: list[AFIRConfig] = Field(
        default=[], description="AFIR paths: random atom pairs or cluster-into-cluster."
    )
    md: list[MDConfig] = Field(
        default=[],
        description="GFN2-xTB MD of a Li/electrolyte interface with interface-cluster extraction.",
    )
    iterations: Literal["first", "all"] = Field(
        default="first",
        description="Run the generators in the first iteration only (later candidates come "
        "from exploration with the trained model) or in every iteration.",
    )


class GPConfig(GPSearchSettings):
    """Local GPs: one per subset (composition, size, periodicity) and level.

    The search settings of ``interphase gpr fit``, with a shorter search by
    default: a campaign refits its GPs every iteration.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=False)

    training_iterations: TrainingIterations = 30
    restarts: Restarts = 2
    descriptor_molecular: DescriptorSettings = Field(
        default_factory=DescriptorSettings, description="Descriptor of non-periodic subsets."
    )
    descriptor_periodic: DescriptorSettings = Field(
        default_factory=DescriptorSettings, description="Descriptor of periodic subsets."
    )

    def fit_settings(self, seed: int, subsets: Iterable[tuple[str, bool]]) -> GPFitSettings:
        """The settings of one fit of the ``(subset key, periodic)`` subsets."""
        by_subset = {
            key: self.descriptor_periodic if periodic else self.descriptor_molecular
            for key, periodic in subsets
        }
        search = self.model_dump(include=set(GPSearchSettings.model_fields))
        return GPFitSettings(
            **search,
            seed=seed,
            descriptor=self.descriptor_molecular,
            descriptor_by_subset=by_subset,
        )


class SelectionConfig(ConfigModel):
    """Which candidates get a reference calculation."""

    threshold_mev_per_atom: dict[str, PositiveFloat] = Field(
        default={},
        description="Predicted energy std per atom (meV/atom) above which a candidate is "
        "uncertain, per level; levels not named use `default_threshold_mev_per_atom`.",
    )
    default_threshold_mev_per_atom: float = Field(
        default=5.0, gt=0, description="Threshold of levels not in `threshold_mev_per_atom`."
    )
    max_picks_per_level: int = at_most(
        20, MAX_LABELS, "Most uncertainty picks per level per iteration", least=0
    )
    min_rmsd_angstrom: float = Field(
        default=0.05, ge=0, description="Minimum RMSD (Å) between two picks of one subset."
    )

    def threshold(self, level: str) -> float:
        """Threshold of ``level`` (meV/atom)."""
        return self.threshold_mev_per_atom.get(level, self.default_threshold_mev_per_atom)


class AugmentConfig(ConfigModel):
    """GPR-ANN augmentation: displaced copies of reference structures with GP energies."""

    enabled: bool = Field(default=True, description="Augment after the refit.")
    copies: int = at_most(5, MAX_COPIES, "Copies M per reference structure")
    delta_angstrom: float = Field(default=0.03, gt=0, description="Displacement width δ (Å).")
    std_filter_mev_per_atom: float | None = Field(
        default=None, gt=0, description="Keep copies whose GP std is below this (meV/atom)."
    )
    levels: list[str] | None = Field(
        default=None, description="Levels to augment (default: every level with a GP)."
    )


class TrainingConfig(ConfigModel, TrainingBasics):
    """Multi-head training, one head per level of theory (a `TrainingSettings` per iteration)."""

    warm_start: bool = Field(
        default=True, description="Start from the previous iteration's model's parameters."
    )
    synthetic: bool = Field(default=True, description="Train on synthetic (GP) energies too.")
    settings: dict[str, Any] = Field(
        default={},
        description="Further `TrainingSettings` fields (batch_size, learning_rate, model, loss).",
    )

    def training_settings(self, seed: int, heads: list[str], campaign_id: int) -> TrainingSettings:
        values = {
            **self.settings,
            **self.model_dump(include=set(TrainingBasics.model_fields)),
            "seed": seed,
        }
        data = dict(values.pop("data", {}))
        data.update(heads=heads, campaign_id=campaign_id, synthetic=self.synthetic)
        return TrainingSettings.model_validate({**values, "data": data})


class ExplorationConfig(ConfigModel):
    """MD with the newly trained model; its frames are the next iteration's candidates."""

    enabled: bool = Field(default=True, description="Explore after training.")
    head: str | None = Field(
        default=None, description="Head driving the MD (default: the first level in routing)."
    )
    starts: int = at_most(4, MAX_STARTS, "Starting structures per iteration")
    start_from: Literal["labeled", "candidates"] = Field(
        default="labeled",
        description="Draw starts from the campaign's labeled training structures or from "
        "this iteration's candidates.",
    )
    max_atoms: int | None = at_most(None, MAX_FILTER_ATOMS, "Only starts this small (atoms)")
    new_starts_each_iteration: bool = Field(
        default=False,
        description="Draw new starting structures every iteration; by default every "
        "iteration explores from the same starts (of the first iteration) with a new "
        "model, so its candidates' uncertainty shows what the model learned.",
    )
    temperatures_k: list[PositiveFloat] = Field(
        default=[300.0],
        min_length=1,
        description="MD temperatures (K, positive), cycled over the starts.",
    )
    steps: int = at_most(200, MAX_STEPS, "MD steps per run")
    timestep_fs: float = Field(default=0.5, gt=0, description="Time step (fs).")
    snapshot_every: int = at_most(20, MAX_STEPS, "Keep a frame every N steps")
    clusters_per_frame: int = at_most(
        0, MAX_PER_SNAPSHOT, "Periodic starts: clusters cut around random atoms per frame", least=0
    )
    cluster_cutoff_angstrom: float = Field(
        default=4.5, gt=0, description="Radius of extracted clusters (Å)."
    )
    max_energy_jump_ev_per_atom: float = Field(
        default=0.5, gt=0, description="Stop a run whose energy jumps more than this per step."
    )
    max_force_ev_per_angstrom: float = Field(
        default=30.0, gt=0, description="Stop a run whose largest force exceeds this (eV/Å)."
    )


class EvaluationConfig(ConfigModel):
    """The fixed test split: labeled like the rest, never fitted or trained on."""

    test_fraction: float = Field(
        default=0.1, ge=0, lt=1, description="Fraction of the first iteration's candidates."
    )
    max_test_structures: int = at_most(40, MAX_LABELS, "Cap on the test split", least=0)


class LabelingConfig(ConfigModel):
    """How the campaign runs its labeling jobs (the job queue)."""

    workers: int | None = Field(
        default=None,
        ge=1,
        le=MAX_WORKERS,
        exclude=True,
        description=f"Old name of executor.workers (at most {MAX_WORKERS}), moved there when "
        "the campaign is read; as is gp.workers.",
    )
    min_success_fraction: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="A labeling step proceeds once this fraction of its jobs succeeded; the "
        "failures are listed in the iteration summary for `jobs resubmit`.",
    )
    lease_s: float = Field(
        default=60.0,
        ge=MIN_LEASE_S,
        le=MAX_LEASE_S,
        description=f"Job lease (s, 5 to {MAX_LEASE_S:.0f}): how soon a dead worker's job returns.",
    )
    time_limit_s: float | None = Field(
        default=None,
        gt=0,
        le=MAX_TIME_LIMIT_S,
        description=f"Wall-clock limit per isolated job (s; at most {MAX_TIME_LIMIT_S:.0f}; "
        "default: the queue's).",
    )

    def worker_options(self) -> WorkerOptions:
        """How the campaign's workers run jobs: this lease, and the time limit when set."""
        if self.time_limit_s is None:
            return WorkerOptions(lease_s=self.lease_s)
        return WorkerOptions(lease_s=self.lease_s, time_limit_s=self.time_limit_s)


class StoppingConfig(ConfigModel):
    """When the campaign stops; the rule that fired is recorded."""

    max_iterations: int = at_most(3, MAX_ITERATIONS, "Most iterations")
    uncertain_fraction_below: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Stop once the uncertain fraction of the pool is below.",
    )
    label_budget: dict[str, Annotated[int, Field(ge=0, le=MAX_LABEL_BUDGET)]] = Field(
        default={},
        description="Most reference labels per level that the campaign computes (reused "
        f"labels are free; 0 to {MAX_LABEL_BUDGET}).",
    )
    cpu_hours_budget: dict[str, NonNegativeFloat] = Field(
        default={},
        description="Most estimated CPU hours per level (hybrid DFT: 7e-7·n_basis²·n_aux + 1 "
        "CPU-s per calculation; other engines: measured job time).",
    )
    validated: bool = Field(
        default=False,
        description="Stop once every check of the validation suites passes (needs "
        "`validation.suites`).",
    )
    wall_clock_hours: float | None = Field(
        default=None,
        gt=0,
        le=MAX_WALL_CLOCK_HOURS,
        description="Most wall-clock hours of running, over all resumes (at most "
        f"{MAX_WALL_CLOCK_HOURS:.0f}).",
    )


class ValidationSuiteConfig(ConfigModel):
    """One validation suite run on heads of the campaign's model (``interphase.validation``)."""

    suite: Literal["metal", "electrolyte"] = Field(
        description="metal (a periodic level: Li bcc unless settings name another crystal) "
        "or electrolyte (a molecular level: EC frequencies, DMC conformers, Li+-EC binding)."
    )
    heads: list[str] | None = Field(
        default=None,
        description="Heads to check (default: every routed level of the suite's kind).",
    )
    settings: dict[str, Any] = Field(
        default={},
        description="Suite settings, e.g. for metal: symbol, lattice, a_guess_angstrom, "
        "phonon_supercell, vacancy_repeat.",
    )
    tolerances: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default={},
        description="Tolerances overriding the suite's: a fraction for the metal suite's "
        "properties (a0_angstrom: 0.005), the property's unit for the electrolyte suite's "
        "(ec_frequency_rms_cm1: 30).",
    )


class ValidationConfig(ConfigModel):
    """Property checks of the trained heads against their reference levels, in the loop."""

    suites: list[ValidationSuiteConfig] = Field(
        default=[], description="Suites to run (none: no validation)."
    )
    every: int = at_most(
        1, MAX_ITERATIONS, "Run every this many iterations (and always in the last one)"
    )


class SeedDataConfig(ConfigModel):
    """Labeled data already in the database that the campaign trains on from iteration 0.

    The fields that are set select together (all must match); at least one is set.
    """

    file: str | None = Field(
        default=None, description="Structures imported from this file (its name, as imported)."
    )
    generator: str | None = Field(
        default=None, description="Structures of this generator (`import`, `lattice_bulk` …)."
    )
    campaign: str | None = Field(
        default=None, description="The labels another campaign trained on (its name)."
    )
    levels: list[str] | None = Field(
        default=None, description="Only labels at these levels (default: every routed level)."
    )

    @model_validator(mode="after")
    def _selects(self) -> SeedDataConfig:
        if not (self.file or self.generator or self.campaign or self.levels):
            raise ValueError("seed_data: give file, generator, campaign or levels")
        return self
