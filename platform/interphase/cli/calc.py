"""``interphase calc``: one single-point calculation on a structure file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from interphase.cli.common import USER_ERRORS, fail


def calc(
    structure_file: Annotated[Path, typer.Argument(help="Any structure file ASE reads (xyz, …).")],
    level: Annotated[str | None, typer.Option(help="Level of theory, e.g. GFN2-xTB.")] = None,
    engine: Annotated[str | None, typer.Option(help="Engine (instead of --level).")] = None,
    method: Annotated[str | None, typer.Option(help="Method (with --engine).")] = None,
    basis: Annotated[str | None, typer.Option(help="Basis set (with --engine).")] = None,
    charge: Annotated[int, typer.Option(help="Total charge (e).")] = 0,
    multiplicity: Annotated[
        int | None, typer.Option(help="Spin multiplicity (default: lowest for the electron count).")
    ] = None,
) -> None:
    """Single-point energy, gradient and charges; prints JSON (Hartree, Å)."""
    from interphase.labeling.calc import single_point
    from interphase.labeling.engines.contract import EngineError

    try:
        label = single_point(
            structure_file,
            level=level,
            engine=engine,
            method=method,
            basis=basis,
            charge=charge,
            multiplicity=multiplicity,
        )
    except USER_ERRORS as error:
        fail(error)
    except EngineError as error:  # SCF not converged, engine missing, ...: one line, status 2
        fail(RuntimeError(f"{error.error_class}: {error}"))
    result: dict[str, object] = {"level": label.level, "energy_hartree": label.total_energy_hartree}
    for name, value in (
        ("gradient_hartree_per_angstrom", label.gradient_hartree_per_angstrom),
        ("charges", label.charges_e),
        ("dipole_e_angstrom", label.dipole_e_angstrom),
    ):
        if value is not None:
            result[name] = np.asarray(value).tolist()
    result["provenance"] = label.provenance
    print(json.dumps(result, indent=2))
