"""Alembic environment: runs migrations against the URL set by interphase."""

from __future__ import annotations

from alembic import context

from interphase.db.models import Base
from interphase.db.session import make_engine

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url is not None  # set by interphase.db.session.upgrade

with make_engine(url).connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
