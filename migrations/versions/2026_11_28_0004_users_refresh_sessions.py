"""users.refresh_sessions: refresh tokens that rotate, with reuse detection.

Revision ID: 0004
Revises: 0003
Created: 2026-11-28

Why: a refresh token stayed valid until it expired (14 days), however often it was used, so
one that leaked gave its holder new access tokens for two weeks unseen. Each sign-in now
starts a session, and each of its refresh tokens is good for one refresh: the refresh answers
with the next, and a token used a second time (the thief's copy or the user's) ends its
session. The column maps each live session of the user to the sequence of its one valid
refresh token and that token's expiry. Existing rows get ``{}``. Refresh tokens issued before
this revision name no session, and nothing would record their use, so they are refused: each
user signs in again once, when their access token runs out (within 30 minutes).

``ALTER TABLE ... ADD COLUMN`` with a constant default on both backends (no rebuild of
``users`` on SQLite).

A downgrade drops the sessions, and the code before this revision ignores a refresh token's
session: every unexpired refresh token works again, as often as it is used, as before. Sign
everyone out after such a downgrade (change ``ADBOT_AUTH__SECRET_KEY``) if that matters.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("refresh_sessions", JSON, server_default="{}", nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("refresh_sessions")
