"""retention: when a job's audio and transcript were purged, and per-tenant retention policies

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("audio_purged_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("transcript_purged_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "retention_policies",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("audio_seconds", sa.Float(), nullable=True),
        sa.Column("transcript_seconds", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("retention_policies")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("transcript_purged_at")
        batch.drop_column("audio_purged_at")
