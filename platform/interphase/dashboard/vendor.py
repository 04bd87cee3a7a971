"""The dashboard's bundled JavaScript: pinned npm packages, refreshed and checked here.

The browser loads nothing from the network: htmx and 3Dmol.js are copied from
their npm packages into ``static/vendor/`` (with their licence files), and
Plotly.js is served from the file the ``plotly`` Python package ships.

``python -m interphase.dashboard.vendor`` (``make vendor``) downloads the pinned
versions with ``npm pack``, checks every file against its pinned SHA-256 and
rewrites ``static/vendor/`` and its ``VERSIONS`` note.
``python -m interphase.dashboard.vendor --check`` checks the files in place
(offline).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

VENDOR_DIR = Path(__file__).parent / "static" / "vendor"


@dataclass(frozen=True)
class VendoredFile:
    """One file taken from an npm package: where it is in the tarball, its name here."""

    source: str
    target: str
    sha256: str


@dataclass(frozen=True)
class NpmPackage:
    """A pinned npm package and the files the dashboard takes from it."""

    name: str
    version: str
    licence: str
    files: tuple[VendoredFile, ...]


# htmx 2.x: 4.x renames the events the dashboard uses (htmx:configRequest ...).
PACKAGES = (
    NpmPackage(
        "htmx.org",
        "2.0.11",
        "0BSD",
        (
            VendoredFile(
                "dist/htmx.min.js",
                "htmx.min.js",
                "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717",
            ),
            VendoredFile(
                "LICENSE",
                "htmx.LICENSE",
                "d3d2456f76414f2456104660ebd65aff1c04cd7966b942bdabd63f3cdb316a38",
            ),
        ),
    ),
    NpmPackage(
        "3dmol",
        "2.5.5",
        "BSD-3-Clause",
        (
            VendoredFile(
                "build/3Dmol-min.js",
                "3Dmol-min.js",
                "f7cc78921ae72e7623e89cdd111434f58c2efddd2ffda1cd212644b406fb8016",
            ),
            VendoredFile(
                "LICENSE",
                "3Dmol.LICENSE",
                "4c6eaaed856f3f28a3b1a98e74f4a8a71618de7d51ea4155c29f6f793bcef861",
            ),
            VendoredFile(
                "build/3Dmol-min.js.LICENSE.txt",
                "3Dmol-min.js.LICENSE.txt",
                "ae3bfc688d0c9687b76e0ecc7fece0b393bcb4acf2aee09e19dda697eaa10b16",
            ),
        ),
    ),
)


class VendorError(RuntimeError):
    """A vendored file is missing or its checksum differs from the pin."""


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check(vendor_dir: Path = VENDOR_DIR) -> list[str]:
    """Problems with the vendored files (missing, or checksum not the pinned one)."""
    problems = []
    for package in PACKAGES:
        for file in package.files:
            path = vendor_dir / file.target
            if not path.is_file():
                problems.append(f"{file.target} ({package.name}) is missing")
            elif sha256_of(path) != file.sha256:
                problems.append(
                    f"{file.target} ({package.name} {package.version}) has sha256 "
                    f"{sha256_of(path)}, pinned {file.sha256}"
                )
    return problems


def versions_note() -> str:
    """Text of ``static/vendor/VERSIONS``."""
    lines = [
        "# Bundled browser libraries: package, version, licence, file, sha256.",
        "# Refresh with `python -m interphase.dashboard.vendor` (npm pack, pinned checksums).",
    ]
    for package in PACKAGES:
        for file in package.files:
            lines.append(
                f"{package.name}\t{package.version}\t{package.licence}\t{file.target}\t{file.sha256}"
            )
    lines.append(
        "# plotly.min.js is not copied here: it is served from the plotly Python "
        "package (plotly/package_data/plotly.min.js, version pinned in pyproject.toml)."
    )
    return "\n".join(lines) + "\n"


def refresh(vendor_dir: Path = VENDOR_DIR) -> None:
    """Download the pinned packages with ``npm pack`` and copy their files, checked."""
    vendor_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for package in PACKAGES:
            tarball = _npm_pack(package, work)
            unpacked = work / package.name
            with tarfile.open(tarball) as archive:
                archive.extractall(unpacked, filter="data")
            for file in package.files:
                source = unpacked / "package" / file.source
                if sha256_of(source) != file.sha256:
                    raise VendorError(
                        f"{package.name}@{package.version} {file.source} has sha256 "
                        f"{sha256_of(source)}, pinned {file.sha256}: update the pin in "
                        "interphase/dashboard/vendor.py only after reviewing the change"
                    )
                shutil.copyfile(source, vendor_dir / file.target)
    (vendor_dir / "VERSIONS").write_text(versions_note())


def _npm_pack(package: NpmPackage, work: Path) -> Path:
    if shutil.which("npm") is None:
        raise VendorError("npm is not installed; apt-get install npm")
    done = subprocess.run(
        ["npm", "pack", f"{package.name}@{package.version}", "--silent"],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise VendorError(f"npm pack {package.name}@{package.version} failed: {done.stderr}")
    return work / done.stdout.strip().splitlines()[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the files in place")
    args = parser.parse_args(argv)
    try:
        if not args.check:
            refresh()
    except VendorError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    problems = check()
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems:
        print(f"vendored files match their pins ({VENDOR_DIR})")
    return 2 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
