"""training progress: per-epoch metrics per head, epochs completed, checkpoint for resume

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 15:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Add the training_epoch_metric table and progress/resume columns of training_run."""
    with op.batch_alter_table('training_run', schema=None) as batch_op:
        batch_op.add_column(sa.Column('epochs_completed', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('best_epoch', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('checkpoint_path', sa.String(length=500), nullable=True))

    op.create_table('training_epoch_metric',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('training_run_id', sa.Integer(), nullable=False),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.Column('split', sa.String(length=20), nullable=False),
    sa.Column('head', sa.String(length=100), nullable=True),
    sa.Column('loss', sa.Float(), nullable=True),
    sa.Column('learning_rate', sa.Float(), nullable=True),
    sa.Column('n_energies', sa.Integer(), nullable=False),
    sa.Column('energy_mae_mev_per_atom', sa.Float(), nullable=True),
    sa.Column('energy_rmse_mev_per_atom', sa.Float(), nullable=True),
    sa.Column('n_forces', sa.Integer(), nullable=False),
    sa.Column('force_mae_mev_per_angstrom', sa.Float(), nullable=True),
    sa.Column('force_rmse_mev_per_angstrom', sa.Float(), nullable=True),
    sa.Column('n_synthetic', sa.Integer(), nullable=False),
    sa.Column('synthetic_energy_mae_mev_per_atom', sa.Float(), nullable=True),
    sa.Column('n_charges', sa.Integer(), nullable=False),
    sa.Column('charge_rmse_e', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['training_run_id'], ['training_run.id'], name=op.f('fk_training_epoch_metric_training_run_id_training_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_training_epoch_metric'))
    )
    with op.batch_alter_table('training_epoch_metric', schema=None) as batch_op:
        batch_op.create_index('ix_training_epoch_metric_run_epoch', ['training_run_id', 'epoch'], unique=False)


def downgrade() -> None:
    """Drop what upgrade added."""
    with op.batch_alter_table('training_epoch_metric', schema=None) as batch_op:
        batch_op.drop_index('ix_training_epoch_metric_run_epoch')
    op.drop_table('training_epoch_metric')

    with op.batch_alter_table('training_run', schema=None) as batch_op:
        batch_op.drop_column('checkpoint_path')
        batch_op.drop_column('best_epoch')
        batch_op.drop_column('epochs_completed')
