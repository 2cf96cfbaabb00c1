"""metrics name their split

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 20:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("job_metrics", schema=None) as batch_op:
        batch_op.add_column(sa.Column("split", sa.String(length=16), nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("latest_metrics_split", sa.String(length=16), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("latest_metrics_split")
    with op.batch_alter_table("job_metrics", schema=None) as batch_op:
        batch_op.drop_column("split")
