"""Installation settings, read from ``INTERPHASE_*`` environment variables.

Nothing here touches the disk at import time; :func:`get_settings` builds a
fresh, validated object each call so tests can change the environment.

The data directory does not depend on where a command runs: it is
``INTERPHASE_DATA_DIR`` when set, else the nearest ``.interphase`` directory
at or above the working directory (the way git finds ``.git``), else the
per-user data directory ``$XDG_DATA_HOME/interphase`` (by default
``~/.local/share/interphase``).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Name of a project's data directory, found upwards from the working directory.
PROJECT_DATA_DIR = ".interphase"
#: File name of the embedded SQLite database inside the data directory.
EMBEDDED_DATABASE = "interphase.sqlite"


def user_data_dir() -> Path:
    """The per-user data directory: ``$XDG_DATA_HOME/interphase``, else under ``~/.local/share``."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "interphase"


def _working_directory() -> Path | None:
    try:
        return Path.cwd()
    except OSError:  # the working directory was deleted
        return None


def project_data_dir(start: Path | None = None) -> Path | None:
    """The nearest ``.interphase`` directory at or above ``start`` (the working directory)."""
    here = start or _working_directory()
    if here is None:
        return None
    here = here.absolute()
    for folder in (here, *here.parents):
        candidate = folder / PROJECT_DATA_DIR
        try:
            if candidate.is_dir():
                return candidate
        except OSError:  # a folder on the way up we may not look into
            continue
    return None


def default_data_dir() -> Path:
    """The nearest ``.interphase`` at or above the working directory, else the per-user one."""
    return project_data_dir() or user_data_dir()


class Settings(BaseSettings):
    """Where a local installation keeps its state."""

    model_config = SettingsConfigDict(env_prefix="INTERPHASE_", extra="forbid")

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description=(
            "Directory holding all local state: SQLite database, artifacts, models. Default: "
            "the nearest .interphase directory at or above the working directory, else "
            "$XDG_DATA_HOME/interphase (~/.local/share/interphase)."
        ),
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the provenance database, e.g. "
            "postgresql+psycopg://postgres@127.0.0.1:5432/interphase. "
            "Default: SQLite file <data_dir>/interphase.sqlite."
        ),
    )

    @property
    def embedded_database_path(self) -> Path:
        """The SQLite file of the embedded default database (used when no URL is configured)."""
        return (self.data_dir / EMBEDDED_DATABASE).resolve()

    @property
    def resolved_database_url(self) -> str:
        """The database URL actually used (SQLite under ``data_dir`` by default)."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.embedded_database_path}"

    @property
    def artifacts_dir(self) -> Path:
        """Directory for binary artifacts (trained models, GP states)."""
        return self.data_dir / "artifacts"

    def database_origin(self) -> str:
        """Why this database is the one in use, in words (for messages and ``status``)."""
        if self.database_url:
            return "INTERPHASE_DATABASE_URL"
        if "data_dir" in self.model_fields_set:
            return f"the data directory INTERPHASE_DATA_DIR={self.data_dir}"
        if self.data_dir.name == PROJECT_DATA_DIR:
            return f"the nearest {PROJECT_DATA_DIR} directory at or above the working directory"
        where = _working_directory()
        return (
            f"the per-user data directory: no {PROJECT_DATA_DIR} directory in "
            f"{where or 'the working directory'} or above it"
        )


def get_settings() -> Settings:
    """Settings from the current environment."""
    return Settings()
