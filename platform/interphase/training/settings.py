"""Training settings: validated data read from a JSON or TOML file.

Defaults follow paper 000 where it gives numbers (batch 128, 99:1 split, AEV
cutoff 5.2 Å); the paper's fixed epoch size of 200,000 samples is
``epoch_size = 200000`` (default: one pass over the training split per epoch).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from interphase.models.coulomb import CoulombParameters
from interphase.models.descriptors import AEVParameters
from interphase.records import XTB_LEVEL

#: Most epochs of a run (and of plateau patience), and structures per epoch: far above real use.
MAX_EPOCHS, MAX_EPOCH_SIZE = 100_000, 10_000_000


class TrainingSettingsError(ValueError):
    """A training settings file is missing, unreadable or invalid."""


class ModelSettings(BaseModel):
    """Architecture of the multi-head potential."""

    model_config = ConfigDict(extra="forbid")

    hidden_sizes: list[int] = Field(
        default=[64, 64],
        min_length=1,
        description="Widths of the hidden layers each element network shares across heads.",
    )
    charge_hidden_sizes: list[int] | None = Field(
        default=[32],
        description="Hidden widths of the charge networks; null for a model without "
        "charges (then no charge-weighted AEV and no Coulomb term).",
    )
    radial_cutoff_angstrom: float = Field(default=5.2, gt=0, description="AEV radial cutoff (Å).")
    angular_cutoff_angstrom: float = Field(
        default=3.5, gt=0, description="AEV angular cutoff (Å), below the radial cutoff."
    )
    coulomb: bool = Field(default=True, description="Add the Coulomb energy of the charges.")
    coulomb_cutoff_angstrom: float = Field(
        default=8.0, gt=0, description="Shifted-force truncation of the Coulomb term (Å)."
    )
    coulomb_damping_angstrom: float = Field(
        default=1.0, gt=0, description="Short-range damping width σ of erf(r/σ)/r (Å)."
    )
    dispersion_functional: str | None = Field(
        default=None,
        description="D3(BJ) parameters of an added two-body dispersion term, e.g. 'wb97x'; "
        "null for none.",
    )
    dispersion_cutoff_angstrom: float = Field(
        default=8.0, gt=0, description="Cutoff of the dispersion term (Å)."
    )
    dtype: Literal["float64", "float32"] = Field(
        default="float64", description="Precision of parameters and energy sums."
    )

    def aev_parameters(self) -> AEVParameters:
        return AEVParameters(
            radial_cutoff_angstrom=self.radial_cutoff_angstrom,
            angular_cutoff_angstrom=self.angular_cutoff_angstrom,
        )

    @property
    def pair_cutoff_angstrom(self) -> float:
        """Neighbour-list cutoff of the model these settings build."""
        cutoffs = [self.radial_cutoff_angstrom]
        if self.coulomb and self.charge_hidden_sizes is not None:
            cutoffs.append(self.coulomb_cutoff_angstrom)
        if self.dispersion_functional is not None:
            cutoffs.append(self.dispersion_cutoff_angstrom)
        return max(cutoffs)

    def coulomb_parameters(self) -> CoulombParameters | None:
        if not self.coulomb:
            return None
        return CoulombParameters(self.coulomb_cutoff_angstrom, self.coulomb_damping_angstrom)


class DataSettings(BaseModel):
    """Which database labels become training targets."""

    model_config = ConfigDict(extra="forbid")

    heads: list[str] | None = Field(
        default=None,
        description="Levels of theory to train a head for; null: every level with "
        "energy labels in the selection.",
    )
    campaign_id: int | None = Field(
        default=None, description="Only structures of this campaign; null: all."
    )
    charge_level: str | None = Field(
        default=XTB_LEVEL,
        description="Level whose partial charges are the charge targets; null: no charge loss.",
    )
    periodic_charges: bool = Field(
        default=False,
        description="Also train charges on periodic structures (the paper uses molecular "
        "ones only: GFN2-xTB charges of periodic cells are not consistent).",
    )
    synthetic: bool | None = Field(
        default=None,
        description="Train on GP synthetic energies (SyntheticLabel rows); null: only in "
        "energy_only mode.",
    )
    max_synthetic_std_hartree: float | None = Field(
        default=None, gt=0, description="Skip synthetic labels whose GP std exceeds this."
    )


class LossSettings(BaseModel):
    """How the masked multi-task loss weighs its terms."""

    model_config = ConfigDict(extra="forbid")

    weighting: Literal["fixed", "uncertainty"] = Field(
        default="fixed",
        description="'fixed' weights, or learnable homoscedastic uncertainty weights "
        "(Kendall et al. 2018) per task, started from the fixed ones.",
    )
    energy_weight: float = Field(default=1.0, ge=0, description="Weight of energy terms.")
    force_weight: float = Field(default=1.0, ge=0, description="Weight of force terms.")
    charge_weight: float = Field(default=0.1, ge=0, description="Weight of the charge term.")
    synthetic_weight: float = Field(
        default=0.5, ge=0, description="Weight of synthetic (GP) energy terms."
    )


class TrainingBasics(BaseModel):
    """What a run fits, for how long and where: the fields a campaign's ``training:`` shares."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["forces", "energy_only"] = Field(
        default="forces",
        description="'forces': energies, forces and charges (direct force training); "
        "'energy_only': energies (reference and synthetic) and charges, no force terms.",
    )
    epochs: int = Field(
        default=100, ge=1, le=MAX_EPOCHS, description=f"Number of epochs (at most {MAX_EPOCHS})."
    )
    epoch_size: int | None = Field(
        default=None,
        ge=1,
        le=MAX_EPOCH_SIZE,
        description="Structures drawn per epoch (paper: 200000; at most "
        f"{MAX_EPOCH_SIZE}); null: one pass over the training split.",
    )
    device: str | None = Field(
        default=None, description="'cuda', 'cpu', ...; null: CUDA when available."
    )


class TrainingSettings(TrainingBasics):
    """One training run of the multi-head potential."""

    batch_size: int = Field(default=128, ge=1, description="Structures per batch.")
    learning_rate: float = Field(default=1e-3, gt=0, description="Initial AdamW learning rate.")
    weight_decay: float = Field(default=1e-5, ge=0, description="AdamW weight decay.")
    schedule: Literal["plateau", "cosine", "constant"] = Field(
        default="plateau",
        description="Learning-rate schedule: ReduceLROnPlateau on the validation loss, "
        "cosine annealing over the epochs, or constant.",
    )
    plateau_factor: float = Field(default=0.5, gt=0, lt=1, description="Plateau LR factor.")
    plateau_patience: int = Field(default=10, ge=0, description="Plateau patience (epochs).")
    min_learning_rate: float = Field(default=1e-6, ge=0, description="Learning-rate floor.")
    gradient_clip_norm: float | None = Field(
        default=10.0, gt=0, description="Clip the gradient norm to this; null: no clipping."
    )
    validation_fraction: float = Field(
        default=0.01, ge=0, lt=1, description="Fraction of structures held out (99:1)."
    )
    seed: int = Field(default=0, description="Seed of initial weights, split and batches.")
    mixed_precision: bool = Field(
        default=False,
        description="bf16 autocast of the element networks on CUDA (sums, self-energies, "
        "AEVs and Coulomb stay in full precision).",
    )
    model: ModelSettings = Field(default_factory=ModelSettings, description="Architecture.")
    data: DataSettings = Field(default_factory=DataSettings, description="Targets.")
    loss: LossSettings = Field(default_factory=LossSettings, description="Loss weighting.")

    @model_validator(mode="after")
    def _cutoffs_ordered(self) -> TrainingSettings:
        if self.model.angular_cutoff_angstrom >= self.model.radial_cutoff_angstrom:
            raise ValueError(
                f"model.angular_cutoff_angstrom ({self.model.angular_cutoff_angstrom}) must "
                f"be below model.radial_cutoff_angstrom ({self.model.radial_cutoff_angstrom})"
            )
        return self

    @property
    def uses_synthetic(self) -> bool:
        if self.data.synthetic is None:
            return self.mode == "energy_only"
        return self.data.synthetic


def load_training_settings(path: str | Path) -> TrainingSettings:
    """Read settings from a ``.json`` or ``.toml`` file.

    Raises
    ------
    TrainingSettingsError
        The file is missing, not JSON/TOML, or fails validation (message lists
        every field at fault).
    """
    path = Path(path)
    if not path.exists():
        raise TrainingSettingsError(f"training settings file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            raise TrainingSettingsError(f"training settings file {path}: use a .json or .toml file")
        return TrainingSettings.model_validate(data)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise TrainingSettingsError(
            f"training settings file {path} is unreadable: {error}"
        ) from None
    except ValidationError as error:
        raise TrainingSettingsError(f"training settings file {path} is invalid:\n{error}") from None
