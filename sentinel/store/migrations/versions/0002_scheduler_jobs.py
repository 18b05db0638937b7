"""scheduler job store

APScheduler's SQLAlchemyJobStore keeps its jobs in ``apscheduler_jobs``. The table is
made here, not by the job store on first start, so ``sentinel db upgrade`` owns the whole
schema and a store is either current or not (``sentinel db current``, ``/readyz``). The
columns are exactly the ones APScheduler 3 declares (its ``create(checkfirst=True)``
then finds the table and leaves it alone).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 06:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Unicode(length=191), nullable=False),
        sa.Column("next_run_time", sa.Float(precision=25), nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("apscheduler_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_apscheduler_jobs_next_run_time", ["next_run_time"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("apscheduler_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_apscheduler_jobs_next_run_time")
    op.drop_table("apscheduler_jobs")
