"""indexes for listing findings: each filter leads an index ending in (last_seen, id)

Keyset pages (sentinel.store.queries) are one index range each: the plain
last_seen/rule_id/target indexes of 0001 are replaced by ones that carry the sort key
and the id, and occurrences get (finding_id, id) for a finding's occurrence pages.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.drop_index("ix_findings_last_seen")
        batch_op.drop_index("ix_findings_rule")
        batch_op.create_index("ix_findings_last_seen_id", ["last_seen", "id"], unique=False)
        batch_op.create_index("ix_findings_first_seen_id", ["first_seen", "id"], unique=False)
        batch_op.create_index(
            "ix_findings_status_last_seen", ["status", "last_seen", "id"], unique=False
        )
        batch_op.create_index(
            "ix_findings_severity_last_seen", ["severity", "last_seen", "id"], unique=False
        )
        batch_op.create_index(
            "ix_findings_rule_last_seen", ["rule_id", "last_seen", "id"], unique=False
        )
    with op.batch_alter_table("occurrences", schema=None) as batch_op:
        batch_op.drop_index("ix_occurrences_target")
        batch_op.create_index("ix_occurrences_finding_id", ["finding_id", "id"], unique=False)
        batch_op.create_index(
            "ix_occurrences_target_finding", ["target", "source", "finding_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("occurrences", schema=None) as batch_op:
        batch_op.drop_index("ix_occurrences_target_finding")
        batch_op.drop_index("ix_occurrences_finding_id")
        batch_op.create_index("ix_occurrences_target", ["target", "source"], unique=False)
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.drop_index("ix_findings_rule_last_seen")
        batch_op.drop_index("ix_findings_severity_last_seen")
        batch_op.drop_index("ix_findings_status_last_seen")
        batch_op.drop_index("ix_findings_first_seen_id")
        batch_op.drop_index("ix_findings_last_seen_id")
        batch_op.create_index("ix_findings_rule", ["rule_id"], unique=False)
        batch_op.create_index("ix_findings_last_seen", ["last_seen"], unique=False)
