"""step progress: how far a running campaign step is, and structures per epoch split

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-09 15:00:00

A long step (train, label, explore) reports progress as it runs; until now
that went only to the console, so the dashboard showed a 15-minute training
step as silent since it started. ``campaign_step.progress`` holds the newest
report (``{"description": "train: epoch", "done": 12, "total": 50}``) and
``progress_at`` when it was written (at most about once a second).

``training_epoch_metric.n_structures`` (rows with head NULL) is how many
structures the split's loss was taken over, so the dashboard can say when a
validation split is too small to judge. Rows written before stay NULL.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Add campaign_step.progress, progress_at and training_epoch_metric.n_structures."""
    with op.batch_alter_table('campaign_step', schema=None) as batch_op:
        batch_op.add_column(sa.Column('progress', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('progress_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('training_epoch_metric', schema=None) as batch_op:
        batch_op.add_column(sa.Column('n_structures', sa.Integer(), nullable=True))


def downgrade() -> None:
    """Drop what upgrade added."""
    with op.batch_alter_table('training_epoch_metric', schema=None) as batch_op:
        batch_op.drop_column('n_structures')
    with op.batch_alter_table('campaign_step', schema=None) as batch_op:
        batch_op.drop_column('progress_at')
        batch_op.drop_column('progress')
