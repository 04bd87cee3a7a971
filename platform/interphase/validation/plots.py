"""Figures of a validation: phonon bands and E(V) of head and reference; frequency and force parity.

Written with matplotlib's Agg backend to PNG files; the head is drawn solid,
its reference level dashed, in the same axes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(5.0, 4.0), layout="constrained")


def phonon_bands_plot(
    model: dict[str, Any], reference: dict[str, Any], output: Path, *, head: str, level: str
) -> Path:
    """Both band structures along the suite's path (THz), head solid, reference dashed."""
    figure = _figure()
    axes = figure.add_subplot()
    for bands, style, label in ((reference, "--", level), (model, "-", f"head {head}")):
        x = np.asarray(bands["distances_per_angstrom"])
        # Each is drawn on its own axis: the two a₀ differ, so the path lengths do too.
        x = x / x[-1]
        y = np.asarray(bands["frequencies_thz"])
        breaks = np.flatnonzero(np.diff(x) <= 0) + 1
        for k, segment in enumerate(np.split(np.arange(len(x)), breaks)):
            lines = axes.plot(
                x[segment], y[segment], style, lw=1.1, color="C0" if style == "-" else "C1"
            )
            if k == 0:
                lines[0].set_label(label)
    special = np.asarray(reference["special_distances_per_angstrom"])
    special = special / special[-1]
    for position in special:
        axes.axvline(position, color="0.7", lw=0.6)
    labels = ["Γ" if s == "G" else s for s in reference["special_labels"]]
    axes.set_xticks(special, labels)
    axes.set_xlim(0, 1)
    axes.axhline(0.0, color="0.3", lw=0.6)
    axes.set_ylabel("frequency (THz)")
    axes.legend(loc="lower right", fontsize=8)
    figure.savefig(output, dpi=150)
    return output


def equation_of_state_plot(
    model: dict[str, Any], reference: dict[str, Any], output: Path, *, head: str, level: str
) -> Path:
    """E(V) per atom of head and reference, each relative to its own minimum (meV/atom)."""
    figure = _figure()
    axes = figure.add_subplot()
    for values, style, label in ((reference, "s--", level), (model, "o-", f"head {head}")):
        volumes = np.asarray(values["eos_volumes_angstrom3_per_atom"])
        energies = np.asarray(values["eos_energies_ev_per_atom"])
        axes.plot(volumes, 1000 * (energies - energies.min()), style, ms=4, label=label)
    axes.set_xlabel("volume (Å³/atom)")
    axes.set_ylabel("E − E_min (meV/atom)")
    axes.legend(fontsize=8)
    figure.savefig(output, dpi=150)
    return output


def frequency_parity_plot(
    model: list[float], reference: list[float], output: Path, *, head: str, level: str
) -> Path:
    """Head against reference harmonic wavenumbers (cm⁻¹), with the diagonal."""
    figure = _figure()
    axes = figure.add_subplot()
    axes.plot(reference, model, "o", ms=4)
    top = max(max(reference), max(model)) * 1.05
    axes.plot([0, top], [0, top], ":", color="0.5")
    axes.set_xlabel(f"{level} wavenumber (cm⁻¹)")
    axes.set_ylabel(f"head {head} wavenumber (cm⁻¹)")
    figure.savefig(output, dpi=150)
    return output


def force_parity_plot(
    model: list[Any], reference: list[Any], output: Path, *, head: str, level: str
) -> Path:
    """Head against reference force components (eV/Å) on the sampled MD frames."""
    m = np.concatenate([np.asarray(f).ravel() for f in model])
    r = np.concatenate([np.asarray(f).ravel() for f in reference])
    figure = _figure()
    axes = figure.add_subplot()
    axes.plot(r, m, ".", ms=2, alpha=0.5)
    low, high = float(min(r.min(), m.min())), float(max(r.max(), m.max()))
    axes.plot([low, high], [low, high], ":", color="0.5")
    axes.set_xlabel(f"{level} force component (eV/Å)")
    axes.set_ylabel(f"head {head} force component (eV/Å)")
    figure.savefig(output, dpi=150)
    return output


def write_plots(outcome: Any, directory: Path) -> list[Path]:
    """The figures of one :class:`~interphase.validation.run.ValidationOutcome`."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{outcome.suite}-{outcome.head}".replace("/", "_")
    model, reference = outcome.model_values, outcome.reference_values
    names = {"head": outcome.head, "level": outcome.level}
    if "error" in model:  # the suite failed with the head: nothing to draw
        return []
    if outcome.suite == "interface":
        return [
            force_parity_plot(
                model["model_forces_ev_per_angstrom"],
                reference["forces_ev_per_angstrom"],
                directory / f"{stem}-forces.png",
                **names,
            )
        ]
    if outcome.suite == "metal":
        return [
            phonon_bands_plot(
                model["phonon_bands"],
                reference["phonon_bands"],
                directory / f"{stem}-phonons.png",
                **names,
            ),
            equation_of_state_plot(model, reference, directory / f"{stem}-eos.png", **names),
        ]
    return [
        frequency_parity_plot(
            model["ec_frequencies_cm1"],
            reference["ec_frequencies_cm1"],
            directory / f"{stem}-ec-frequencies.png",
            **names,
        )
    ]
