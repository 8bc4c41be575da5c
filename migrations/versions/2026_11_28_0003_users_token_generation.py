"""users.token_generation: "sign out everywhere" without a table of tokens.

Revision ID: 0003
Revises: 0002
Created: 2026-11-28

Why: a token that leaked could only be stopped by changing the password (or disabling the
user). Every token carries a fingerprint of its user's credentials; the fingerprint now
covers this counter too, and ``POST /api/v1/auth/logout`` moves it on, so every access and
refresh token issued before stops working. Existing rows get 0, whose fingerprint is the
password hash's alone, the one tokens issued before this revision carry: nobody is signed
out by the upgrade.

``ALTER TABLE ... ADD COLUMN`` with a constant default on both backends (no rebuild of
``users`` on SQLite).

A downgrade drops the counter, and so forgets every sign-out: a token signed out before it
works again, after the next upgrade too, until it expires (``auth.refresh_days``). Change
``ADBOT_AUTH__SECRET_KEY`` after such a downgrade to end every token.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("token_generation", sa.Integer(), server_default="0", nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("token_generation")
