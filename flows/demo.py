"""The walking skeleton: one small, real campaign iteration as a Prefect flow.

Li lattice-noise clusters → GFN2-xTB labels (tblite) → one GPyTorch GP per
subset on energies and forces → GP std scores new candidates and the most
uncertain are labeled → GPs refitted → a multi-head network (one head per
level present) trained on CPU → report. Everything lands in the provenance
database with lineage.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console

from flows.runtime import configure_local_prefect
from interphase.settings import get_settings


class DemoConfig(BaseModel):
    """Settings of the walking-skeleton campaign."""

    model_config = ConfigDict(extra="forbid")

    campaign_name: str = Field(description="Unique campaign name.")
    level: str = Field(default="GFN2-xTB", description="Level of theory that labels everything.")
    cluster_sizes: tuple[int, ...] = Field(
        default=(6, 8), description="Atom counts of the Li clusters; one GP subset each."
    )
    n_initial: int = Field(default=12, ge=4, description="Initially labeled structures per subset.")
    n_candidates: int = Field(default=24, ge=1, description="Candidate structures per subset.")
    noise_angstrom: float = Field(default=0.12, ge=0, description="Gaussian position noise (Å).")
    threshold_per_atom_hartree: float = Field(
        default=1e-4, gt=0, description="GP energy std per atom above which a candidate is labeled."
    )
    max_selected: int = Field(default=8, ge=0, description="Most candidates labeled per iteration.")
    gp_iterations: int = Field(
        default=40,
        ge=1,
        description="Nelder–Mead iterations per restart of GP hyperparameter fits.",
    )
    gp_workers: int = Field(
        default=1, ge=1, description="Subset GPs fitted in parallel processes (1: in the flow)."
    )
    training_epochs: int = Field(default=400, ge=1, description="Epochs of network training.")
    training_learning_rate: float = Field(
        default=1e-2, gt=0, description="AdamW learning rate of network training."
    )
    training_batch_size: int = Field(default=8, ge=1, description="Structures per batch.")
    seed: int = Field(default=0, description="Seed of every random choice in the campaign.")


def load_config(path: Path | None, seed: int) -> DemoConfig:
    """The configuration in ``path`` (JSON), or the defaults with a fresh campaign name."""
    if path is not None:
        if not path.exists():
            raise FileNotFoundError(f"campaign configuration {path} does not exist")
        try:
            return DemoConfig.model_validate_json(path.read_text())
        except ValidationError as error:
            raise ValueError(f"campaign configuration {path} is invalid:\n{error}") from None
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return DemoConfig(campaign_name=f"demo-{stamp}-seed{seed}", seed=seed)


def run_demo(
    *, config_path: Path | None = None, seed: int = 0, console: Console | None = None
) -> dict[str, Any]:
    """Run the walking skeleton on the local defaults and print its report."""
    settings = get_settings()
    configure_local_prefect(settings.data_dir)
    from interphase.db.session import database_url, upgrade

    console = console or Console()
    upgrade()
    config = load_config(config_path, seed)
    console.print(f"[bold]interphase demo[/] — campaign {config.campaign_name}")
    console.print(f"database: {database_url()}")
    from flows.campaign import walking_skeleton

    report = walking_skeleton(config, console=console)
    from flows.report import print_report

    print_report(report, console)
    return report
