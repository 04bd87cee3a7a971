"""GP input descriptors: aligned Cartesian coordinates or SOAP with its Jacobian.

A subset GP sees each structure as one input vector. Two kinds are offered,
selectable per subset and stored with the model (``GPRModel.descriptor``):

``cartesian``
    Flattened Cartesian coordinates (atoms ordered by atomic number). Molecules
    are centred and rotated onto the first training structure (Kabsch), so
    rigid motions are not new data; periodic cells use raw coordinates (and
    ignore cell changes within a subset).
``soap``
    Per-atom SOAP power spectra (dscribe, the ``soap`` extra) concatenated in
    the same atom order (``average="off"``), or their mean over atoms
    (``average="outer"``). Invariant to rotation and translation by
    construction. The GP still sees forces: the kernel's derivative blocks are
    contracted with the Jacobian dD/dx (:mod:`interphase.gpr.kernels`).

dscribe 2.1.2 (checked against its source and against finite differences):
analytical SOAP derivatives exist only for non-periodic systems, the ``gto``
radial basis, ``average="off"``, no weighting and no mu1nu1/mu2 compression;
anything else (periodic cells in particular) uses its numerical central
differences, which agree with ours to ~1e-7. Derivatives must be taken with
``attach=True``: with dscribe's default (``attach=False``) a centre stays fixed
in space when its own atom moves, which is not the derivative of the
descriptor (errors of the order of the largest entry). Averaged output has no
analytical derivatives, so :func:`soap_with_jacobian` always asks for
``average="off"`` and averages itself for ``"outer"``.

Size: a SOAP input has N·F features (F per atom; 4 species, n_max=4, l_max=3
gives F = 544) and a Jacobian of N·F × 3N floats per structure, which the
memory plan (:mod:`interphase.gpr.memory`) counts; ``average="outer"`` divides
both by N.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

SOAP_HINT = "pip install 'interphase[soap]'"


class SoapMissingError(ImportError):
    """dscribe (the ``soap`` extra) is not installed."""


class DescriptorSettings(BaseModel):
    """Which input a subset GP uses (stored in ``GPRModel.descriptor``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["cartesian", "soap"] = Field(
        default="cartesian",
        description="'cartesian': aligned flattened coordinates; 'soap': SOAP with Jacobian.",
    )
    r_cut_angstrom: float = Field(
        default=5.0, gt=1.0, le=12.0, description="SOAP cutoff radius (Å)."
    )
    n_max: int = Field(default=4, ge=1, le=12, description="SOAP radial basis functions.")
    l_max: int = Field(default=3, ge=0, le=9, description="SOAP maximum spherical-harmonic degree.")
    sigma_angstrom: float = Field(
        default=0.5, gt=0.0, le=2.0, description="Width of the SOAP atomic Gaussians (Å)."
    )
    average: Literal["off", "outer"] = Field(
        default="off",
        description="'off': per-atom SOAP concatenated in atom order; 'outer': mean over atoms.",
    )

    def stored(self) -> dict[str, Any]:
        """JSON-ready form for the database (only the fields that matter for the kind)."""
        if self.kind == "cartesian":
            return {"kind": "cartesian"}
        return self.model_dump()


def soap_available() -> bool:
    """True when dscribe can be imported."""
    try:
        import dscribe  # noqa: F401
    except ImportError:
        return False
    return True


def soap_feature_count(numbers: np.ndarray, settings: DescriptorSettings) -> int:
    """Length F' of one structure's SOAP input (N·F for ``"off"``, F for ``"outer"``)."""
    n_species = len(np.unique(numbers))
    pairs = n_species * settings.n_max * (n_species * settings.n_max + 1) // 2
    per_atom = pairs * (settings.l_max + 1)
    return per_atom if settings.average == "outer" else per_atom * len(numbers)


def soap_with_jacobian(
    numbers: np.ndarray,
    positions_angstrom: np.ndarray,
    settings: DescriptorSettings,
    *,
    pbc: tuple[bool, bool, bool] = (False, False, False),
    cells_angstrom: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """SOAP inputs and their Jacobian for m structures of one subset.

    Parameters
    ----------
    numbers
        (N,) atomic numbers, in the order of ``positions_angstrom``.
    positions_angstrom
        (m, N, 3) structures.
    settings
        SOAP settings (``kind`` must be ``"soap"``).
    pbc, cells_angstrom
        Periodic directions and the (m, 3, 3) cells; cells are required when
        any direction is periodic.

    Returns
    -------
    features, jacobian
        (m, F') descriptors and (m, F', 3N) derivatives dD/dx (x flattened atom-major).
    """
    soap = _soap(numbers, settings, periodic=any(pbc))
    positions = np.asarray(positions_angstrom, dtype=np.float64)
    periodic = any(pbc)
    if periodic and (cells_angstrom is None or len(cells_angstrom) != len(positions)):
        raise ValueError(
            "periodic SOAP inputs need one (3, 3) cell per structure (cells_angstrom); "
            f"got {None if cells_angstrom is None else np.shape(cells_angstrom)}"
        )
    features, jacobians = [], []
    for k, structure in enumerate(positions):
        atoms = _atoms(
            numbers, structure, pbc, None if cells_angstrom is None else cells_angstrom[k]
        )
        # (centres, atoms, 3, F) and (centres, F); analytical where dscribe has it.
        # attach=True: a centre moves with its atom (the true derivative).
        derivative, descriptor = soap.derivatives(atoms, method="auto", attach=True)
        n_atoms, n_per_atom = descriptor.shape
        if settings.average == "outer":
            features.append(descriptor.mean(axis=0))
            jacobians.append(derivative.mean(axis=0).transpose(2, 0, 1).reshape(n_per_atom, -1))
        else:
            features.append(descriptor.reshape(-1))
            jacobians.append(
                derivative.transpose(0, 3, 1, 2).reshape(n_atoms * n_per_atom, 3 * n_atoms)
            )
    return np.stack(features), np.stack(jacobians)


def _soap(numbers: np.ndarray, settings: DescriptorSettings, periodic: bool) -> Any:
    try:
        from dscribe.descriptors import SOAP
    except ImportError as error:
        raise SoapMissingError(
            f"the SOAP descriptor needs dscribe; install it with {SOAP_HINT}, or use "
            "--descriptor cartesian"
        ) from error
    if settings.kind != "soap":
        raise ValueError(f"soap_with_jacobian got descriptor kind {settings.kind!r}")
    return SOAP(
        species=sorted({int(z) for z in numbers}),
        r_cut=settings.r_cut_angstrom,
        n_max=settings.n_max,
        l_max=settings.l_max,
        sigma=settings.sigma_angstrom,
        periodic=periodic,
        average="off",
        dtype="float64",
    )


def _atoms(
    numbers: np.ndarray, positions: np.ndarray, pbc: tuple[bool, bool, bool], cell: Any
) -> Any:
    from ase import Atoms

    if any(pbc):
        return Atoms(numbers=numbers, positions=positions, cell=cell, pbc=pbc)
    return Atoms(numbers=numbers, positions=positions)
