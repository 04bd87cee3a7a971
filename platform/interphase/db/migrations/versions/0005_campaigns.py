"""campaigns: state, lock and stop reason; steps, candidate scores and test splits

Revision ID: 0005
Revises: 0004d
Create Date: 2026-12-02 14:30:00

A campaign records its state, the stopping rule that ended it and the lock of
the process running it. Each step of each iteration is a ``campaign_step`` row
written in the same transaction as the step's outputs, which is what lets a
resume skip finished steps. ``candidate_score`` keeps the uncertainty of every
candidate per iteration; ``campaign_test_structure`` is the fixed test split.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004d'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

STAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add the campaign columns and tables."""
    with op.batch_alter_table('campaign', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state', sa.String(20), nullable=False, server_default='created'))
        batch_op.add_column(sa.Column('seed', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('stop_reason', sa.String(40), nullable=True))
        batch_op.add_column(sa.Column('stop_detail', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('stop_requested', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('lock_holder', sa.String(200), nullable=True))
        batch_op.add_column(sa.Column('lock_expires_at', STAMP, nullable=True))
        batch_op.add_column(sa.Column('lock_heartbeat_at', STAMP, nullable=True))
        batch_op.add_column(sa.Column('run_seconds', sa.Float(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('updated_at', STAMP, nullable=False, server_default=sa.func.now()))

    op.create_table(
        'campaign_step',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('campaign_id', sa.Integer(), nullable=False),
        sa.Column('iteration_id', sa.Integer(), nullable=False),
        sa.Column('iteration_index', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(40), nullable=False),
        sa.Column('state', sa.String(20), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('started_at', STAMP, nullable=False),
        sa.Column('finished_at', STAMP, nullable=True),
        sa.Column('seconds', sa.Float(), nullable=True),
        sa.Column('compute_seconds', sa.Float(), nullable=True),
        sa.Column('outputs', sa.JSON(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_campaign_step_campaign_id_campaign'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['iteration_id'], ['iteration.id'], name=op.f('fk_campaign_step_iteration_id_iteration'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_step')),
        sa.UniqueConstraint('campaign_id', 'iteration_index', 'name', name=op.f('uq_campaign_step_campaign_id')),
    )
    op.create_table(
        'candidate_score',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('campaign_id', sa.Integer(), nullable=False),
        sa.Column('iteration_id', sa.Integer(), nullable=False),
        sa.Column('structure_id', sa.Integer(), nullable=False),
        sa.Column('level_id', sa.Integer(), nullable=False),
        sa.Column('gpr_model_id', sa.Integer(), nullable=True),
        sa.Column('std_per_atom_hartree', sa.Float(), nullable=True),
        sa.Column('stage', sa.String(20), nullable=False),
        sa.Column('uncertain', sa.Boolean(), nullable=False),
        sa.Column('picked', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_candidate_score_campaign_id_campaign'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['iteration_id'], ['iteration.id'], name=op.f('fk_candidate_score_iteration_id_iteration'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['structure_id'], ['structure.id'], name=op.f('fk_candidate_score_structure_id_structure'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['level_id'], ['level_of_theory.id'], name=op.f('fk_candidate_score_level_id_level_of_theory')),
        sa.ForeignKeyConstraint(['gpr_model_id'], ['gpr_model.id'], name=op.f('fk_candidate_score_gpr_model_id_gpr_model'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_candidate_score')),
    )
    with op.batch_alter_table('candidate_score', schema=None) as batch_op:
        batch_op.create_index('ix_candidate_score_iteration_id', ['iteration_id', 'level_id'], unique=False)
    op.create_table(
        'campaign_test_structure',
        sa.Column('campaign_id', sa.Integer(), nullable=False),
        sa.Column('structure_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_campaign_test_structure_campaign_id_campaign'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['structure_id'], ['structure.id'], name=op.f('fk_campaign_test_structure_structure_id_structure'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('campaign_id', 'structure_id', name=op.f('pk_campaign_test_structure')),
    )


def downgrade() -> None:
    """Drop what upgrade added."""
    op.drop_table('campaign_test_structure')
    with op.batch_alter_table('candidate_score', schema=None) as batch_op:
        batch_op.drop_index('ix_candidate_score_iteration_id')
    op.drop_table('candidate_score')
    op.drop_table('campaign_step')
    with op.batch_alter_table('campaign', schema=None) as batch_op:
        for column in ('updated_at', 'run_seconds', 'lock_heartbeat_at', 'lock_expires_at',
                       'lock_holder', 'stop_requested', 'stop_detail', 'stop_reason', 'seed', 'state'):
            batch_op.drop_column(column)
