"""jobs from URLs: the source URL, and no audio until the worker has fetched it

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("source_url", sa.String(2048), nullable=True))
        batch.alter_column("audio_sha256", existing_type=sa.String(64), nullable=True)
        batch.alter_column("audio_bytes", existing_type=sa.BigInteger(), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE jobs SET audio_sha256 = '' WHERE audio_sha256 IS NULL")  # URL jobs never fetched
    op.execute("UPDATE jobs SET audio_bytes = 0 WHERE audio_bytes IS NULL")
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("audio_bytes", existing_type=sa.BigInteger(), nullable=False)
        batch.alter_column("audio_sha256", existing_type=sa.String(64), nullable=False)
        batch.drop_column("source_url")
