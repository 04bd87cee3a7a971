"""dashboard indexes: jobs by state, error class, iteration, campaign activity and structure

Revision ID: 0004d
Revises: 0004
Create Date: 2026-12-02 09:00:00

Each jobs filter of the dashboard is an equality that, with the job id second,
lets a page (newest first, 50 rows) be read straight off an index; campaign
activity reads the newest job update per campaign; a structure's page finds
its jobs and synthetic labels without scanning the tables.
"""
from typing import Sequence, Union

from alembic import op


revision: str = '0004d'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

INDEXES = (
    ('labeling_job', 'ix_labeling_job_state_id', ['state', 'id']),
    ('labeling_job', 'ix_labeling_job_error_class_id', ['error_class', 'id']),
    ('labeling_job', 'ix_labeling_job_iteration_id', ['iteration_id', 'id']),
    ('labeling_job', 'ix_labeling_job_campaign_updated', ['campaign_id', 'updated_at']),
    ('labeling_job', 'ix_labeling_job_structure_id', ['structure_id']),
    ('synthetic_label', 'ix_synthetic_label_structure_id', ['structure_id']),
)


def upgrade() -> None:
    """Create the dashboard's indexes."""
    for table, name, columns in INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(name, columns, unique=False)


def downgrade() -> None:
    """Drop what upgrade added."""
    for table, name, _ in reversed(INDEXES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(name)
