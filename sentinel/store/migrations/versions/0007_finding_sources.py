"""findings.sources: the source kinds of a finding's occurrences, as bits

``GET /v1/findings?source=k8s`` walked findings newest first and probed each one's
occurrences for that kind: 3.5 ms a page on a store of 200,000 findings, where k8s
occurrences belong to one finding in thirteen. The kinds are now kept on the finding
(git 1, file 2, image 4, k8s 8; set by ingest, never cleared, as the filter never
looked at whether an occurrence is gone), filled here from the occurrences.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BITS = {"git": 1, "file": 2, "image": 4, "k8s": 8}


def upgrade() -> None:
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sources", sa.Integer(), server_default="0", nullable=False))
    terms = " + ".join(
        f"CASE WHEN EXISTS (SELECT 1 FROM occurrences o WHERE o.finding_id = findings.id "
        f"AND o.source = '{kind}') THEN {bit} ELSE 0 END"
        for kind, bit in BITS.items()
    )
    op.execute(f"UPDATE findings SET sources = {terms}")


def downgrade() -> None:
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.drop_column("sources")
