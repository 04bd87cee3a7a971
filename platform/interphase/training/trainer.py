"""Training of the multi-head potential: masked multi-task loss, AdamW, checkpoints.

:func:`train_multihead` trains from plain :class:`TrainingExample` objects;
:mod:`interphase.training.from_db` builds them from the database and records
the run. Two modes (GPR-ANN paper): ``forces`` (direct force training) and
``energy_only`` (reference + synthetic energies, no force terms).

Every epoch ends with validation, a learning-rate schedule step and (with a
checkpoint path) a checkpoint; the best weights (lowest validation loss, or
training loss without a validation split) are returned and kept for resume.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interphase.devices import select_device
from interphase.models import artifact
from interphase.models.multihead import MultiHeadPotential
from interphase.threads import limited_threads
from interphase.training.checkpoint import Checkpoint, CheckpointError, data_fingerprint
from interphase.training.dataset import (
    TargetScales,
    TrainingData,
    TrainingDataError,
    TrainingExample,
    epoch_batches,
    fit_target_scales,
    prepare,
    split_indices,
)
from interphase.training.evaluate import evaluate_split
from interphase.training.loss import LossWeighting, batch_loss_terms
from interphase.training.metrics import MetricAccumulator, ParityCollector, SplitMetrics
from interphase.training.reports import EpochReport, TrainingCallbacks, TrainingResult
from interphase.training.settings import TrainingSettings

__all__ = [
    "EpochReport",
    "TrainingCallbacks",
    "TrainingDataError",
    "TrainingExample",
    "TrainingResult",
    "TrainingSettings",
    "build_model",
    "evaluate_split",
    "load_model",
    "save_model",
    "train_multihead",
]

load_model = artifact.load_model


def save_model(result_or_model: TrainingResult | MultiHeadPotential, path: str | Path) -> Path:
    """Write a model artifact; a result's settings and best epoch go in its metadata."""
    if isinstance(result_or_model, TrainingResult):
        metadata = {
            "training_settings": result_or_model.settings.model_dump(mode="json"),
            "best_epoch": result_or_model.best_epoch,
        }
        return artifact.save_model(result_or_model.model, path, metadata)
    return artifact.save_model(result_or_model, path)


def build_model(
    species: Sequence[int], heads: Sequence[str], settings: TrainingSettings
) -> MultiHeadPotential:
    """An untrained model with the architecture of ``settings.model``."""
    m = settings.model
    return MultiHeadPotential(
        species,
        heads,
        m.hidden_sizes,
        m.aev_parameters(),
        torch.float64 if m.dtype == "float64" else torch.float32,
        charge_hidden_sizes=m.charge_hidden_sizes,
        coulomb=m.coulomb_parameters(),
        dispersion_functional=m.dispersion_functional,
        dispersion_cutoff_angstrom=m.dispersion_cutoff_angstrom,
    )


def copy_matching_parameters(model: MultiHeadPotential, previous: MultiHeadPotential) -> int:
    """Warm start: copy every parameter of ``previous`` whose name and shape match.

    Parameters of a new head or a new element keep their fresh initialisation,
    and buffers (the energy reference) are not copied: the new run fits its
    own. Returns the number of parameter tensors copied.
    """
    old = dict(previous.named_parameters())
    copied = 0
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            source = old.get(name)
            if source is not None and source.shape == parameter.shape:
                parameter.copy_(source.to(parameter.dtype))
                copied += 1
    return copied


def _detached(terms: dict[str, torch.Tensor]) -> dict[str, float]:
    return {name: float(value.detach()) for name, value in terms.items()}


class _Run:
    """State of one training run; built fresh or from a checkpoint."""

    def __init__(
        self,
        data: TrainingData,
        settings: TrainingSettings,
        device: torch.device,
        fresh: bool,
        initial_model: MultiHeadPotential | None = None,
    ) -> None:
        self.data, self.settings, self.device = data, settings, device
        self.train_indices, self.validation_indices = split_indices(
            len(data), settings.validation_fraction, settings.seed
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)
            self.model = build_model(data.species, data.heads, settings)
        self.warm_started = 0
        if fresh and initial_model is not None:
            self.warm_started = copy_matching_parameters(self.model, initial_model)
        self.model.to(device)
        # A resumed run restores its reference and scales from the checkpoint.
        self.scales = (
            self._fit_energy_reference() if fresh else fit_target_scales(data, self.train_indices)
        )
        self.model.mixed_precision = settings.mixed_precision and device.type == "cuda"
        self.weighting = LossWeighting(data.heads, settings.loss).to(device)
        groups: list[dict[str, Any]] = [
            {"params": list(self.model.parameters())},
            {"params": [self.weighting.log_variance], "weight_decay": 0.0},
        ]
        self.optimizer = torch.optim.AdamW(
            groups,
            lr=settings.learning_rate,
            weight_decay=settings.weight_decay,
        )
        self.scheduler = self._scheduler()
        self.epoch, self.best_epoch, self.best_loss = 0, 0, float("inf")
        self.best_state = copy.deepcopy(self.model.state_dict())
        self.rng = np.random.default_rng(settings.seed + 1)
        self.history: list[dict[str, Any]] = []
        self.fingerprint = data_fingerprint(data.structure_ids, data.n_atoms, data.heads)

    def _fit_energy_reference(self) -> TargetScales:
        """Self-energies fitted to what the untrained model leaves; spreads from the data."""
        plain = fit_target_scales(self.data, self.train_indices)
        n_heads, n_species = len(self.data.heads), len(self.data.species)
        self.model.set_energy_reference(np.zeros((n_heads, n_species)), plain.energy_hartree)
        baseline = np.full((len(self.data), n_heads), np.nan)
        batch_size = self.settings.batch_size
        with torch.no_grad():
            for start in range(0, len(self.train_indices), batch_size):
                chunk = self.train_indices[start : start + batch_size]
                inputs, _ = self.data.batch(
                    chunk, self.model, requires_grad=False, device=self.device
                )
                baseline[chunk] = self.model(inputs).energy_hartree.cpu().numpy()
        fitted = fit_target_scales(self.data, self.train_indices, baseline)
        self.model.set_energy_reference(fitted.self_energy_hartree, plain.energy_hartree)
        return TargetScales(
            fitted.self_energy_hartree,
            plain.energy_hartree,
            plain.gradient_hartree_per_angstrom,
            plain.charge_e,
        )

    def _scheduler(self) -> Any:
        s = self.settings
        if s.schedule == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer,
                factor=s.plateau_factor,
                patience=s.plateau_patience,
                min_lr=s.min_learning_rate,
            )
        if s.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer, T_max=s.epochs, eta_min=s.min_learning_rate
            )
        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda _: 1.0)

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(
            settings_json=self.settings.model_dump_json(),
            fingerprint=self.fingerprint,
            model=artifact.model_payload(self.model),
            best_state={k: v.detach().cpu() for k, v in self.best_state.items()},
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            weighting=self.weighting.state_dict(),
            epoch=self.epoch,
            best_loss=self.best_loss,
            best_epoch=self.best_epoch,
            rng_state=dict(self.rng.bit_generator.state),
            train_indices=self.train_indices,
            validation_indices=self.validation_indices,
            scales={
                "self_energy_hartree": self.scales.self_energy_hartree.tolist(),
                "energy_hartree": self.scales.energy_hartree.tolist(),
                "gradient_hartree_per_angstrom": self.scales.gradient_hartree_per_angstrom.tolist(),
                "charge_e": self.scales.charge_e,
            },
            history=self.history,
        )

    def restore(self, saved: Checkpoint) -> None:
        if saved.fingerprint != self.fingerprint:
            raise CheckpointError(
                "the checkpoint was written for different training data (structures, atom "
                "counts or heads differ); resume with the run's own dataset snapshot"
            )
        self.model.load_state_dict(saved.model["state_dict"])
        self.best_state = {k: v.to(self.device) for k, v in saved.best_state.items()}
        self.optimizer.load_state_dict(saved.optimizer)
        self.scheduler.load_state_dict(saved.scheduler)
        self.weighting.load_state_dict(saved.weighting)
        self.epoch, self.best_epoch, self.best_loss = saved.epoch, saved.best_epoch, saved.best_loss
        self.rng.bit_generator.state = saved.rng_state
        self.train_indices, self.validation_indices = saved.train_indices, saved.validation_indices
        self.scales = TargetScales(
            np.asarray(saved.scales["self_energy_hartree"]),
            np.asarray(saved.scales["energy_hartree"]),
            np.asarray(saved.scales["gradient_hartree_per_angstrom"]),
            float(saved.scales["charge_e"]),
        )
        self.history = list(saved.history)

    def train_epoch(self, callbacks: TrainingCallbacks) -> SplitMetrics:
        self.model.train()
        forces = self.settings.mode == "forces"
        batches = epoch_batches(
            self.train_indices, self.settings.epoch_size, self.settings.batch_size, self.rng
        )
        accumulator = MetricAccumulator(self.data.heads, self.weighting.fixed)
        parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
        for k, indices in enumerate(batches):
            inputs, targets = self.data.batch(
                indices, self.model, requires_grad=forces, device=self.device
            )
            terms, prediction = batch_loss_terms(
                self.model, inputs, targets, self.scales, forces=forces, create_graph=True
            )
            if not terms:
                continue
            loss = self.weighting(terms)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.settings.gradient_clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(parameters, self.settings.gradient_clip_norm)
            self.optimizer.step()
            accumulator.add(prediction, targets, _detached(terms))
            if callbacks.on_batch is not None:
                callbacks.on_batch(k + 1, len(batches), self.epoch + 1)
        return accumulator.summary()

    def step(self, callbacks: TrainingCallbacks) -> EpochReport:
        started = time.perf_counter()
        learning_rate = float(self.optimizer.param_groups[0]["lr"])
        train = self.train_epoch(callbacks)
        validation = None
        if len(self.validation_indices):
            validation = evaluate_split(
                self.model,
                self.data,
                self.validation_indices,
                self.scales,
                self.weighting,
                batch_size=self.settings.batch_size,
                energy_only=self.settings.mode == "energy_only",
            )
        monitored = (validation or train).loss
        monitored = float("inf") if monitored is None else monitored
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(monitored)
        else:
            self.scheduler.step()
        self.epoch += 1
        is_best = monitored < self.best_loss
        if is_best:
            self.best_loss, self.best_epoch = monitored, self.epoch
            self.best_state = copy.deepcopy(self.model.state_dict())
        seconds = time.perf_counter() - started
        report = EpochReport(self.epoch, learning_rate, train, validation, is_best, seconds)
        self.history.append(report.to_dict())
        return report


def train_multihead(
    examples: Sequence[TrainingExample],
    heads: Sequence[str] | None = None,
    settings: TrainingSettings | None = None,
    *,
    callbacks: TrainingCallbacks | None = None,
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
    initial_model: MultiHeadPotential | None = None,
) -> TrainingResult:
    """Train a :class:`MultiHeadPotential` on masked energies, forces and charges.

    Parameters
    ----------
    examples
        Structures with whatever labels they have (same order on resume).
    heads
        Level-of-theory keys to train; default every key with an energy label.
    settings
        Training settings; defaults to ``TrainingSettings()``.
    callbacks
        Progress and recording hooks.
    checkpoint_path
        Write a checkpoint there after every epoch.
    resume
        Continue from the checkpoint at ``checkpoint_path`` (same split, optimiser
        state, epoch counter and batch order) up to ``settings.epochs``.
    initial_model
        Warm start: a fresh run copies this model's matching parameters
        (:func:`copy_matching_parameters`) before fitting its energy reference.
        A resumed run restores its checkpoint instead.

    Returns
    -------
    TrainingResult
        The best model, per-epoch history and final errors. Same inputs and seed
        give the same result, with or without an interruption and resume.
    """
    settings = settings or TrainingSettings()
    callbacks = callbacks or TrainingCallbacks()
    if heads is None:
        heads = sorted(
            {h for ex in examples for h in (*ex.energies_hartree, *ex.synthetic_energies_hartree)}
        )
    device = select_device(settings.device)
    if resume and checkpoint_path is None:
        raise CheckpointError("resume=True needs the checkpoint_path of the run")
    with limited_threads():  # the thread policy (interphase.threads)
        data = prepare(examples, heads, settings.model.pair_cutoff_angstrom)
        run = _Run(data, settings, device, fresh=not resume, initial_model=initial_model)
        if resume:
            assert checkpoint_path is not None
            run.restore(Checkpoint.load(checkpoint_path))
        while run.epoch < settings.epochs:
            report = run.step(callbacks)
            if checkpoint_path is not None:
                path = run.checkpoint().save(checkpoint_path)
                if callbacks.on_checkpoint is not None:
                    callbacks.on_checkpoint(path)
            if callbacks.on_epoch is not None:
                callbacks.on_epoch(report)
        return _finish(run)


def _finish(run: _Run) -> TrainingResult:
    """Load the best weights, evaluate them on both splits and collect parity data."""
    run.model.load_state_dict(run.best_state)
    final, parity = {}, {}
    for split, indices in (("train", run.train_indices), ("validation", run.validation_indices)):
        if len(indices):
            parity[split] = ParityCollector(run.data.heads)
            final[split] = evaluate_split(
                run.model,
                run.data,
                indices,
                run.scales,
                run.weighting,
                batch_size=run.settings.batch_size,
                energy_only=run.settings.mode == "energy_only",
                parity=parity[split],
            )
    model = run.model.to("cpu").eval()
    model.mixed_precision = False
    return TrainingResult(
        model=model,
        settings=run.settings,
        history=run.history,
        best_epoch=run.best_epoch,
        final=final,
        parity=parity,
        train_indices=run.train_indices,
        validation_indices=run.validation_indices,
    )
