"""rotations: one per credential, its steps, their history, managed credentials

Issue 14. ``rotations`` holds one row per credential (``credential_key``, a keyed hash
of the rotator and the credential's identity, is unique: two requests to rotate one
finding, or two findings of one AWS key, make one rotation); ``rotation_steps`` the
state of each step (attempts, times, last error); ``rotation_events`` every record the
state machine made, in order; ``rotation_findings`` which findings a rotation covers;
``managed_credentials`` when each ``[[rotation.managed]]`` credential was last rotated
and is next due.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def UTCDateTime() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rotations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("credential_key", sa.String(length=64), nullable=False),
        sa.Column("finding_id", PK, nullable=True),
        sa.Column("managed_name", sa.String(length=100), nullable=True),
        sa.Column("rotator", sa.String(length=100), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("store_name", sa.String(length=100), nullable=True),
        sa.Column("store_path", sa.Text(), nullable=True),
        sa.Column("identity", sa.Text(), nullable=True),
        sa.Column("exposed_identifier", sa.Text(), nullable=False),
        sa.Column("exposed_extra", sa.JSON(), nullable=False),
        sa.Column("exposed_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("replacement_identifier", sa.Text(), nullable=True),
        sa.Column("replacement_extra", sa.JSON(), nullable=False),
        sa.Column("replacement_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("secret_key_id", sa.String(length=12), nullable=True),
        sa.Column("intent", sa.JSON(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("remediation", sa.JSON(), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("dry_run_plan", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("purge_after", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("lease_holder", sa.String(length=200), nullable=True),
        sa.Column("lease_expires", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["finding_id"], ["findings.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("credential_key"),
    )
    op.create_index("ix_rotations_status_next", "rotations", ["status", "next_attempt_at"])
    op.create_index("ix_rotations_created", "rotations", ["created_at", "id"])
    op.create_index("ix_rotations_finding", "rotations", ["finding_id"])
    op.create_table(
        "rotation_steps",
        sa.Column("rotation_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["rotation_id"], ["rotations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("rotation_id", "name"),
    )
    op.create_table(
        "rotation_events",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("rotation_id", sa.String(length=36), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=True),
        sa.Column("event", sa.String(length=20), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["rotation_id"], ["rotations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rotation_events_rotation", "rotation_events", ["rotation_id", "id"])
    op.create_table(
        "rotation_findings",
        sa.Column("finding_id", PK, nullable=False),
        sa.Column("rotation_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["finding_id"], ["findings.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["rotation_id"], ["rotations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("finding_id"),
    )
    op.create_index("ix_rotation_findings_rotation", "rotation_findings", ["rotation_id"])
    op.create_table(
        "managed_credentials",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("rotator", sa.String(length=100), nullable=False),
        sa.Column("last_rotated_at", UTCDateTime(), nullable=True),
        sa.Column("next_due_at", UTCDateTime(), nullable=True),
        sa.Column("last_rotation_id", sa.String(length=36), nullable=True),
        sa.Column("rotations", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("managed_credentials")
    op.drop_index("ix_rotation_findings_rotation", table_name="rotation_findings")
    op.drop_table("rotation_findings")
    op.drop_index("ix_rotation_events_rotation", table_name="rotation_events")
    op.drop_table("rotation_events")
    op.drop_table("rotation_steps")
    op.drop_index("ix_rotations_finding", table_name="rotations")
    op.drop_index("ix_rotations_created", table_name="rotations")
    op.drop_index("ix_rotations_status_next", table_name="rotations")
    op.drop_table("rotations")
