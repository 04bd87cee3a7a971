"""Generate a synthetic dataset in the paper-json format for benchmarks and tests.

Content imitates the Li / carbonate-electrolyte dataset: molecular clusters
of ethylene carbonate (EC), dimethyl carbonate (DMC) and Li atoms with 10-60
atoms, labelled at wB97X-D3BJ/def2-TZVPD (energies, gradient, dipole) with
GFN2-xTB charges, plus periodic bcc Li supercells (2x2x2 or 3x3x3) labelled
at PBE-D3. Geometries are sane (rigid molecule templates placed on a grid,
randomly rotated, rejected when too close, small Gaussian noise), so every
entry passes :func:`interphase.structures.validate.validate_structure`,
including the fragment check. Label values are random but of realistic size.

Usage::

    python bench/make_paper_dataset.py OUT.json N [--seed S] [--periodic-fraction F]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
from ase.data import covalent_radii

MOLECULE_LEVEL = "wB97X-D3BJ_def2-TZVPD"
PERIODIC_LEVEL = "PBE-D3"
BCC_LATTICE_ANGSTROM = 3.49
GRID_SPACING_ANGSTROM = 5.5
MIN_ATOMS, MAX_ATOMS = 10, 60

# Approximate gas-phase geometries (Å), centred later. EC: planar ring
# O=C(-O-CH2-CH2-O-); DMC: CH3-O-C(=O)-O-CH3, cis-cis.
_EC = (
    [6, 8, 8, 8, 6, 6, 1, 1, 1, 1],
    [
        [0.00, 0.00, 0.00],
        [0.00, 1.19, 0.00],
        [1.13, -0.70, 0.00],
        [-1.13, -0.70, 0.00],
        [0.77, -2.08, 0.00],
        [-0.77, -2.08, 0.00],
        [1.20, -2.45, 0.92],
        [1.20, -2.45, -0.92],
        [-1.20, -2.45, 0.92],
        [-1.20, -2.45, -0.92],
    ],
    # GFN2-xTB-like partial charges (e)
    [0.55, -0.45, -0.33, -0.33, 0.04, 0.04, 0.07, 0.07, 0.07, 0.07],
)
_DMC = (
    [6, 8, 8, 8, 6, 6, 1, 1, 1, 1, 1, 1],
    [
        [0.00, 0.00, 0.00],
        [0.00, 1.20, 0.00],
        [1.15, -0.68, 0.00],
        [-1.15, -0.68, 0.00],
        [2.38, 0.05, 0.00],
        [-2.38, 0.05, 0.00],
        [3.22, -0.64, 0.00],
        [2.42, 0.69, 0.89],
        [2.42, 0.69, -0.89],
        [-3.22, -0.64, 0.00],
        [-2.42, 0.69, 0.89],
        [-2.42, 0.69, -0.89],
    ],
    [0.55, -0.45, -0.32, -0.32, 0.02, 0.02, 0.09, 0.09, 0.09, 0.09, 0.09, 0.09],
)
_LI = ([3], [[0.0, 0.0, 0.0]], [0.6])
_TEMPLATES = [
    (np.array(z), np.array(p) - np.mean(p, axis=0), np.array(q)) for z, p, q in (_EC, _DMC, _LI)
]
_TEMPLATE_SIZES = [len(z) for z, _, _ in _TEMPLATES]
#: Cumulative probabilities of EC, DMC, Li.
_TEMPLATE_CUMULATIVE = np.cumsum([0.45, 0.35, 0.20])[:-1]

# Rough free-atom energies (Hartree) for total = sum(atoms) + atomization.
_ATOM_ENERGY_HARTREE = {1: -0.5002, 3: -7.4782, 6: -37.8462, 8: -75.0645}
_ATOM_ENERGY_TABLE = np.zeros(9)
for _z, _e in _ATOM_ENERGY_HARTREE.items():
    _ATOM_ENERGY_TABLE[_z] = _e

_GRID_SITES = np.array(
    sorted(
        (np.array(np.meshgrid(*[np.arange(-3, 4)] * 3)).reshape(3, -1).T).tolist(),
        key=lambda s: (s[0] ** 2 + s[1] ** 2 + s[2] ** 2, s),
    ),
    dtype=float,
)


#: Entries generated per work unit; each chunk has its own seed (spawned from
#: the user's seed), so the file does not depend on the number of workers.
CHUNK_ENTRIES = 2000


def generate_paper_dataset(
    path: str | Path,
    n_entries: int,
    seed: int = 0,
    periodic_fraction: float = 0.05,
    *,
    workers: int | None = None,
) -> None:
    """Write ``n_entries`` synthetic entries (keys ``"0"``, ``"1"``, ...) to ``path``.

    Parameters
    ----------
    path
        Output JSON file.
    n_entries
        Number of entries.
    seed
        Seed of the random generator; the same seed gives the same file.
    periodic_fraction
        Probability that an entry is a periodic bcc Li cell.
    workers
        Processes that format chunks in parallel (JSON encoding of floats is
        the bottleneck); default: the number of CPUs, 1 runs in-process.
        Chunks are written in order, so the output does not depend on it.
    """
    starts = list(range(0, n_entries, CHUNK_ENTRIES))
    seeds = np.random.SeedSequence(seed).spawn(len(starts))
    tasks = [
        (start, min(start + CHUNK_ENTRIES, n_entries), chunk_seed, periodic_fraction)
        for start, chunk_seed in zip(starts, seeds, strict=True)
    ]
    workers = min(workers or os.cpu_count() or 1, len(tasks))
    with open(path, "w", encoding="utf-8") as stream:
        stream.write("{")
        if workers <= 1:
            for task in tasks:
                stream.write(_format_chunk(task))
        else:
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for text in pool.imap(_format_chunk, tasks):
                    stream.write(text)
        stream.write("\n}\n")


def _format_chunk(task: tuple[int, int, np.random.SeedSequence, float]) -> str:
    """JSON text of entries ``start..stop-1``, each preceded by its separator."""
    start, stop, chunk_seed, periodic_fraction = task
    rng = np.random.default_rng(chunk_seed)
    parts = []
    for index in range(start, stop):
        periodic = rng.random() < periodic_fraction
        entry = _periodic_li_entry(rng) if periodic else _cluster_entry(rng)
        separator = "\n" if index == 0 else ",\n"
        parts.append(f'{separator}"{index}": {json.dumps(entry)}')
    return "".join(parts)


def _random_rotations(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` uniformly random rotation matrices, shape (count, 3, 3)."""
    q = rng.normal(size=(count, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - z * w),
            2 * (x * z + y * w),
            2 * (x * y + z * w),
            1 - 2 * (x * x + z * z),
            2 * (y * z - x * w),
            2 * (x * z - y * w),
            2 * (y * z + x * w),
            1 - 2 * (x * x + y * y),
        ],
        axis=1,
    ).reshape(count, 3, 3)


def _choose_molecules(rng: np.random.Generator) -> list[int]:
    target = int(rng.integers(MIN_ATOMS, MAX_ATOMS + 1))
    # At most `target` picks are needed (Li has 1 atom); draw them in one go.
    kinds = np.searchsorted(_TEMPLATE_CUMULATIVE, rng.random(target), side="right").tolist()
    chosen: list[int] = []
    total = 0
    for kind in kinds:
        if total >= target:
            break
        size = _TEMPLATE_SIZES[kind]
        if total + size > MAX_ATOMS:
            kind, size = 2, 1  # top up with Li atoms
        chosen.append(kind)
        total += size
    return chosen


def _place_cluster(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    kinds = _choose_molecules(rng)
    rotations = _random_rotations(rng, len(kinds))
    numbers = np.concatenate([_TEMPLATES[kind][0] for kind in kinds])
    charges = np.concatenate([_TEMPLATES[kind][2] for kind in kinds])
    positions = np.empty((len(numbers), 3))
    radii = covalent_radii[numbers]
    start = 0
    site = 0
    for kind, rotation in zip(kinds, rotations, strict=True):
        template = _TEMPLATES[kind][1]
        stop = start + len(template)
        candidate = template @ rotation.T
        attempt = 0
        centre = _GRID_SITES[site] * GRID_SPACING_ANGSTROM
        while not _fits(candidate + centre, radii[start:stop], positions[:start], radii[:start]):
            attempt += 1
            if attempt % 20 == 0:  # this site is crowded: move on to the next one
                site += 1
                centre = _GRID_SITES[site] * GRID_SPACING_ANGSTROM
            candidate = template @ _random_rotations(rng, 1)[0].T
        site += 1
        positions[start:stop] = candidate + centre
        start = stop
    positions += rng.normal(scale=0.02, size=positions.shape)
    return numbers, positions, charges


def _fits(
    candidate: np.ndarray, radii: np.ndarray, placed: np.ndarray, placed_radii: np.ndarray
) -> bool:
    """Contacts at least covalent sum + 0.6 Å: clearly non-bonded, still a cluster."""
    if not len(placed):
        return True
    diff = candidate[:, None, :] - placed[None, :, :]
    min_dist = radii[:, None] + placed_radii[None, :] + 0.6
    return bool((np.einsum("ijk,ijk->ij", diff, diff) >= min_dist * min_dist).all())


def _cluster_entry(rng: np.random.Generator) -> dict[str, object]:
    numbers, positions, charges = _place_cluster(rng)
    n_atoms = len(numbers)
    charge = int(rng.choice([-1, 0, 1], p=[0.15, 0.7, 0.15]))
    n_electrons = int(numbers.sum()) - charge
    multiplicity = 1 if n_electrons % 2 == 0 else 2
    atomization = -0.12 * n_atoms + rng.normal(scale=0.05)
    gradient = rng.normal(scale=0.03, size=(n_atoms, 3))
    gradient -= gradient.mean(axis=0)
    charges = charges + rng.normal(scale=0.03, size=n_atoms)
    charges -= (charges.sum() - charge) / n_atoms
    return {
        "atomicNumbers": numbers.tolist(),
        "elements": [_SYMBOL[z] for z in numbers.tolist()],
        "positions": positions.tolist(),
        "charge": charge,
        "multiplicity": multiplicity,
        "labels": {
            MOLECULE_LEVEL: {
                "totalEnergy": float(_ATOM_ENERGY_TABLE[numbers].sum() + atomization),
                "atomizationEnergy": float(atomization),
                "gradient": gradient.tolist(),
                "dipoleMoment": rng.normal(scale=0.6, size=3).tolist(),
                "xtbCharges": charges.tolist(),
            }
        },
    }


_SYMBOL = {1: "H", 3: "Li", 6: "C", 8: "O"}
_BCC_BASIS = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])


def _periodic_li_entry(rng: np.random.Generator) -> dict[str, object]:
    repeat = int(rng.integers(2, 4))
    lattice = BCC_LATTICE_ANGSTROM * (1.0 + rng.normal(scale=0.02))
    cell = repeat * lattice * (np.eye(3) + rng.normal(scale=0.01, size=(3, 3)))
    grid = np.array(np.meshgrid(*[np.arange(repeat)] * 3)).reshape(3, -1).T
    fractional = ((grid[:, None, :] + _BCC_BASIS[None, :, :]).reshape(-1, 3)) / repeat
    positions = fractional @ cell + rng.normal(scale=0.05, size=fractional.shape)
    n_atoms = len(positions)
    atomization = -0.065 * n_atoms + rng.normal(scale=0.02)
    gradient = rng.normal(scale=0.01, size=(n_atoms, 3))
    gradient -= gradient.mean(axis=0)
    return {
        "atomicNumbers": [3] * n_atoms,
        "elements": ["Li"] * n_atoms,
        "positions": positions.tolist(),
        "charge": 0,
        "multiplicity": 1,
        "lattice": cell.tolist(),
        "labels": {
            PERIODIC_LEVEL: {
                "totalEnergy": float(_ATOM_ENERGY_HARTREE[3] * n_atoms + atomization),
                "atomizationEnergy": float(atomization),
                "gradient": gradient.tolist(),
            }
        },
    }


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: ``OUT N [--seed S] [--periodic-fraction F]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="output paper-json file")
    parser.add_argument("n_entries", type=int, help="number of entries")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--periodic-fraction", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=None, help="default: CPU count")
    args = parser.parse_args(argv)
    generate_paper_dataset(
        args.out, args.n_entries, args.seed, args.periodic_fraction, workers=args.workers
    )


if __name__ == "__main__":
    main()
