"""Installation settings, read from ``INTERPHASE_*`` environment variables.

Nothing here touches the disk at import time; :func:`get_settings` builds a
fresh, validated object each call so tests can change the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where a local installation keeps its state."""

    model_config = SettingsConfigDict(env_prefix="INTERPHASE_", extra="forbid")

    data_dir: Path = Field(
        default=Path(".interphase"),
        description="Directory holding all local state: SQLite database, artifacts, models.",
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
    def resolved_database_url(self) -> str:
        """The database URL actually used (SQLite under ``data_dir`` by default)."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'interphase.sqlite').resolve()}"

    @property
    def artifacts_dir(self) -> Path:
        """Directory for binary artifacts (trained models, GP states)."""
        return self.data_dir / "artifacts"


def get_settings() -> Settings:
    """Settings from the current environment."""
    return Settings()
