"""one open labeling job per structure and level; a retry budget per job

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 10:00:00

Before the partial unique index is created, surplus open jobs of one
(structure, level) are cancelled: a running one is kept if there is one,
otherwise the oldest pending one; each cancelled job says which job it
duplicated. History (attempts) is kept.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

OPEN = "state IN ('pending', 'running')"


def _cancel_duplicates() -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.text(
        f"SELECT id, structure_id, level_id, state FROM labeling_job WHERE {OPEN} "
        "ORDER BY structure_id, level_id, CASE WHEN state = 'running' THEN 0 ELSE 1 END, id"
    )).all()
    kept: dict[tuple[int, int], int] = {}
    for job_id, structure_id, level_id, _state in rows:
        key = (structure_id, level_id)
        if key not in kept:
            kept[key] = job_id
            continue
        connection.execute(
            sa.text(
                "UPDATE labeling_job SET state = 'cancelled', lease_expires_at = NULL, "
                "error_message = :message WHERE id = :id"
            ),
            {"id": job_id, "message": f"cancelled by migration 0004: duplicate of job {kept[key]}"},
        )


def upgrade() -> None:
    """Cancel duplicate open jobs, then add the partial unique index and the budget column."""
    _cancel_duplicates()
    with op.batch_alter_table('labeling_job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('budget_start_attempt', sa.Integer(), nullable=False, server_default='0'))
    op.create_index(
        'uq_labeling_job_open_structure_level',
        'labeling_job',
        ['structure_id', 'level_id'],
        unique=True,
        sqlite_where=sa.text(OPEN),
        postgresql_where=sa.text(OPEN),
    )


def downgrade() -> None:
    """Drop the index and the column (cancelled duplicates stay cancelled)."""
    op.drop_index('uq_labeling_job_open_structure_level', table_name='labeling_job')
    with op.batch_alter_table('labeling_job', schema=None) as batch_op:
        batch_op.drop_column('budget_start_attempt')
