"""indexes for listing hook events: newest first, and newest first of one verdict

``GET /v1/events`` pages by (received_at, id), optionally of one kind: each is one
index range scan whatever the page's depth (sentinel.store.events).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hook_events", schema=None) as batch_op:
        batch_op.create_index("ix_hook_events_received", ["received_at", "id"], unique=False)
        batch_op.create_index(
            "ix_hook_events_kind_received", ["kind", "received_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("hook_events", schema=None) as batch_op:
        batch_op.drop_index("ix_hook_events_kind_received")
        batch_op.drop_index("ix_hook_events_received")
