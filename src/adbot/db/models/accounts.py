"""Users and accounts: the tenant (``accounts``), its people, platform connections and API keys.

A user belongs to exactly one account and has one role there (``users.account_id`` +
``users.role``). People who work for two accounts get two logins; this keeps every row
tenant-scoped by one column and needs no membership table.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from adbot.db.base import (
    Base,
    CreatedAt,
    EnumText,
    IntPK,
    JSONType,
    UpdatedAt,
    children,
    one_of,
)

if TYPE_CHECKING:
    from adbot.db.models.campaigns import Campaign
    from adbot.db.models.experiments import Experiment
    from adbot.db.models.ml import Agent


class AccountStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


class Role(StrEnum):
    ADMIN = "admin"
    ANALYST = "analyst"
    VIEWER = "viewer"


class PlatformKind(StrEnum):
    SIM = "sim"
    GOOGLE_ADS = "google_ads"


class PlatformStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    ERROR = "error"
    DISCONNECTED = "disconnected"


class Account(Base):
    """The tenant: every business row belongs to one account, directly or via its parent."""

    __tablename__ = "accounts"
    __table_args__ = (
        one_of("status", AccountStatus),
        CheckConstraint("slug = lower(slug) AND length(slug) >= 2", name="slug_format"),
        CheckConstraint("length(currency_code) = 3", name="currency_code_length"),
    )

    id: Mapped[IntPK]
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[AccountStatus] = mapped_column(
        EnumText(AccountStatus), default=AccountStatus.ACTIVE, server_default="active"
    )
    currency_code: Mapped[str] = mapped_column(String(3), default="USD", server_default="USD")
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    users: Mapped[list[User]] = children("account")
    platforms: Mapped[list[Platform]] = children("account")
    api_keys: Mapped[list[ApiKey]] = children("account")
    campaigns: Mapped[list[Campaign]] = children("account")
    agents: Mapped[list[Agent]] = children("account")
    experiments: Mapped[list[Experiment]] = children("account")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        one_of("role", Role),
        CheckConstraint("email = lower(email)", name="email_lowercase"),
    )

    id: Mapped[IntPK]
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(EnumText(Role), default=Role.VIEWER, server_default="viewer")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Moved on by "sign out everywhere": every token carries the count it was issued under
    # (in its credential fingerprint), so the tokens issued before stop working, with no
    # table of tokens.
    token_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Sign-in sessions whose refresh tokens rotate: session id -> [the sequence of its one
    # valid refresh token, its expiry in Unix milliseconds] (adbot.services.auth.refresh).
    refresh_sessions: Mapped[dict[str, list[int]]] = mapped_column(
        JSONType, default=dict, server_default="{}"
    )
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    account: Mapped[Account] = relationship(back_populates="users", lazy="raise")


class Platform(Base):
    """A platform connection of an account (the simulator or one Google Ads customer)."""

    __tablename__ = "platforms"
    __table_args__ = (
        UniqueConstraint("account_id", "name"),
        UniqueConstraint("account_id", "kind", "external_customer_id"),
        one_of("kind", PlatformKind),
        one_of("status", PlatformStatus),
        CheckConstraint(
            "kind <> 'google_ads' OR external_customer_id IS NOT NULL",
            name="google_ads_has_customer_id",
        ),
    )

    id: Mapped[IntPK]
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    kind: Mapped[PlatformKind] = mapped_column(EnumText(PlatformKind))
    name: Mapped[str] = mapped_column(String(100))
    external_customer_id: Mapped[str | None] = mapped_column(String(64))
    # A reference into a secret store (env var name, vault path), never the secret itself.
    credentials_ref: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[PlatformStatus] = mapped_column(
        EnumText(PlatformStatus), default=PlatformStatus.ACTIVE, server_default="active"
    )
    last_sync_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    account: Mapped[Account] = relationship(back_populates="platforms", lazy="raise")


class ApiKey(Base):
    """A key ``<prefix>.<secret>``: the prefix finds the row, the secret is stored hashed."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("length(prefix) >= 8", name="prefix_length"),
        CheckConstraint(
            "expires_at IS NULL OR expires_at > created_at", name="expires_after_created"
        ),
    )

    id: Mapped[IntPK]
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    # NULL: a service key of the account, not tied to a person.
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(255))
    scopes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[CreatedAt]

    account: Mapped[Account] = relationship(back_populates="api_keys", lazy="raise")
    user: Mapped[User | None] = relationship(lazy="raise")
