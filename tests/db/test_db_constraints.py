"""The database itself refuses bad rows: every check constraint, unique key and foreign-key
delete rule, on PostgreSQL and on SQLite. Statements go through the reflected schema (plain
column types), so no Python-side validation can hide a missing constraint.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from db_world import T0, World, is_row, violated_constraint
from sqlalchemy import (
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    MetaData,
    UniqueConstraint,
    and_,
    delete,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from adbot.db.migrate import target_metadata

Changes = dict[str, Any] | Callable[[World], dict[str, Any]]
BAD = "not-a-known-value"
PAST = datetime(2000, 1, 1, tzinfo=UTC)

# constraint name -> (table, changes that break only that constraint on the table's first row)
CHECK_CASES: dict[str, tuple[str, Changes]] = {
    "ck_accounts_currency_code_length": ("accounts", {"currency_code": "US"}),
    "ck_accounts_slug_format": ("accounts", {"slug": "Acme"}),
    "ck_accounts_status": ("accounts", {"status": BAD}),
    "ck_users_email_lowercase": ("users", {"email": "Alice@acme.test"}),
    "ck_users_role": ("users", {"role": "owner"}),
    "ck_platforms_google_ads_has_customer_id": (
        "platforms",
        {"kind": "google_ads", "external_customer_id": None},
    ),
    "ck_platforms_kind": ("platforms", {"kind": "bing"}),
    "ck_platforms_status": ("platforms", {"status": BAD}),
    "ck_api_keys_expires_after_created": ("api_keys", {"expires_at": PAST}),
    "ck_api_keys_prefix_length": ("api_keys", {"prefix": "ak_1"}),
    "ck_campaigns_bidding_strategy": ("campaigns", {"bidding_strategy": "cheapest"}),
    "ck_campaigns_daily_budget_micros_non_negative": ("campaigns", {"daily_budget_micros": -1}),
    "ck_campaigns_end_date_after_start_date": ("campaigns", {"end_date": date(2025, 12, 31)}),
    "ck_campaigns_status": ("campaigns", {"status": "deleted"}),
    "ck_campaigns_target_cpa_micros_non_negative": ("campaigns", {"target_cpa_micros": -5}),
    "ck_campaigns_target_roas_positive": ("campaigns", {"target_roas": 0.0}),
    "ck_ad_groups_default_bid_micros_non_negative": ("ad_groups", {"default_bid_micros": -1}),
    "ck_ad_groups_status": ("ad_groups", {"status": BAD}),
    "ck_ads_kind": ("ads", {"kind": "banner"}),
    "ck_ads_status": ("ads", {"status": BAD}),
    "ck_keywords_bid_micros_non_negative": ("keywords", {"bid_micros": -1}),
    "ck_keywords_match_type": ("keywords", {"match_type": "fuzzy"}),
    "ck_keywords_quality_score_range": ("keywords", {"quality_score": 11}),
    "ck_keywords_status": ("keywords", {"status": BAD}),
    "ck_keywords_text_not_blank": ("keywords", {"text": "   "}),
    "ck_agents_kind": ("agents", {"kind": "oracle"}),
    "ck_agents_status": ("agents", {"status": BAD}),
    "ck_agent_configs_config_hash_length": ("agent_configs", {"config_hash": "abc"}),
    "ck_agent_configs_seed_non_negative": ("agent_configs", {"seed": -1}),
    "ck_agent_configs_version_positive": ("agent_configs", {"version": 0}),
    "ck_training_runs_finished_after_started": ("training_runs", {"finished_at": PAST}),
    "ck_training_runs_seed_non_negative": ("training_runs", {"seed": -1}),
    "ck_training_runs_status": ("training_runs", {"status": "done"}),
    "ck_training_runs_total_timesteps_non_negative": ("training_runs", {"total_timesteps": -1}),
    "ck_model_checkpoints_sha256_length": ("model_checkpoints", {"sha256": "ff"}),
    "ck_model_checkpoints_timesteps_non_negative": ("model_checkpoints", {"timesteps": -1}),
    "ck_model_checkpoints_version_positive": ("model_checkpoints", {"version": 0}),
    "ck_performance_metrics_clicks_le_impressions": ("performance_metrics", {"clicks": 101}),
    "ck_performance_metrics_conversion_value_micros_non_negative": (
        "performance_metrics",
        {"conversion_value_micros": -1},
    ),
    "ck_performance_metrics_conversions_le_clicks": ("performance_metrics", {"conversions": 10.5}),
    "ck_performance_metrics_conversions_non_negative": (
        "performance_metrics",
        {"conversions": -0.5},
    ),
    "ck_performance_metrics_cost_micros_non_negative": ("performance_metrics", {"cost_micros": -1}),
    "ck_performance_metrics_hour_aligned": (
        "performance_metrics",
        {"hour": T0 + timedelta(minutes=30)},
    ),
    "ck_conversion_data_quantity_non_negative": ("conversion_data", {"quantity": -1.0}),
    "ck_conversion_data_source": ("conversion_data", {"source": "guess"}),
    "ck_conversion_data_value_micros_non_negative": ("conversion_data", {"value_micros": -1}),
    "ck_bid_history_new_bid_micros_non_negative": ("bid_history", {"new_bid_micros": -1}),
    "ck_bid_history_old_bid_micros_non_negative": ("bid_history", {"old_bid_micros": -1}),
    "ck_bid_history_outcome": ("bid_history", {"outcome": "maybe"}),
    "ck_bid_history_source": ("bid_history", {"source": "magic"}),
    "ck_anomaly_detection_closed_has_resolved_at": (
        "anomaly_detection",
        {"status": "resolved", "resolved_at": None},
    ),
    "ck_anomaly_detection_severity": ("anomaly_detection", {"severity": "fatal"}),
    "ck_anomaly_detection_status": ("anomaly_detection", {"status": BAD}),
    "ck_anomaly_detection_window_ordered": ("anomaly_detection", {"window_end": PAST}),
    "ck_experiments_ended_after_started": ("experiments", {"ended_at": PAST}),
    "ck_experiments_kind": ("experiments", {"kind": "mvt"}),
    "ck_experiments_status": ("experiments", {"status": BAD}),
    "ck_experiments_unit": ("experiments", {"unit": "account"}),
    "ck_bandit_arms_beta_prior_positive": ("bandit_arms", {"alpha": 0.0}),
    "ck_bandit_arms_pulls_non_negative": ("bandit_arms", {"pulls": -1}),
    "ck_bandit_arms_traffic_weight_range": ("bandit_arms", {"traffic_weight": 1.5}),
    "ck_experiment_assignments_exactly_one_target": (
        "experiment_assignments",
        lambda world: {"keyword_id": world.ids["keywords"][2]},
    ),
    "ck_experiment_results_ci_ordered": ("experiment_results", {"ci_low": 20.0}),
    "ck_experiment_results_cost_micros_non_negative": ("experiment_results", {"cost_micros": -1}),
    "ck_experiment_results_p_value_range": ("experiment_results", {"p_value": 1.5}),
    "ck_experiment_results_period_ordered": ("experiment_results", {"period_end": T0}),
    "ck_experiment_results_sample_size_non_negative": ("experiment_results", {"sample_size": -1}),
    "ck_experiment_results_value_micros_non_negative": (
        "experiment_results",
        {"value_micros": -1},
    ),
}

# Second ways to break some checks (the other bound, the other half of a condition).
EXTRA_CHECK_CASES: list[tuple[str, str, Changes]] = [
    ("ck_keywords_quality_score_range", "keywords", {"quality_score": 0}),
    (
        "ck_performance_metrics_hour_aligned",
        "performance_metrics",
        {"hour": T0 + timedelta(seconds=1)},
    ),
    (
        "ck_experiment_assignments_exactly_one_target",
        "experiment_assignments",
        {"campaign_id": None},
    ),
    ("ck_bandit_arms_beta_prior_positive", "bandit_arms", {"beta": -1.0}),
    ("ck_experiment_results_p_value_range", "experiment_results", {"p_value": -0.01}),
]


def _model_constraints() -> tuple[list[UniqueConstraint | Index], list[ForeignKeyConstraint]]:
    uniques: list[UniqueConstraint | Index] = []
    foreign_keys: list[ForeignKeyConstraint] = []
    for table in target_metadata().sorted_tables:
        for constraint in table.constraints:
            if isinstance(constraint, UniqueConstraint):
                uniques.append(constraint)
            elif isinstance(constraint, ForeignKeyConstraint):
                foreign_keys.append(constraint)
        uniques.extend(index for index in table.indexes if index.unique)
    # Sets in the metadata: sort so every xdist worker collects the same order.
    return sorted(uniques, key=_name), sorted(foreign_keys, key=_name)


def _name(item: UniqueConstraint | Index | ForeignKeyConstraint) -> str:
    return str(item.name)


UNIQUES, FOREIGN_KEYS = _model_constraints()


def refused_by(session: Session, statement: Executable) -> str:
    """Run ``statement`` in a savepoint; it must fail. Returns the constraint it broke."""
    with pytest.raises(IntegrityError) as info, session.begin_nested():
        session.execute(statement)
    return violated_constraint(info.value)


def _first_row_update(tables: MetaData, world: World, table: str, changes: Changes) -> Executable:
    target = tables.tables[table]
    values = changes(world) if callable(changes) else changes
    return update(target).where(is_row(target, world.ids[table][0])).values(**values)


@pytest.mark.parametrize(
    ("name", "table", "changes"), [(n, *case) for n, case in CHECK_CASES.items()]
)
def test_check_constraint_refuses_bad_row(
    any_session: Session, tables: MetaData, world: World, name: str, table: str, changes: Changes
) -> None:
    assert refused_by(any_session, _first_row_update(tables, world, table, changes)) == name


@pytest.mark.parametrize(("name", "table", "changes"), EXTRA_CHECK_CASES)
def test_check_constraint_refuses_other_bound(
    any_session: Session, tables: MetaData, world: World, name: str, table: str, changes: Changes
) -> None:
    assert refused_by(any_session, _first_row_update(tables, world, table, changes)) == name


def test_every_check_constraint_has_a_case(db_session: Session) -> None:
    in_database = db_session.execute(
        text(
            "SELECT conname FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
            "WHERE n.nspname = current_schema() AND c.contype = 'c'"
        )
    ).scalars()
    in_models = {
        constraint.name
        for table in target_metadata().tables.values()
        for constraint in table.constraints
        if isinstance(constraint, CheckConstraint)
    }
    assert set(in_database) == set(CHECK_CASES) == in_models


def _predicate_column(unique: UniqueConstraint | Index) -> str | None:
    where = unique.dialect_options["postgresql"]["where"] if isinstance(unique, Index) else None
    return None if where is None else str(where)


@pytest.mark.parametrize("unique", UNIQUES, ids=lambda unique: str(unique.name))
def test_unique_key_refuses_duplicate(
    any_session: Session, tables: MetaData, world: World, unique: UniqueConstraint | Index
) -> None:
    """Give the second row of the table the first row's key: the key must refuse it."""
    target = tables.tables[unique.table.name]  # type: ignore[union-attr]
    columns = [column.name for column in unique.columns]
    first, second = any_session.execute(
        select(target)
        .where(and_(*(target.c[name].is_not(None) for name in columns)))
        .order_by(target.c.id)
        .limit(2)
    ).all()
    values = {name: first._mapping[name] for name in columns}
    predicate = _predicate_column(unique)
    if predicate is not None:  # a partial unique index: make the copy fall under it
        values[predicate] = True
    statement = update(target).where(target.c.id == second.id).values(**values)
    refused = refused_by(any_session, statement)
    if any_session.get_bind().dialect.name == "postgresql":
        assert refused == unique.name
    else:  # SQLite names the columns, not the constraint
        assert refused == ", ".join(f"{target.name}.{name}" for name in columns)


def test_every_unique_key_is_tested(db_session: Session) -> None:
    in_database = db_session.execute(
        text(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
            "AND indexdef LIKE 'CREATE UNIQUE INDEX%' AND indexname NOT LIKE 'pk\\_%' "
            "AND tablename <> 'adbot_alembic_version'"
        )
    ).scalars()
    assert set(in_database) == {unique.name for unique in UNIQUES}


@pytest.mark.parametrize("foreign_key", FOREIGN_KEYS, ids=lambda fk: str(fk.name))
def test_foreign_key_delete_rule(
    any_session: Session, tables: MetaData, world: World, foreign_key: ForeignKeyConstraint
) -> None:
    """Delete the parent of a child row: CASCADE removes the child, SET NULL clears the
    reference, NO ACTION refuses the delete."""
    child = tables.tables[foreign_key.table.name]
    parent = tables.tables[foreign_key.referred_table.name]
    (column,) = foreign_key.column_keys
    row = any_session.execute(
        select(child.c.id, child.c[column])
        .where(child.c[column].is_not(None))
        .order_by(child.c.id)
        .limit(1)
    ).first()
    assert row is not None, f"the test world has no {child.name} row with {column} set"
    if child.name != "bid_history":
        # bid_history keeps keywords (NO ACTION); clear it so other rules can be seen alone.
        any_session.execute(delete(tables.tables["bid_history"]))
    delete_parent = delete(parent).where(parent.c.id == row[1])
    rule = foreign_key.ondelete
    if rule == "NO ACTION":
        refused = refused_by(any_session, delete_parent)
        sqlite_message = "FOREIGN KEY constraint failed"
        assert refused in (foreign_key.name, sqlite_message)
        return
    any_session.execute(delete_parent)
    after = any_session.execute(select(child.c[column]).where(child.c.id == row[0])).first()
    if rule == "CASCADE":
        assert after is None
    else:
        assert rule == "SET NULL"
        assert after is not None and after[0] is None


def test_delete_rules_are_declared_and_migrated(any_session: Session) -> None:
    """Every foreign key names its ON DELETE rule, and the database has the same rule."""
    inspector = inspect(any_session.connection())
    in_database = {
        fk["name"]: (fk["options"].get("ondelete") or "NO ACTION").upper()
        for table in inspector.get_table_names()
        for fk in inspector.get_foreign_keys(table)
    }
    declared = {fk.name: fk.ondelete for fk in FOREIGN_KEYS}
    assert all(rule in ("CASCADE", "SET NULL", "NO ACTION") for rule in declared.values())
    assert in_database == declared


def test_account_delete_cascades_through_everything(
    any_session: Session, tables: MetaData, world: World
) -> None:
    """NO ACTION rules are checked at the end of the statement, so deleting a tenant still
    removes all of its rows (history included) in one statement."""
    accounts = tables.tables["accounts"]
    any_session.execute(delete(accounts).where(accounts.c.id == world.ids["accounts"][0]))
    for name, table in tables.tables.items():
        if name in ("accounts", "users", "adbot_alembic_version"):
            continue
        assert any_session.execute(select(func.count()).select_from(table)).scalar() == 0, name
    remaining_users = any_session.execute(select(tables.tables["users"].c.email)).scalars()
    assert list(remaining_users) == ["carol@globex.test"]
