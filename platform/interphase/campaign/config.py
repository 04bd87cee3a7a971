"""The campaign configuration: one YAML or TOML file, validated before anything runs.

Every field has a description and unknown keys are refused, so a typo is an
error with the key's path, not a silently ignored setting. Every float is
finite, physical quantities have their sign, and every count has an upper
bound (:mod:`interphase.campaign.limits`), so nothing that would fail or run
away later is stored. The sections are in :mod:`interphase.campaign.config_sections`.
:func:`load_campaign_config` reads a file, also looks each level's method and
basis up in its engine where it is installed
(:mod:`interphase.campaign.engine_check`), and raises
:class:`CampaignConfigError` with one line naming what is wrong.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, ValidationInfo, model_validator

from interphase.campaign.config_sections import (
    AugmentConfig,
    ConfigModel,
    EvaluationConfig,
    ExplorationConfig,
    GeneratorsConfig,
    GPConfig,
    LabelingConfig,
    RouteConfig,
    SeedDataConfig,
    SelectionConfig,
    StoppingConfig,
    TrainingConfig,
    ValidationConfig,
    ValidationSuiteConfig,
)
from interphase.campaign.limits import (
    MAX_WORKERS,
    check_executor_counts,
    check_numbers,
    check_training_counts,
)
from interphase.execution import ExecutorSettings
from interphase.labeling.levels import DEFAULT_LEVELS, LevelSpec
from interphase.structures.config import SEED_MAX, Seed

#: Validation context key: also look levels up in their engines (files, not stored configs).
CHECK_ENGINES = "check_engines"


class CampaignConfigError(ValueError):
    """The campaign file is missing, unreadable or invalid (one line)."""


class CampaignConfig(ConfigModel):
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

    @model_validator(mode="before")
    @classmethod
    def _one_worker_count(cls, data: Any) -> Any:
        """Move the old ``labeling.workers`` and ``gp.workers`` into ``executor.workers``."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        counts: dict[str, Any] = {}
        for section in ("labeling", "gp"):
            if isinstance(data.get(section), dict) and "workers" in data[section]:
                data[section] = dict(data[section])
                counts[f"{section}.workers"] = data[section].pop("workers")
        executor = data.get("executor")
        if not counts or not isinstance(executor, dict | None):
            return data
        executor = dict(executor or {})
        if "workers" in executor:
            counts["executor.workers"] = executor["workers"]
        (first, value), *others = counts.items()
        for other, other_value in others:
            if other_value != value:
                raise ValueError(
                    f"{first} ({value}) and {other} ({other_value}) differ: "
                    "set only executor.workers, the one worker count"
                )
        if isinstance(value, int) and value > MAX_WORKERS:
            raise ValueError(f"{first}: {value} is more than the {MAX_WORKERS} allowed")
        data["executor"] = {**executor, "workers": value}
        return data

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
