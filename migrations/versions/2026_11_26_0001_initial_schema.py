"""Initial schema: the 20 tables of AdBot.

Revision ID: 0001
Revises:
Created: 2026-11-26

Written and ordered by hand (areas in dependency order: users and accounts, campaign
management, machine learning, performance, experiments); ``downgrade`` drops in reverse.
Every constraint and index is named explicitly (``op.f``) with the names the naming
convention in ``adbot.db.base`` gives the models, so later migrations can address them.
This file does not import AdBot: a migration is frozen, the models keep moving.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import SchemaItem

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Column types, as the models define them.
ENUM = sa.String(32)  # enum values are VARCHAR + CHECK, never a native enum
TIMESTAMP = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
NOW = sa.text("CURRENT_TIMESTAMP")

ENTITY_STATUS = ("enabled", "paused", "removed")
CASCADE, SET_NULL, NO_ACTION = "CASCADE", "SET NULL", "NO ACTION"


def _id(table: str, *, big: bool = False) -> list[SchemaItem]:
    return [
        sa.Column("id", BIG_ID if big else sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    ]


def _ref(
    table: str, column: str, target: str, ondelete: str, *, nullable: bool = False
) -> list[SchemaItem]:
    return [
        sa.Column(column, sa.Integer(), nullable=nullable),
        sa.ForeignKeyConstraint(
            [column],
            [f"{target}.id"],
            name=op.f(f"fk_{table}_{column}_{target}"),
            ondelete=ondelete,
        ),
    ]


def _created_at(name: str = "created_at") -> sa.Column:
    return sa.Column(name, TIMESTAMP, server_default=NOW, nullable=False)


def _timestamps() -> list[sa.Column]:
    return [_created_at(), _created_at("updated_at")]


def _unique(table: str, *columns: str, name: str | None = None) -> sa.UniqueConstraint:
    return sa.UniqueConstraint(*columns, name=op.f(name or f"uq_{table}_{'_'.join(columns)}"))


def _check(table: str, name: str, sql: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(sql, name=op.f(f"ck_{table}_{name}"))


def _one_of(table: str, column: str, values: Sequence[str]) -> sa.CheckConstraint:
    listed = ", ".join(f"'{value}'" for value in values)
    return _check(table, column, f"{column} IN ({listed})")


def _non_negative(table: str, *columns: str) -> list[sa.CheckConstraint]:
    return [_check(table, f"{column}_non_negative", f"{column} >= 0") for column in columns]


def _index(table: str, *columns: str, name: str | None = None, **kw: Any) -> None:
    op.create_index(op.f(name or f"ix_{table}_{'_'.join(columns)}"), table, list(columns), **kw)


def _hour_aligned() -> sa.CheckConstraint:
    if op.get_context().dialect.name == "postgresql":
        sql = "date_trunc('hour', hour AT TIME ZONE 'UTC') = hour AT TIME ZONE 'UTC'"
    else:
        sql = "strftime('%M:%f', hour) = '00:00.000'"
    return _check("performance_metrics", "hour_aligned", sql)


def upgrade() -> None:
    _users_and_accounts()
    _campaign_management()
    _machine_learning()
    _performance()
    _experiments()


def _users_and_accounts() -> None:
    op.create_table(
        "accounts",
        *_id("accounts"),
        sa.Column("slug", sa.String(63), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", ENUM, server_default="active", nullable=False),
        sa.Column("currency_code", sa.String(3), server_default="USD", nullable=False),
        sa.Column("time_zone", sa.String(64), server_default="UTC", nullable=False),
        *_timestamps(),
        _unique("accounts", "slug"),
        _one_of("accounts", "status", ("active", "suspended", "closed")),
        _check("accounts", "slug_format", "slug = lower(slug) AND length(slug) >= 2"),
        _check("accounts", "currency_code_length", "length(currency_code) = 3"),
    )
    op.create_table(
        "users",
        *_id("users"),
        *_ref("users", "account_id", "accounts", CASCADE),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("full_name", sa.String(200), server_default="", nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("role", ENUM, server_default="viewer", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("last_login_at", TIMESTAMP, nullable=True),
        *_timestamps(),
        _unique("users", "email"),
        _one_of("users", "role", ("admin", "analyst", "viewer")),
        _check("users", "email_lowercase", "email = lower(email)"),
    )
    _index("users", "account_id")
    op.create_table(
        "platforms",
        *_id("platforms"),
        *_ref("platforms", "account_id", "accounts", CASCADE),
        sa.Column("kind", ENUM, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("external_customer_id", sa.String(64), nullable=True),
        sa.Column("credentials_ref", sa.String(255), nullable=True),
        sa.Column("status", ENUM, server_default="active", nullable=False),
        sa.Column("last_sync_at", TIMESTAMP, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        *_timestamps(),
        _unique("platforms", "account_id", "name"),
        _unique("platforms", "account_id", "kind", "external_customer_id"),
        _one_of("platforms", "kind", ("sim", "google_ads")),
        _one_of("platforms", "status", ("active", "paused", "error", "disconnected")),
        _check(
            "platforms",
            "google_ads_has_customer_id",
            "kind <> 'google_ads' OR external_customer_id IS NOT NULL",
        ),
    )
    op.create_table(
        "api_keys",
        *_id("api_keys"),
        *_ref("api_keys", "account_id", "accounts", CASCADE),
        *_ref("api_keys", "user_id", "users", CASCADE, nullable=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(255), nullable=False),
        sa.Column("scopes", JSON, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=True),
        sa.Column("last_used_at", TIMESTAMP, nullable=True),
        sa.Column("revoked_at", TIMESTAMP, nullable=True),
        _created_at(),
        _unique("api_keys", "prefix"),
        _check("api_keys", "prefix_length", "length(prefix) >= 8"),
        _check(
            "api_keys", "expires_after_created", "expires_at IS NULL OR expires_at > created_at"
        ),
    )
    _index("api_keys", "account_id")
    _index("api_keys", "user_id")


def _campaign_management() -> None:
    op.create_table(
        "campaigns",
        *_id("campaigns"),
        *_ref("campaigns", "account_id", "accounts", CASCADE),
        *_ref("campaigns", "platform_id", "platforms", NO_ACTION),
        sa.Column("external_id", sa.String(64), nullable=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("status", ENUM, server_default="enabled", nullable=False),
        sa.Column("daily_budget_micros", sa.BigInteger(), nullable=False),
        sa.Column("bidding_strategy", ENUM, server_default="manual_cpc", nullable=False),
        sa.Column("target_cpa_micros", sa.BigInteger(), nullable=True),
        sa.Column("target_roas", sa.Double(), nullable=True),
        sa.Column("autopilot_enabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("last_synced_at", TIMESTAMP, nullable=True),
        *_timestamps(),
        _unique("campaigns", "platform_id", "external_id"),
        _one_of("campaigns", "status", ENTITY_STATUS),
        _one_of(
            "campaigns",
            "bidding_strategy",
            (
                "manual_cpc",
                "target_cpa",
                "target_roas",
                "maximize_clicks",
                "maximize_conversions",
            ),
        ),
        *_non_negative("campaigns", "daily_budget_micros", "target_cpa_micros"),
        _check("campaigns", "target_roas_positive", "target_roas IS NULL OR target_roas > 0"),
        _check(
            "campaigns",
            "end_date_after_start_date",
            "end_date IS NULL OR start_date IS NULL OR end_date >= start_date",
        ),
    )
    _index("campaigns", "account_id", "status")
    op.create_table(
        "ad_groups",
        *_id("ad_groups"),
        *_ref("ad_groups", "campaign_id", "campaigns", CASCADE),
        sa.Column("external_id", sa.String(64), nullable=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("status", ENUM, server_default="enabled", nullable=False),
        sa.Column("default_bid_micros", sa.BigInteger(), nullable=True),
        *_timestamps(),
        _unique("ad_groups", "campaign_id", "external_id"),
        _one_of("ad_groups", "status", ENTITY_STATUS),
        *_non_negative("ad_groups", "default_bid_micros"),
    )
    op.create_table(
        "ads",
        *_id("ads"),
        *_ref("ads", "ad_group_id", "ad_groups", CASCADE),
        sa.Column("external_id", sa.String(64), nullable=True),
        sa.Column("kind", ENUM, server_default="responsive_search", nullable=False),
        sa.Column("status", ENUM, server_default="enabled", nullable=False),
        sa.Column("headlines", JSON, nullable=False),
        sa.Column("descriptions", JSON, nullable=False),
        sa.Column("final_url", sa.String(2048), nullable=False),
        *_timestamps(),
        _unique("ads", "ad_group_id", "external_id"),
        _one_of("ads", "status", ENTITY_STATUS),
        _one_of("ads", "kind", ("responsive_search", "expanded_text")),
    )
    op.create_table(
        "keywords",
        *_id("keywords"),
        *_ref("keywords", "ad_group_id", "ad_groups", CASCADE),
        sa.Column("external_id", sa.String(64), nullable=True),
        sa.Column("text", sa.String(80), nullable=False),
        sa.Column("match_type", ENUM, nullable=False),
        sa.Column("status", ENUM, server_default="enabled", nullable=False),
        sa.Column("bid_micros", sa.BigInteger(), nullable=True),
        sa.Column("quality_score", sa.SmallInteger(), nullable=True),
        *_timestamps(),
        _unique("keywords", "ad_group_id", "text", "match_type"),
        _unique("keywords", "ad_group_id", "external_id"),
        _one_of("keywords", "status", ENTITY_STATUS),
        _one_of("keywords", "match_type", ("exact", "phrase", "broad")),
        *_non_negative("keywords", "bid_micros"),
        _check("keywords", "quality_score_range", "quality_score BETWEEN 1 AND 10"),
        _check("keywords", "text_not_blank", "length(trim(text)) > 0"),
    )


def _machine_learning() -> None:
    op.create_table(
        "agents",
        *_id("agents"),
        *_ref("agents", "account_id", "accounts", CASCADE),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", ENUM, nullable=False),
        sa.Column("algorithm", sa.String(32), nullable=False),
        sa.Column("status", ENUM, server_default="draft", nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        *_timestamps(),
        _unique("agents", "account_id", "name"),
        _one_of("agents", "kind", ("rl", "baseline")),
        _one_of("agents", "status", ("draft", "training", "ready", "active", "retired")),
    )
    op.create_table(
        "agent_configs",
        *_id("agent_configs"),
        *_ref("agent_configs", "agent_id", "agents", CASCADE),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        *_ref("agent_configs", "created_by_id", "users", SET_NULL, nullable=True),
        _created_at(),
        _unique("agent_configs", "agent_id", "version"),
        _unique("agent_configs", "agent_id", "config_hash"),
        _check("agent_configs", "version_positive", "version >= 1"),
        *_non_negative("agent_configs", "seed"),
        _check("agent_configs", "config_hash_length", "length(config_hash) = 64"),
    )
    _index("agent_configs", "created_by_id")
    op.create_table(
        "training_runs",
        *_id("training_runs"),
        *_ref("training_runs", "agent_id", "agents", CASCADE),
        *_ref("training_runs", "agent_config_id", "agent_configs", NO_ACTION),
        sa.Column("status", ENUM, server_default="queued", nullable=False),
        sa.Column("scenario", sa.String(200), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("total_timesteps", sa.BigInteger(), nullable=False),
        sa.Column("mlflow_run_id", sa.String(64), nullable=True),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        _created_at(),
        _unique("training_runs", "mlflow_run_id"),
        _one_of(
            "training_runs", "status", ("queued", "running", "succeeded", "failed", "cancelled")
        ),
        *_non_negative("training_runs", "total_timesteps", "seed"),
        _check(
            "training_runs",
            "finished_after_started",
            "finished_at IS NULL OR started_at IS NULL OR finished_at >= started_at",
        ),
    )
    _index("training_runs", "agent_id", "created_at")
    _index("training_runs", "agent_config_id")
    _index("training_runs", "status")
    op.create_table(
        "model_checkpoints",
        *_id("model_checkpoints"),
        *_ref("model_checkpoints", "agent_id", "agents", CASCADE),
        *_ref("model_checkpoints", "training_run_id", "training_runs", SET_NULL, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("uri", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("timesteps", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.false(), nullable=False),
        _created_at(),
        _unique("model_checkpoints", "agent_id", "version"),
        _check("model_checkpoints", "version_positive", "version >= 1"),
        *_non_negative("model_checkpoints", "timesteps"),
        _check("model_checkpoints", "sha256_length", "length(sha256) = 64"),
    )
    _index(
        "model_checkpoints",
        "agent_id",
        name="uq_model_checkpoints_one_active_per_agent",
        unique=True,
        postgresql_where=sa.text("is_active"),
        sqlite_where=sa.text("is_active"),
    )
    _index("model_checkpoints", "training_run_id")


def _performance() -> None:
    op.create_table(
        "performance_metrics",
        *_id("performance_metrics", big=True),
        *_ref("performance_metrics", "account_id", "accounts", CASCADE),
        *_ref("performance_metrics", "campaign_id", "campaigns", CASCADE),
        *_ref("performance_metrics", "ad_group_id", "ad_groups", CASCADE),
        *_ref("performance_metrics", "keyword_id", "keywords", CASCADE),
        sa.Column("hour", TIMESTAMP, nullable=False),
        sa.Column("impressions", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("clicks", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("conversions", sa.Double(), server_default="0", nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("conversion_value_micros", sa.BigInteger(), server_default="0", nullable=False),
        _created_at("updated_at"),
        _unique("performance_metrics", "keyword_id", "hour"),
        # 0 <= conversions <= clicks <= impressions also keeps clicks and impressions >= 0.
        *_non_negative(
            "performance_metrics", "conversions", "cost_micros", "conversion_value_micros"
        ),
        _check("performance_metrics", "clicks_le_impressions", "clicks <= impressions"),
        _check("performance_metrics", "conversions_le_clicks", "conversions <= clicks"),
        _hour_aligned(),
    )
    _index("performance_metrics", "campaign_id", "hour")
    _index("performance_metrics", "ad_group_id", "hour")
    _index("performance_metrics", "account_id", "hour")

    op.create_table(
        "conversion_data",
        *_id("conversion_data", big=True),
        *_ref("conversion_data", "account_id", "accounts", CASCADE),
        *_ref("conversion_data", "campaign_id", "campaigns", CASCADE),
        *_ref("conversion_data", "keyword_id", "keywords", SET_NULL, nullable=True),
        sa.Column("conversion_action", sa.String(100), nullable=False),
        sa.Column("occurred_at", TIMESTAMP, nullable=False),
        sa.Column("quantity", sa.Double(), server_default="1", nullable=False),
        sa.Column("value_micros", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("source", ENUM, nullable=False),
        sa.Column("external_id", sa.String(128), nullable=True),
        _created_at(),
        _unique("conversion_data", "account_id", "conversion_action", "external_id"),
        _one_of("conversion_data", "source", ("platform", "import", "api", "sim")),
        *_non_negative("conversion_data", "quantity", "value_micros"),
    )
    _index("conversion_data", "campaign_id", "occurred_at")
    _index("conversion_data", "keyword_id")

    op.create_table(
        "bid_history",
        *_id("bid_history", big=True),
        *_ref("bid_history", "account_id", "accounts", CASCADE),
        *_ref("bid_history", "keyword_id", "keywords", NO_ACTION),
        sa.Column("cycle_id", sa.Uuid(), nullable=False),
        sa.Column("old_bid_micros", sa.BigInteger(), nullable=True),
        sa.Column("new_bid_micros", sa.BigInteger(), nullable=False),
        sa.Column("source", ENUM, nullable=False),
        sa.Column("outcome", ENUM, nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        *_ref("bid_history", "user_id", "users", SET_NULL, nullable=True),
        *_ref("bid_history", "agent_id", "agents", SET_NULL, nullable=True),
        sa.Column("reverts_id", BIG_ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["reverts_id"],
            ["bid_history.id"],
            name=op.f("fk_bid_history_reverts_id_bid_history"),
            ondelete=SET_NULL,
        ),
        _created_at(),
        _one_of(
            "bid_history",
            "source",
            ("manual", "autopilot", "rollback", "rule", "api", "experiment"),
        ),
        _one_of("bid_history", "outcome", ("applied", "dry_run", "failed", "rolled_back")),
        *_non_negative("bid_history", "old_bid_micros", "new_bid_micros"),
    )
    _index("bid_history", "keyword_id", "created_at")
    _index("bid_history", "account_id", "created_at")
    _index("bid_history", "cycle_id")
    _index("bid_history", "user_id")
    _index("bid_history", "agent_id")
    _index("bid_history", "reverts_id")

    op.create_table(
        "anomaly_detection",
        *_id("anomaly_detection"),
        *_ref("anomaly_detection", "account_id", "accounts", CASCADE),
        *_ref("anomaly_detection", "campaign_id", "campaigns", CASCADE, nullable=True),
        sa.Column("detector", sa.String(64), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("severity", ENUM, nullable=False),
        sa.Column("status", ENUM, server_default="open", nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("window_start", TIMESTAMP, nullable=False),
        sa.Column("window_end", TIMESTAMP, nullable=False),
        sa.Column("observed_value", sa.Double(), nullable=False),
        sa.Column("expected_value", sa.Double(), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("details", JSON, nullable=False),
        _created_at("detected_at"),
        sa.Column("resolved_at", TIMESTAMP, nullable=True),
        *_ref("anomaly_detection", "resolved_by_id", "users", SET_NULL, nullable=True),
        _unique("anomaly_detection", "account_id", "fingerprint"),
        _one_of("anomaly_detection", "severity", ("info", "warning", "critical")),
        _one_of("anomaly_detection", "status", ("open", "acknowledged", "resolved", "dismissed")),
        _check("anomaly_detection", "window_ordered", "window_end >= window_start"),
        _check(
            "anomaly_detection",
            "closed_has_resolved_at",
            "status NOT IN ('resolved', 'dismissed') OR resolved_at IS NOT NULL",
        ),
    )
    is_open = sa.text("status = 'open'")
    _index(
        "anomaly_detection",
        "account_id",
        "detected_at",
        name="ix_anomaly_detection_open_by_account",
        postgresql_where=is_open,
        sqlite_where=is_open,
    )
    _index(
        "anomaly_detection",
        "campaign_id",
        "severity",
        name="ix_anomaly_detection_open_by_campaign",
        postgresql_where=is_open,
        sqlite_where=is_open,
    )
    _index("anomaly_detection", "campaign_id", "detected_at")
    _index("anomaly_detection", "resolved_by_id")


def _experiments() -> None:
    op.create_table(
        "experiments",
        *_id("experiments"),
        *_ref("experiments", "account_id", "accounts", CASCADE),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", ENUM, nullable=False),
        sa.Column("status", ENUM, server_default="draft", nullable=False),
        sa.Column("unit", ENUM, nullable=False),
        sa.Column("hypothesis", sa.Text(), server_default="", nullable=False),
        sa.Column("primary_metric", sa.String(64), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("ended_at", TIMESTAMP, nullable=True),
        *_ref("experiments", "created_by_id", "users", SET_NULL, nullable=True),
        *_timestamps(),
        _unique("experiments", "account_id", "name"),
        _one_of("experiments", "kind", ("ab_test", "bandit")),
        _one_of("experiments", "status", ("draft", "running", "paused", "stopped", "completed")),
        _one_of("experiments", "unit", ("campaign", "ad_group", "keyword")),
        _check(
            "experiments",
            "ended_after_started",
            "ended_at IS NULL OR started_at IS NULL OR ended_at >= started_at",
        ),
    )
    _index("experiments", "account_id", "status")
    _index("experiments", "created_by_id")

    op.create_table(
        "bandit_arms",
        *_id("bandit_arms"),
        *_ref("bandit_arms", "experiment_id", "experiments", CASCADE),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("is_control", sa.Boolean(), server_default=sa.false(), nullable=False),
        *_ref("bandit_arms", "agent_id", "agents", SET_NULL, nullable=True),
        sa.Column("policy", sa.String(64), nullable=True),
        sa.Column("traffic_weight", sa.Double(), server_default="0.5", nullable=False),
        sa.Column("alpha", sa.Double(), server_default="1", nullable=False),
        sa.Column("beta", sa.Double(), server_default="1", nullable=False),
        sa.Column("pulls", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("reward_sum", sa.Double(), server_default="0", nullable=False),
        *_timestamps(),
        _unique("bandit_arms", "experiment_id", "name"),
        _check("bandit_arms", "traffic_weight_range", "traffic_weight BETWEEN 0 AND 1"),
        _check("bandit_arms", "beta_prior_positive", "alpha > 0 AND beta > 0"),
        *_non_negative("bandit_arms", "pulls"),
    )
    _index(
        "bandit_arms",
        "experiment_id",
        name="uq_bandit_arms_one_control_per_experiment",
        unique=True,
        postgresql_where=sa.text("is_control"),
        sqlite_where=sa.text("is_control"),
    )
    _index("bandit_arms", "agent_id")

    op.create_table(
        "experiment_assignments",
        *_id("experiment_assignments", big=True),
        *_ref("experiment_assignments", "experiment_id", "experiments", CASCADE),
        *_ref("experiment_assignments", "arm_id", "bandit_arms", CASCADE),
        *_ref("experiment_assignments", "campaign_id", "campaigns", CASCADE, nullable=True),
        *_ref("experiment_assignments", "ad_group_id", "ad_groups", CASCADE, nullable=True),
        *_ref("experiment_assignments", "keyword_id", "keywords", CASCADE, nullable=True),
        _created_at("assigned_at"),
        _unique("experiment_assignments", "experiment_id", "campaign_id"),
        _unique("experiment_assignments", "experiment_id", "ad_group_id"),
        _unique("experiment_assignments", "experiment_id", "keyword_id"),
        _check(
            "experiment_assignments",
            "exactly_one_target",
            "(CASE WHEN campaign_id IS NULL THEN 0 ELSE 1 END)"
            " + (CASE WHEN ad_group_id IS NULL THEN 0 ELSE 1 END)"
            " + (CASE WHEN keyword_id IS NULL THEN 0 ELSE 1 END) = 1",
        ),
    )
    for column in ("arm_id", "campaign_id", "ad_group_id", "keyword_id"):
        _index("experiment_assignments", column)

    op.create_table(
        "experiment_results",
        *_id("experiment_results"),
        *_ref("experiment_results", "experiment_id", "experiments", CASCADE),
        *_ref("experiment_results", "arm_id", "bandit_arms", CASCADE),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("period_start", TIMESTAMP, nullable=False),
        sa.Column("period_end", TIMESTAMP, nullable=False),
        sa.Column("sample_size", sa.BigInteger(), nullable=False),
        sa.Column("estimate", sa.Double(), nullable=False),
        sa.Column("std_error", sa.Double(), nullable=True),
        sa.Column("ci_low", sa.Double(), nullable=True),
        sa.Column("ci_high", sa.Double(), nullable=True),
        sa.Column("p_value", sa.Double(), nullable=True),
        sa.Column("lift", sa.Double(), nullable=True),
        sa.Column("cost_micros", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("value_micros", sa.BigInteger(), server_default="0", nullable=False),
        _created_at("computed_at"),
        _unique(
            "experiment_results",
            "experiment_id",
            "arm_id",
            "metric",
            "period_start",
            "period_end",
            name="uq_experiment_results_arm_metric_period",
        ),
        *_non_negative("experiment_results", "sample_size", "cost_micros", "value_micros"),
        _check("experiment_results", "p_value_range", "p_value BETWEEN 0 AND 1"),
        _check("experiment_results", "period_ordered", "period_end > period_start"),
        _check("experiment_results", "ci_ordered", "ci_low <= ci_high"),
    )
    _index("experiment_results", "arm_id")


# Reverse of creation order: children before the tables they reference.
TABLES = (
    "accounts",
    "users",
    "platforms",
    "api_keys",
    "campaigns",
    "ad_groups",
    "ads",
    "keywords",
    "agents",
    "agent_configs",
    "training_runs",
    "model_checkpoints",
    "performance_metrics",
    "conversion_data",
    "bid_history",
    "anomaly_detection",
    "experiments",
    "bandit_arms",
    "experiment_assignments",
    "experiment_results",
)


def downgrade() -> None:
    # Dropping a table drops its indexes and constraints with it.
    for table in reversed(TABLES):
        op.drop_table(table)
