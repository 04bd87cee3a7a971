"""campaign membership: structures shared by many campaigns, each with its roles

Revision ID: 0007
Revises: 0006s
Create Date: 2026-12-07 15:00:00

Until 0006s a structure belonged to one campaign (``structure.campaign_id``)
and every step read "the campaign's structures" through that column, so a
second campaign that generated stored structures owned none of them. Now
``campaign_structure`` relates campaigns and structures, with a role
(candidate, test, picked, explored, synthetic, seed), the iteration in which
the structure joined and, for picked and seed, the level whose label the
campaign uses. ``structure.campaign_id`` stays as provenance only (the
campaign that first stored it).

The upgrade keeps every campaign exactly as it was: its structures join in
their iteration (synthetic copies and exploration snapshots in those roles),
its test split moves here (``campaign_test_structure`` is dropped), and every
label of one of its structures becomes a pick at that label's level, which is
exactly the set of labels it trained and fitted on before.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006s'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

#: The iteration index of ``structure.iteration_id`` (0 when the structure has none).
_STRUCTURE_ITERATION = (
    "coalesce((SELECT i.\"index\" FROM iteration i WHERE i.id = s.iteration_id), 0)"
)


def upgrade() -> None:
    """Create campaign_structure from structure.campaign_id, the test splits and the labels."""
    op.create_table(
        'campaign_structure',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('campaign_id', sa.Integer(), nullable=False),
        sa.Column('structure_id', sa.Integer(), nullable=False),
        sa.Column('role', sa.String(20), nullable=False),
        sa.Column('level_id', sa.Integer(), nullable=True),
        sa.Column('iteration_index', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_campaign_structure_campaign_id_campaign'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['structure_id'], ['structure.id'], name=op.f('fk_campaign_structure_structure_id_structure'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['level_id'], ['level_of_theory.id'], name=op.f('fk_campaign_structure_level_id_level_of_theory'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_structure')),
    )
    op.create_index(
        'uq_campaign_structure_role',
        'campaign_structure',
        ['campaign_id', 'structure_id', 'role', sa.text('coalesce(level_id, 0)')],
        unique=True,
    )
    op.create_index('ix_campaign_structure_structure_id', 'campaign_structure', ['structure_id'])
    now = "CURRENT_TIMESTAMP"
    op.execute(
        "INSERT INTO campaign_structure (campaign_id, structure_id, role, level_id, iteration_index, created_at) "
        "SELECT s.campaign_id, s.id, "
        "CASE WHEN s.generator = 'gpr-augment' THEN 'synthetic' "
        "WHEN s.generator IN ('explore_md', 'explore_cluster') THEN 'explored' "
        f"ELSE 'candidate' END, NULL, {_STRUCTURE_ITERATION}, {now} "
        "FROM structure s WHERE s.campaign_id IS NOT NULL"
    )
    op.execute(
        "INSERT INTO campaign_structure (campaign_id, structure_id, role, level_id, iteration_index, created_at) "
        f"SELECT t.campaign_id, t.structure_id, 'test', NULL, 0, {now} "
        "FROM campaign_test_structure t"
    )
    op.execute(
        "INSERT INTO campaign_structure (campaign_id, structure_id, role, level_id, iteration_index, created_at) "
        "SELECT s.campaign_id, s.id, 'picked', l.level_id, "
        "coalesce((SELECT i.\"index\" FROM labeling_job j JOIN iteration i ON i.id = j.iteration_id "
        f"WHERE j.id = l.job_id AND j.campaign_id = s.campaign_id), {_STRUCTURE_ITERATION}), {now} "
        "FROM label l JOIN structure s ON s.id = l.structure_id WHERE s.campaign_id IS NOT NULL"
    )
    op.drop_table('campaign_test_structure')


def downgrade() -> None:
    """Bring back campaign_test_structure from the test memberships; drop campaign_structure."""
    op.create_table(
        'campaign_test_structure',
        sa.Column('campaign_id', sa.Integer(), nullable=False),
        sa.Column('structure_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_campaign_test_structure_campaign_id_campaign'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['structure_id'], ['structure.id'], name=op.f('fk_campaign_test_structure_structure_id_structure'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('campaign_id', 'structure_id', name=op.f('pk_campaign_test_structure')),
    )
    op.execute(
        "INSERT INTO campaign_test_structure (campaign_id, structure_id) "
        "SELECT campaign_id, structure_id FROM campaign_structure WHERE role = 'test'"
    )
    op.drop_index('ix_campaign_structure_structure_id', table_name='campaign_structure')
    op.drop_index('uq_campaign_structure_role', table_name='campaign_structure')
    op.drop_table('campaign_structure')
