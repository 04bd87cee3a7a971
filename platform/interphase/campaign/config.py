"""The campaign configuration: one YAML or TOML file, validated before anything runs.

Every field has a description and unknown keys are refused, so a typo is an
error with the key's path, not a silently ignored setting. Every float is
finite, physical quantities have their sign, and every count has an upper
bound (:mod:`interphase.campaign.limits`), so nothing that would fail or run
away later is stored.
:func:`load_campaign_config` reads a file, also looks each level's method and
basis up in its engine where it is installed
(:mod:`interphase.campaign.engine_check`), and raises
:class:`CampaignConfigError` with one line naming what is wrong.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from interphase.campaign.limits import (
    MAX_COPIES,
    MAX_EPOCH_SIZE,
    MAX_EPOCHS,
    MAX_FILTER_ATOMS,
    MAX_GP_ITERATIONS,
    MAX_GP_RESTARTS,
    MAX_ITERATIONS,
    MAX_LABEL_BUDGET,
    MAX_LABELS,
    MAX_LEASE_S,
    MAX_STARTS,
    MAX_TIME_LIMIT_S,
    MAX_WALL_CLOCK_HOURS,
    MAX_WORKERS,
    check_executor_counts,
    check_numbers,
    check_training_counts,
)
from interphase.execution import ExecutorSettings
from interphase.gpr.descriptors import DescriptorSettings
from interphase.labeling.levels import DEFAULT_LEVELS, LevelSpec
from interphase.structures.config import (
    MAX_PER_SNAPSHOT,
    MAX_STEPS,
    SEED_MAX,
    AFIRConfig,
    LatticeConfig,
    MDConfig,
    MoleculesConfig,
    Seed,
)
from interphase.training.settings import TrainingSettings

#: Validation context key: also look levels up in their engines (files, not stored configs).
CHECK_ENGINES = "check_engines"

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class CampaignConfigError(ValueError):
    """The campaign file is missing, unreadable or invalid (one line)."""


class _Config(BaseModel):
    # allow_inf_nan=False: .inf or .nan in a file is refused (pydantic allows them by default).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class RouteConfig(_Config):
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
    max_atoms: int | None = Field(
        default=None,
        ge=1,
        le=MAX_FILTER_ATOMS,
        description=f"Only structures with at most this many atoms (up to {MAX_FILTER_ATOMS}).",
    )
    initial_per_iteration: list[Annotated[int, Field(ge=0, le=MAX_LABELS)]] = Field(
        default=[8],
        description="'selected' mode: seed labels drawn at random per iteration (the last "
        "entry repeats; 0 leaves an iteration to the GP selection alone; 0 to "
        f"{MAX_LABELS} each).",
    )

    def initial_count(self, iteration: int) -> int:
        counts = self.initial_per_iteration or [0]
        return counts[min(iteration, len(counts) - 1)]


class GeneratorsConfig(_Config):
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


class GPConfig(_Config):
    """Local GPs: one per subset (composition, size, periodicity) and level."""

    descriptor_molecular: DescriptorSettings = Field(
        default_factory=DescriptorSettings, description="Descriptor of non-periodic subsets."
    )
    descriptor_periodic: DescriptorSettings = Field(
        default_factory=DescriptorSettings, description="Descriptor of periodic subsets."
    )
    training_iterations: int = Field(
        default=30,
        ge=1,
        le=MAX_GP_ITERATIONS,
        description=f"Hyperparameter search iterations per GP (at most {MAX_GP_ITERATIONS}).",
    )
    restarts: int = Field(
        default=2,
        ge=1,
        le=MAX_GP_RESTARTS,
        description=f"Hyperparameter search restarts (at most {MAX_GP_RESTARTS}).",
    )
    memory_budget_gb: float | None = Field(
        default=None, gt=0, description="Memory for one GP (GB); default: what the device has."
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=MAX_WORKERS,
        description=f"Subset GPs fitted in parallel (at most {MAX_WORKERS}).",
    )


class SelectionConfig(_Config):
    """Which candidates get a reference calculation."""

    threshold_mev_per_atom: dict[str, PositiveFloat] = Field(
        default={},
        description="Predicted energy std per atom (meV/atom) above which a candidate is "
        "uncertain, per level; levels not named use `default_threshold_mev_per_atom`.",
    )
    default_threshold_mev_per_atom: float = Field(
        default=5.0, gt=0, description="Threshold of levels not in `threshold_mev_per_atom`."
    )
    max_picks_per_level: int = Field(
        default=20,
        ge=0,
        le=MAX_LABELS,
        description=f"Most uncertainty picks per level per iteration (up to {MAX_LABELS}).",
    )
    min_rmsd_angstrom: float = Field(
        default=0.05, ge=0, description="Minimum RMSD (Å) between two picks of one subset."
    )

    def threshold(self, level: str) -> float:
        """Threshold of ``level`` (meV/atom)."""
        return self.threshold_mev_per_atom.get(level, self.default_threshold_mev_per_atom)


class AugmentConfig(_Config):
    """GPR-ANN augmentation: displaced copies of reference structures with GP energies."""

    enabled: bool = Field(default=True, description="Augment after the refit.")
    copies: int = Field(
        default=5,
        ge=1,
        le=MAX_COPIES,
        description=f"Copies M per reference structure (at most {MAX_COPIES}).",
    )
    delta_angstrom: float = Field(default=0.03, gt=0, description="Displacement width δ (Å).")
    std_filter_mev_per_atom: float | None = Field(
        default=None, gt=0, description="Keep copies whose GP std is below this (meV/atom)."
    )
    levels: list[str] | None = Field(
        default=None, description="Levels to augment (default: every level with a GP)."
    )


class TrainingConfig(_Config):
    """Multi-head training, one head per level of theory."""

    mode: Literal["forces", "energy_only"] = Field(
        default="forces", description="Fit energies and forces, or energies only."
    )
    epochs: int = Field(
        default=100,
        ge=1,
        le=MAX_EPOCHS,
        description=f"Epochs per iteration (at most {MAX_EPOCHS}).",
    )
    epoch_size: int | None = Field(
        default=None,
        ge=1,
        le=MAX_EPOCH_SIZE,
        description="Structures per epoch (default: the whole training set; at most "
        f"{MAX_EPOCH_SIZE}).",
    )
    device: str | None = Field(default=None, description="cpu, cuda (default: cuda if present).")
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
            "mode": self.mode,
            "epochs": self.epochs,
            "epoch_size": self.epoch_size,
            "device": self.device,
            "seed": seed,
        }
        data = dict(values.pop("data", {}))
        data.update(heads=heads, campaign_id=campaign_id, synthetic=self.synthetic)
        return TrainingSettings.model_validate({**values, "data": data})


class ExplorationConfig(_Config):
    """MD with the newly trained model; its frames are the next iteration's candidates."""

    enabled: bool = Field(default=True, description="Explore after training.")
    head: str | None = Field(
        default=None, description="Head driving the MD (default: the first level in routing)."
    )
    starts: int = Field(
        default=4,
        ge=1,
        le=MAX_STARTS,
        description=f"Starting structures per iteration (at most {MAX_STARTS}).",
    )
    start_from: Literal["labeled", "candidates"] = Field(
        default="labeled",
        description="Draw starts from the campaign's labeled training structures or from "
        "this iteration's candidates.",
    )
    max_atoms: int | None = Field(
        default=None,
        ge=1,
        le=MAX_FILTER_ATOMS,
        description=f"Only starts with at most this many atoms (up to {MAX_FILTER_ATOMS}).",
    )
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
    steps: int = Field(
        default=200, ge=1, le=MAX_STEPS, description=f"MD steps per run (at most {MAX_STEPS})."
    )
    timestep_fs: float = Field(default=0.5, gt=0, description="Time step (fs).")
    snapshot_every: int = Field(
        default=20, ge=1, le=MAX_STEPS, description="Keep a frame every N steps."
    )
    clusters_per_frame: int = Field(
        default=0,
        ge=0,
        le=MAX_PER_SNAPSHOT,
        description="Periodic starts: clusters cut around random atoms per frame (at most "
        f"{MAX_PER_SNAPSHOT}).",
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


class EvaluationConfig(_Config):
    """The fixed test split: labeled like the rest, never fitted or trained on."""

    test_fraction: float = Field(
        default=0.1, ge=0, lt=1, description="Fraction of the first iteration's candidates."
    )
    max_test_structures: int = Field(
        default=40, ge=0, le=MAX_LABELS, description=f"Cap on the test split (up to {MAX_LABELS})."
    )


class LabelingConfig(_Config):
    """How the campaign runs its labeling jobs (the job queue)."""

    workers: int = Field(
        default=2,
        ge=1,
        le=MAX_WORKERS,
        description=f"Local worker processes (--workers; at most {MAX_WORKERS}).",
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
        ge=5,
        le=MAX_LEASE_S,
        description=f"Job lease (s, 5 to {MAX_LEASE_S:.0f}): how soon a dead worker's job returns.",
    )
    time_limit_s: float | None = Field(
        default=None,
        gt=0,
        le=MAX_TIME_LIMIT_S,
        description=f"Wall-clock limit per isolated job (s; at most {MAX_TIME_LIMIT_S:.0f}).",
    )


class StoppingConfig(_Config):
    """When the campaign stops; the rule that fired is recorded."""

    max_iterations: int = Field(
        default=3, ge=1, le=MAX_ITERATIONS, description=f"Most iterations (up to {MAX_ITERATIONS})."
    )
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


class ValidationSuiteConfig(_Config):
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


class ValidationConfig(_Config):
    """Property checks of the trained heads against their reference levels, in the loop."""

    suites: list[ValidationSuiteConfig] = Field(
        default=[], description="Suites to run (none: no validation)."
    )
    every: int = Field(
        default=1,
        ge=1,
        le=MAX_ITERATIONS,
        description="Run every this many iterations (and always in the last one).",
    )


class SeedDataConfig(_Config):
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


class CampaignConfig(_Config):
    """A whole active-learning campaign."""

    name: str = Field(min_length=1, max_length=200, description="Campaign name (unique).")
    description: str = Field(default="", description="What the campaign is for.")
    seed: Seed = Field(
        default=0,
        description=f"Seed of everything, 0 to {SEED_MAX}; same seed, same campaign.",
    )
    levels: list[LevelSpec] = Field(
        default=[],
        description="Levels of theory beyond (or overriding) the defaults "
        f"{', '.join(DEFAULT_LEVELS)}.",
    )
    routing: list[RouteConfig] = Field(
        min_length=1, description="Which level labels which structures (one entry per level)."
    )
    generators: GeneratorsConfig = Field(description="Structure generators.")
    gp: GPConfig = Field(default_factory=GPConfig, description="Local GPs.")
    selection: SelectionConfig = Field(default_factory=SelectionConfig, description="Selection.")
    augmentation: AugmentConfig = Field(default_factory=AugmentConfig, description="Augmentation.")
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="Training.")
    exploration: ExplorationConfig = Field(
        default_factory=ExplorationConfig, description="Exploration with the trained model."
    )
    evaluation: EvaluationConfig = Field(
        default_factory=EvaluationConfig, description="Fixed test split."
    )
    labeling: LabelingConfig = Field(default_factory=LabelingConfig, description="Labeling jobs.")
    stopping: StoppingConfig = Field(default_factory=StoppingConfig, description="Stopping rules.")
    validation: ValidationConfig = Field(
        default_factory=ValidationConfig,
        description="Property checks of each head against its reference level (phonons, "
        "elastic constants, frequencies ...), every few iterations.",
    )
    seed_data: list[SeedDataConfig] = Field(
        default=[],
        description="Existing labels to start from (imported, or another campaign's): they "
        "join iteration 0 as training data and are never labeled again.",
    )
    executor: ExecutorSettings = Field(
        default_factory=ExecutorSettings,
        description="Where labeling jobs and GP fits run: local processes or a Dask cluster "
        "(an existing scheduler, or SLURM/PBS workers through dask-jobqueue).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> CampaignConfig:
        names = [spec.name for spec in self.levels]
        if len(set(names)) != len(names):
            raise ValueError(f"levels: a level is named twice in {names}")
        known = set(DEFAULT_LEVELS) | set(names)
        routed = self.routed_levels
        if len(set(routed)) != len(routed):
            raise ValueError(f"routing: a level is routed twice in {routed}")
        for where, level in (
            *(("routing", r) for r in routed),
            *(
                ("selection.threshold_mev_per_atom", r)
                for r in self.selection.threshold_mev_per_atom
            ),
            *(("stopping.label_budget", r) for r in self.stopping.label_budget),
            *(("stopping.cpu_hours_budget", r) for r in self.stopping.cpu_hours_budget),
            *(("augmentation.levels", r) for r in self.augmentation.levels or []),
            *(("seed_data.levels", r) for s in self.seed_data for r in s.levels or []),
            *((("exploration.head", self.exploration.head),) if self.exploration.head else ()),
        ):
            if level not in known:
                raise ValueError(f"{where}: unknown level {level!r}; define it under `levels`")
            if where != "routing" and level not in routed:
                raise ValueError(f"{where}: level {level!r} is not in routing")
        for route in self.routing:
            periodic = self.level_spec(route.level).periodic
            if route.structures == "periodic" and not periodic:
                raise ValueError(
                    f"routing: level {route.level!r} cannot label periodic cells "
                    "(its spec has periodic: false)"
                )
        has_generator = any(
            (self.generators.lattice, self.generators.molecules, self.generators.afir,
             self.generators.md)
        )  # fmt: skip
        if not has_generator:
            raise ValueError("generators: name at least one generator")
        self._validation_consistent(routed)
        return self

    def _validation_consistent(self, routed: list[str]) -> None:
        """Suites on routed heads of the right kind, with settings and tolerances they know."""
        from interphase.validation.suites import SuiteError, suite_named, suite_settings

        if self.stopping.validated and not self.validation.suites:
            raise ValueError("stopping.validated: name the suites under `validation.suites`")
        for k, entry in enumerate(self.validation.suites):
            where = f"validation.suites[{k}]"
            suite = suite_named(entry.suite)
            try:
                suite_settings(suite, entry.settings)
            except (SuiteError, TypeError) as error:
                raise ValueError(f"{where}.settings: {error}") from None
            unknown = sorted(set(entry.tolerances) - set(suite.tolerances))
            if unknown:
                raise ValueError(
                    f"{where}.tolerances: unknown properties {unknown}; "
                    f"known: {', '.join(suite.tolerances)}"
                )
            for head in entry.heads or []:
                if head not in routed:
                    raise ValueError(f"{where}.heads: level {head!r} is not in routing")
                if self.level_spec(head).periodic != suite.periodic:
                    kind = "periodic" if suite.periodic else "molecular"
                    raise ValueError(
                        f"{where}.heads: the {entry.suite} suite needs a {kind} level; "
                        f"{head!r} is not"
                    )
            if not self.validation_heads(entry):
                raise ValueError(f"{where}: no routed level fits the {entry.suite} suite")

    def validation_heads(self, entry: ValidationSuiteConfig) -> list[str]:
        """The heads ``entry`` checks: its own list, else every routed level of its kind."""
        if entry.heads is not None:
            return list(entry.heads)
        periodic = entry.suite == "metal"
        return [r for r in self.routed_levels if self.level_spec(r).periodic == periodic]

    @model_validator(mode="after")
    def _bounded(self) -> CampaignConfig:
        """Finite floats and bounded counts, also in the settings models other modules own."""
        check_numbers(self.model_dump())
        check_executor_counts(self.executor)
        training = self.training.training_settings(self.seed, self.routed_levels, 0)
        check_numbers(training.model_dump(), "training.settings")
        check_training_counts(training)
        return self

    @model_validator(mode="after")
    def _levels_known_to_their_engines(self, info: ValidationInfo) -> CampaignConfig:
        """Each defined or routed level's method and basis, looked up in its engine.

        Only when the validation context asks (:data:`CHECK_ENGINES`, a file being
        read): a stored configuration validated again on resume is not looked up,
        as the machine resuming it need not have the engine.
        """
        if not (info.context and info.context.get(CHECK_ENGINES)):
            return self
        from interphase.campaign.engine_check import check_level

        names = dict.fromkeys([*(spec.name for spec in self.levels), *self.routed_levels])
        for name in names:
            check_level(self.level_spec(name))
        return self

    @property
    def routed_levels(self) -> list[str]:
        return [route.level for route in self.routing]

    def level_spec(self, name: str) -> LevelSpec:
        """The spec of a level: the campaign's own, else the default."""
        for spec in self.levels:
            if spec.name == name:
                return spec
        return DEFAULT_LEVELS[name]

    @property
    def exploration_head(self) -> str:
        return self.exploration.head or self.routing[0].level


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key (check the spelling; `interphase campaign validate` lists keys)"
    return f"{where}: {message}" if where else message  # a whole-file check names its keys


def read_config_file(path: Path) -> dict[str, Any]:
    """The raw mapping in a YAML (.yaml/.yml) or TOML (.toml) file."""
    if not path.is_file():
        raise CampaignConfigError(f"campaign file {path} does not exist")
    text = path.read_text()
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        line = str(error).strip().splitlines()[0]
        raise CampaignConfigError(f"{path}: not valid {path.suffix[1:].upper()}: {line}") from None
    if not isinstance(data, dict):
        raise CampaignConfigError(f"{path}: expected a mapping of settings at the top level")
    return data


def load_campaign_config(path: Path, *, name: str | None = None) -> CampaignConfig:
    """Read and validate a campaign file (``name`` overrides the file's campaign name)."""
    data = read_config_file(path)
    if name is not None:
        data["name"] = name
    return parse_campaign_config(data, source=str(path))


def parse_campaign_config(data: dict[str, Any], *, source: str = "config") -> CampaignConfig:
    """Validate a mapping as a campaign configuration (one-line error).

    Besides the model's own checks, each level's method and basis are looked up
    in its engine where that engine is installed (a stored configuration,
    validated again on resume, is not looked up again).
    """
    try:
        return CampaignConfig.model_validate(data, context={CHECK_ENGINES: True})
    except ValidationError as error:
        raise CampaignConfigError(f"{source}: {_first_error(error)}") from None
