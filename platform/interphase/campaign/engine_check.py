"""A level's method and basis looked up in its engine before a campaign is stored.

``campaign validate`` (and ``campaign run``, which validates the same file)
refuses a level whose method or basis its engine does not know, so no job is
queued that can only fail as ``InvalidInput``. The checks look names up and
compute nothing:

- tblite, GPAW and the analytic potentials: the harness's fixed method lists; no basis.
- PySCF (when importable): the basis (and a density-fitting ``auxbasis``) is
  loaded for one element, and the functional parsed as the engine would.
- Psi4 (when its executable is found): the basis must be a ``.gbs`` file of
  its library (or on ``PSIPATH``). Method names are not checked: that needs
  Psi4's Python module, which interphase does not import.

Where an engine is not installed here (a campaign may label elsewhere), what
could not be checked is said in :attr:`LevelCheck.unchecked`, and
``campaign validate`` prints it.
"""

from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from interphase.labeling.engines import ENGINES
from interphase.labeling.engines.analytic import METHODS as ANALYTIC_METHODS
from interphase.labeling.engines.gpaw import METHODS as GPAW_METHODS
from interphase.labeling.engines.psi4 import Psi4Engine
from interphase.labeling.engines.tblite import METHODS as TBLITE_METHODS
from interphase.labeling.levels import LevelSpec

#: Elements a PySCF basis is tried on: one that loads shows the name is known
#: (a basis need not cover every element, so one element alone could mislead).
PYSCF_PROBE_ELEMENTS = ("H", "Li", "C", "O")


class LevelNameError(ValueError):
    """A level's method or basis is unknown to its engine (one line, naming the level)."""


@dataclass(frozen=True)
class LevelCheck:
    """What was checked of one level."""

    level: str
    #: What could not be checked here and why; empty when everything was.
    unchecked: str = ""


def check_level(spec: LevelSpec) -> LevelCheck:
    """Look the method and basis of ``spec`` up in its engine.

    Raises
    ------
    LevelNameError
        The engine does not know the method or basis, needs a basis that is
        missing, or takes none and one is given.
    """
    auxbasis = spec.settings.get("auxbasis") if spec.engine == "pyscf" else None
    problem, unchecked = _check(spec.engine, spec.method, spec.basis, auxbasis, _psi4_key())
    if problem:
        raise LevelNameError(f"level {spec.name!r}: {problem}")
    return LevelCheck(spec.name, unchecked)


def _psi4_key() -> tuple[str | None, str, str]:
    """What the Psi4 check depends on (cache key): executable, PSIDATADIR, PSIPATH."""
    executable = shutil.which(Psi4Engine().executable)
    return executable, os.environ.get("PSIDATADIR", ""), os.environ.get("PSIPATH", "")


@cache
def _check(
    engine: str,
    method: str,
    basis: str | None,
    auxbasis: str | None,
    psi4: tuple[str | None, str, str],
) -> tuple[str, str]:
    """(problem, unchecked): the first problem found ('' if none) and what was not checked."""
    if engine not in ENGINES:  # LevelSpec refuses these already; kept for a direct call
        return f"unknown engine {engine!r}; known engines: {', '.join(sorted(ENGINES))}", ""
    if engine in ("tblite", "gpaw", "analytic"):
        return _fixed_methods(engine, method, basis), ""
    if not basis:
        return f"{engine} needs a basis set (e.g. def2-SVP)", ""
    if engine == "pyscf":
        return _pyscf(method, basis, auxbasis)
    return _psi4(basis, psi4)


def _fixed_methods(engine: str, method: str, basis: str | None) -> str:
    methods = {"tblite": TBLITE_METHODS, "gpaw": tuple(GPAW_METHODS), "analytic": ANALYTIC_METHODS}[
        engine
    ]
    if method not in methods:
        return f"{engine} has no method {method!r}; choose one of {', '.join(methods)}"
    if basis:
        return f"{engine} takes no basis set (got {basis!r}); remove `basis`"
    return ""


def _pyscf(method: str, basis: str, auxbasis: str | None) -> tuple[str, str]:
    try:
        from pyscf.dft import dft_parser, libxc
    except ImportError as error:
        return "", f"pyscf is not installed here ({error}): method and basis not checked"
    for name, what in ((basis, "basis"), (auxbasis, "auxbasis")):
        if name and not _pyscf_basis_known(name):
            return f"pyscf does not know the {what} {name!r}", ""
    if method.upper() != "HF":  # the engine's own spelling of Hartree-Fock
        try:
            xc = dft_parser.parse_dft(method.lower())[0]
            libxc.parse_xc(xc)
        except (KeyError, ValueError) as error:
            reason = str(error).strip("\"'")
            return f"pyscf does not know the method {method!r} ({reason})", ""
    return "", ""


def _pyscf_basis_known(name: str) -> bool:
    from pyscf.gto.basis import load
    from pyscf.lib.exceptions import BasisNotFoundError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "may be available in basis-set-exchange"
        for element in PYSCF_PROBE_ELEMENTS:
            try:
                load(name, element)
            except (BasisNotFoundError, KeyError, ValueError):
                continue
            return True
    return False


def _psi4(basis: str, psi4: tuple[str | None, str, str]) -> tuple[str, str]:
    executable, data_dir, psi_path = psi4
    if executable is None:
        return "", "psi4 is not installed here: method and basis not checked"
    library = Path(data_dir) if data_dir else Path(executable).resolve().parents[1] / "share/psi4"
    if not (library / "basis").is_dir():
        return "", f"psi4's basis library is not at {library / 'basis'}: basis not checked"
    folders = [Path(p) for p in psi_path.split(os.pathsep) if p] + [library / "basis"]
    name = basis[: -len("-decon")] if basis.lower().endswith("-decon") else basis
    if not any((folder / psi4_basis_file(name)).is_file() for folder in folders):
        return (
            f"psi4 has no basis {basis!r} (no {psi4_basis_file(name)} in {library / 'basis'})",
            "",
        )
    return "", "psi4 method names are not checked: that needs psi4's Python module"


def psi4_basis_file(name: str) -> str:
    """The file Psi4 reads basis ``name`` from (its ``BasisSet.make_filename``)."""
    for old, new in (("(", "_"), (")", "_"), (",", "_"), ("*", "s"), ("+", "p")):
        name = name.replace(old, new)
    return f"{name.lower()}.gbs"
