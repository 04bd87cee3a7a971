"""campaign schedules: a cron expression or an interval per campaign

Revision ID: 0006s
Revises: 0005
Create Date: 2026-12-02 15:00:00

``interphase campaign schedule`` records here when a campaign runs by itself;
``interphase serve`` turns every active row into a Prefect deployment. The
definitions live in the interphase database because the embedded default has
no Prefect server until ``serve`` starts one.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = '0006s'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Add the campaign_schedule table."""
    op.create_table(
        'campaign_schedule',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('campaign_id', sa.Integer(), nullable=False),
        sa.Column('cron', sa.String(200), nullable=True),
        sa.Column('interval_seconds', sa.Integer(), nullable=True),
        sa.Column('timezone', sa.String(64), nullable=False),
        sa.Column('iterations_per_run', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_campaign_schedule_campaign_id_campaign'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_schedule')),
        sa.UniqueConstraint('campaign_id', name=op.f('uq_campaign_schedule_campaign_id')),
    )


def downgrade() -> None:
    """Drop the campaign_schedule table."""
    op.drop_table('campaign_schedule')
