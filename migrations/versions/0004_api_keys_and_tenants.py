"""api keys, and a tenant on jobs, batches and webhook deliveries

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("rate_limit_per_minute", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
    )
    op.create_index("ix_api_keys_tenant", "api_keys", ["tenant"])
    # Objects made before tenants existed belong to the default tenant (the one used with auth off).
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("tenant", sa.String(length=64), nullable=False, server_default="default"))
        batch.create_index("ix_jobs_tenant_created_at", ["tenant", "created_at"])
        batch.create_index("ix_jobs_tenant_status", ["tenant", "status"])
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("tenant", sa.String(length=64), nullable=False, server_default="default"))
        batch.create_index("ix_batches_tenant", ["tenant"])
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("tenant", sa.String(length=64), nullable=False, server_default="default"))
    for table in ("jobs", "batches", "webhook_deliveries"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column("tenant", existing_type=sa.String(length=64), server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("tenant")
    with op.batch_alter_table("batches") as batch:
        batch.drop_index("ix_batches_tenant")
        batch.drop_column("tenant")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_tenant_status")
        batch.drop_index("ix_jobs_tenant_created_at")
        batch.drop_column("tenant")
    op.drop_index("ix_api_keys_tenant", table_name="api_keys")
    op.drop_table("api_keys")
