"""``interphase md`` and ``interphase phonons``: use a trained model through its ASE calculator."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from interphase.cli.arguments import impossible_ids
from interphase.cli.common import USER_ERRORS, console, err_console, fail, open_database

if TYPE_CHECKING:
    from ase import Atoms
    from pydantic import ValidationError

    from interphase.models.calculator import InterphaseCalculator

ModelOption = Annotated[Path, typer.Option(help="Model artifact written by `interphase train`.")]
HeadOption = Annotated[str, typer.Option(help="Head (level of theory) to predict with.")]
DeviceOption = Annotated[
    str | None, typer.Option(help="cuda or cpu (default: cuda when available).")
]
Float32Option = Annotated[
    bool, typer.Option("--float32", help="Evaluate in float32 (faster; ~1e-7 relative rounding).")
]


def read_structure(spec: str) -> Atoms:
    """A structure file ASE reads, or ``db:ID`` for a structure in the database."""
    from ase.io import read

    if spec.startswith("db:"):
        return _structure_from_database(spec)
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"structure file {spec} does not exist (or use db:ID)")
    atoms = read(path)
    return atoms[0] if isinstance(atoms, list) else atoms


def _structure_from_database(spec: str) -> Atoms:
    from ase import Atoms

    from interphase.db.models import Structure
    from interphase.db.session import transaction

    try:
        structure_id = int(spec.removeprefix("db:"))
    except ValueError:
        raise ValueError(f"{spec!r}: expected db:ID with an integer structure id") from None
    open_database(create=False)
    with transaction(read_only=True) as session:
        row = None if impossible_ids([structure_id]) else session.get(Structure, structure_id)
        if row is None:
            raise KeyError(f"no structure with id {structure_id} in the database")
        atoms = Atoms(
            numbers=row.numbers,
            positions=row.positions_angstrom,
            cell=row.cell_angstrom,
            pbc=row.pbc_flags,
        )
        atoms.info["charge"] = row.charge
    return atoms


def _calculator(model: Path, head: str, device: str | None, float32: bool) -> InterphaseCalculator:
    import torch

    from interphase.models.calculator import InterphaseCalculator

    dtype = torch.float32 if float32 else None
    return InterphaseCalculator(model, head, device=device, dtype=dtype)


def md(
    structure: Annotated[str, typer.Argument(help="Structure file ASE reads, or db:ID.")],
    model: ModelOption,
    head: HeadOption,
    steps: Annotated[int, typer.Option(help="Number of MD steps.")] = 1000,
    temperature: Annotated[float, typer.Option(help="Temperature (K).")] = 300.0,
    timestep: Annotated[float, typer.Option(help="Time step (fs).")] = 0.5,
    thermostat: Annotated[str, typer.Option(help="langevin (NVT) or nve.")] = "langevin",
    friction: Annotated[float, typer.Option(help="Langevin friction (1/fs).")] = 0.01,
    output: Annotated[Path, typer.Option(help="Trajectory file (extxyz).")] = Path("md.extxyz"),
    interval: Annotated[int, typer.Option(help="Write a frame every N steps (and step 0).")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of velocities and thermostat noise.")] = 0,
    device: DeviceOption = None,
    float32: Float32Option = False,
) -> None:
    """Molecular dynamics with a trained model; writes an extxyz trajectory, prints speed."""
    from pydantic import ValidationError

    from interphase.cli.common import progress
    from interphase.dynamics import MDSettings, run_md

    try:
        settings = MDSettings(
            steps=steps,
            timestep_fs=timestep,
            temperature_k=temperature,
            thermostat=thermostat,  # type: ignore[arg-type]
            friction_per_fs=friction,
            snapshot_every=interval,
            seed=seed,
        )
        atoms = read_structure(structure)
        calculator = _calculator(model, head, device, float32)
        with progress("steps") as bar:
            task = bar.add_task(f"MD {atoms.get_chemical_formula()}", total=steps)

            def advance(step: int, moving: Atoms) -> None:
                temperature_now = moving.get_temperature()
                bar.update(task, completed=step, description=f"MD  T={temperature_now:6.0f} K")

            result = run_md(
                atoms, calculator, settings, trajectory=output, keep_frames=False, on_step=advance
            )
    except ValidationError as error:
        fail(ValueError(_first_error(error)))
    except USER_ERRORS as error:  # MDSettingsError is a ValueError
        fail(error)
    speed = result.speed
    console.print(
        f"{steps} steps of {timestep} fs on {len(atoms)} atoms "
        f"({calculator.session.describe()}): {speed.ms_per_step:.2f} ms/step, "
        f"{speed.ns_per_day:.3f} ns/day (first force call {speed.first_step_seconds:.2f} s)"
    )
    console.print(
        f"final E_pot {result.final_potential_energy_ev:.4f} eV, "
        f"T {result.final_temperature_k:.1f} K; {result.frames_written} frames → {output}"
    )


def phonons(
    model: ModelOption,
    head: HeadOption,
    structure: Annotated[
        str | None,
        typer.Option(help="Unit cell (file or db:ID); default bcc Li, a = --lattice-constant."),
    ] = None,
    lattice_constant: Annotated[
        float, typer.Option(help="a (Å) of the default bcc Li cell.")
    ] = 3.44,
    supercell: Annotated[
        tuple[int, int, int], typer.Option(help="Supercell repeats of the unit cell.")
    ] = (3, 3, 3),
    path: Annotated[
        str | None, typer.Option(help="Special points, ASE letters (default GHPGN for bcc).")
    ] = None,
    relax: Annotated[
        bool, typer.Option("--relax", help="Relax positions and cell first (uses stress).")
    ] = False,
    displacement: Annotated[float, typer.Option(help="Finite displacement (Å).")] = 0.01,
    output: Annotated[Path, typer.Option(help="Band-structure plot (PNG).")] = Path("band.png"),
    device: DeviceOption = None,
) -> None:
    """Phonon band structure (phonopy finite displacements) plotted to a PNG."""
    from interphase.cli.common import progress
    from interphase.models import phonons as ph

    try:
        atoms = (
            read_structure(structure) if structure is not None else ph.bcc_lithium(lattice_constant)
        )
        calculator = _calculator(model, head, device, float32=False)
        if relax:
            atoms = ph.relax_cell(atoms, calculator)
            lengths = ", ".join(f"{x:.4f}" for x in atoms.cell.lengths())
            err_console.print(f"relaxed cell lengths: {lengths} Å")
        n_displaced = ph.count_displacements(atoms, supercell, displacement)
        with progress("supercells") as bar:
            task = bar.add_task("displaced supercells", total=n_displaced)
            bands = ph.phonon_bands(
                atoms,
                calculator,
                supercell=supercell,
                path=path,
                displacement_angstrom=displacement,
                progress=lambda: bar.advance(task),
            )
        ph.plot_bands(bands, output, title=f"{atoms.get_chemical_formula()} — {head}")
    except (ph.PhonopyMissingError, *USER_ERRORS) as error:  # type: ignore[misc]
        fail(error)
    for letter, frequencies in bands.special_frequencies_thz.items():
        label = "Γ" if letter == "G" else letter
        values = ", ".join(f"{f:.3f}" for f in frequencies)
        console.print(f"{label:>2}: {values} THz")
    console.print(f"band structure ({bands.path}) → {output}")


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    return f"{location}: {first['msg']}"
