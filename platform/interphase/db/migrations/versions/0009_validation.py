"""validation: reference results computed once per level, and validation runs of model heads

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 18:00:00

``reference_property`` caches a suite's results at a reference level (keyed by
the level's engine, method, basis and settings and the suite's settings), so a
second ``interphase validate`` against the same level recomputes nothing.
``validation_run`` records each suite run on a model head: every check with
the model's value, the reference's, the difference, the tolerance and pass/fail.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = '0009'
down_revision: Union[str, Sequence[str], None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Create reference_property and validation_run."""
    op.create_table(
        'reference_property',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('level_id', sa.Integer(), nullable=False),
        sa.Column('suite', sa.String(50), nullable=False),
        sa.Column('key', sa.String(64), nullable=False),
        sa.Column('settings', sa.JSON(), nullable=False),
        sa.Column('values', sa.JSON(), nullable=False),
        sa.Column('seconds', sa.Float(), nullable=False),
        sa.Column('engine_version', sa.String(100), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['level_id'], ['level_of_theory.id'], name=op.f('fk_reference_property_level_id_level_of_theory'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_reference_property')),
        sa.UniqueConstraint('key', name=op.f('uq_reference_property_key')),
    )
    op.create_table(
        'validation_run',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('model_artifact_id', sa.Integer(), nullable=True),
        sa.Column('model_sha256', sa.String(64), nullable=False),
        sa.Column('model_path', sa.String(500), nullable=False),
        sa.Column('head', sa.String(100), nullable=False),
        sa.Column('suite', sa.String(50), nullable=False),
        sa.Column('level_id', sa.Integer(), nullable=False),
        sa.Column('reference_id', sa.Integer(), nullable=False),
        sa.Column('campaign_id', sa.Integer(), nullable=True),
        sa.Column('iteration_index', sa.Integer(), nullable=True),
        sa.Column('checks', sa.JSON(), nullable=False),
        sa.Column('model_values', sa.JSON(), nullable=False),
        sa.Column('passed', sa.Boolean(), nullable=False),
        sa.Column('seconds', sa.Float(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['model_artifact_id'], ['model_artifact.id'], name=op.f('fk_validation_run_model_artifact_id_model_artifact'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['level_id'], ['level_of_theory.id'], name=op.f('fk_validation_run_level_id_level_of_theory'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['reference_id'], ['reference_property.id'], name=op.f('fk_validation_run_reference_id_reference_property'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_validation_run_campaign_id_campaign'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_validation_run')),
    )
    op.create_index(op.f('ix_validation_run_model_artifact_id'), 'validation_run', ['model_artifact_id'])
    op.create_index(op.f('ix_validation_run_campaign_id'), 'validation_run', ['campaign_id'])


def downgrade() -> None:
    """Drop validation_run and reference_property."""
    op.drop_index(op.f('ix_validation_run_campaign_id'), table_name='validation_run')
    op.drop_index(op.f('ix_validation_run_model_artifact_id'), table_name='validation_run')
    op.drop_table('validation_run')
    op.drop_table('reference_property')
