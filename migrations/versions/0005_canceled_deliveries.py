"""webhook deliveries may be canceled (their job or batch was deleted)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = "status IN ('pending', 'sending', 'delivered', 'failed', 'disabled')"
AFTER = "status IN ('pending', 'sending', 'delivered', 'failed', 'disabled', 'canceled')"


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_constraint("status", type_="check")
        batch.create_check_constraint("status", AFTER)


def downgrade() -> None:
    op.execute("UPDATE webhook_deliveries SET status = 'failed' WHERE status = 'canceled'")
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_constraint("status", type_="check")
        batch.create_check_constraint("status", BEFORE)
