"""which process's job runner holds a queued or running scan

``scans.runner`` names the runner (its lease row is ``runner:<name>`` in ``leases``)
that accepted the scan. The scheduler's leader queues again, on its own runner, a
scan whose runner's lease has lapsed: its process died or stopped with the scan
unfinished. The index keeps that look-up to the few unfinished rows.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("runner", sa.String(length=200), nullable=True))
        batch_op.create_index("ix_scans_status", ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("scans", schema=None) as batch_op:
        batch_op.drop_index("ix_scans_status")
        batch_op.drop_column("runner")
