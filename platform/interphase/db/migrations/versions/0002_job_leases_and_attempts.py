"""job leases, heartbeats and attempt process details

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 11:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Add lease/heartbeat and requeue reason to jobs; worker and process details to attempts."""
    with op.batch_alter_table('labeling_job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('requeued_by', sa.String(length=20), nullable=True))
        batch_op.create_index('ix_labeling_job_state_lease', ['state', 'lease_expires_at'], unique=False)

    with op.batch_alter_table('job_attempt', schema=None) as batch_op:
        batch_op.add_column(sa.Column('worker', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('trigger', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('pid', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('exit_code', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('peak_memory_mb', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop the columns added by upgrade."""
    with op.batch_alter_table('job_attempt', schema=None) as batch_op:
        for column in ('heartbeat_at', 'peak_memory_mb', 'exit_code', 'pid', 'trigger', 'worker'):
            batch_op.drop_column(column)

    with op.batch_alter_table('labeling_job', schema=None) as batch_op:
        batch_op.drop_index('ix_labeling_job_state_lease')
        batch_op.drop_column('requeued_by')
        batch_op.drop_column('heartbeat_at')
