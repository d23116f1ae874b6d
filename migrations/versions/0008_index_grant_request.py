"""index access_grant.request_id

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 22:20:00.000000

The CIBA token endpoint finds the grant of the polled request on every poll
(``grants.repository.grant_for_request``), and the young person's and the
practitioner's request lists look grants up by request. Without an index each was a
scan of every grant in the service (seen in the benchmark's PostgreSQL plans). A
plain index, not a unique one: one grant per request is the service's rule, but a
unique constraint added to a live table would stop the upgrade on any old duplicate.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Not in batch mode: on SQLite that could copy the table, and an index needs no copy.
    op.create_index("ix_access_grant_request_id", "access_grant", ["request_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_access_grant_request_id", table_name="access_grant")
