"""The shape of the migrated schema: counts, tenant chain, indexes for the product's queries,
and the same tables, columns and constraint names on PostgreSQL and SQLite."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, inspect, text
from sqlalchemy.orm import Session

# The counts of the migrated schema, exactly. Migration 0002 took performance_metrics' four
# foreign keys, its unique key and three indexes (and its surrogate id) and put nine
# triggers in their place: the table is the largest and busiest, and keeps its references
# set-based (see its model). At 0001 the counts were 78 indexes, 42 foreign keys, 24
# unique keys, 68 checks and no trigger.
COUNTS = {
    "tables": 20,
    "indexes": 74,
    "foreign_keys": 38,
    "uniques": 23,
    "checks": 68,
    "triggers": 9,
}

# Counted from the catalogs. Indexes include primary keys and unique constraints (each is
# backed by an index); check constraints exclude the NOT NULL ones PostgreSQL also lists;
# triggers exclude the internal ones of foreign keys.
COUNT_SQL = {
    "tables": "SELECT count(*) FROM information_schema.tables WHERE table_schema = "
    "current_schema() AND table_type = 'BASE TABLE' AND table_name <> 'adbot_alembic_version'",
    "indexes": "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() "
    "AND tablename <> 'adbot_alembic_version'",
    "foreign_keys": "SELECT count(*) FROM information_schema.table_constraints WHERE "
    "constraint_schema = current_schema() AND constraint_type = 'FOREIGN KEY'",
    "uniques": "SELECT count(*) FROM information_schema.table_constraints WHERE "
    "constraint_schema = current_schema() AND constraint_type = 'UNIQUE'",
    "checks": "SELECT count(*) FROM information_schema.table_constraints WHERE "
    "constraint_schema = current_schema() AND constraint_type = 'CHECK' "
    "AND constraint_name NOT LIKE '%\\_not\\_null'",
    "triggers": "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND NOT t.tgisinternal",
}

# References kept by triggers instead of foreign keys (migration 0002): table -> parents.
TRIGGER_REFERENCES = {
    "performance_metrics": {"accounts", "campaigns", "ad_groups", "keywords"},
}

TABLES = {
    "accounts",
    "users",
    "platforms",
    "api_keys",
    "campaigns",
    "ad_groups",
    "ads",
    "keywords",
    "performance_metrics",
    "conversion_data",
    "bid_history",
    "anomaly_detection",
    "agents",
    "training_runs",
    "model_checkpoints",
    "agent_configs",
    "experiments",
    "experiment_assignments",
    "experiment_results",
    "bandit_arms",
}


def test_schema_counts(db_session: Session) -> None:
    counts = {name: db_session.execute(text(sql)).scalar_one() for name, sql in COUNT_SQL.items()}
    print("PostgreSQL schema counts:", counts)
    assert counts == COUNTS


def test_exactly_the_twenty_tables(pg_engine: Engine, sqlite_engine: Engine) -> None:
    for engine in (pg_engine, sqlite_engine):
        assert set(inspect(engine).get_table_names()) == TABLES | {"adbot_alembic_version"}


def test_every_table_reaches_its_account_through_required_references(pg_engine: Engine) -> None:
    """Tenant isolation: from any row, NOT NULL foreign keys (or the references that
    triggers keep, tested in test_db_metric_triggers) lead to exactly one account."""
    inspector = inspect(pg_engine)
    parents: dict[str, set[str]] = {}
    for table in TABLES:
        required = {c["name"] for c in inspector.get_columns(table) if not c["nullable"]}
        parents[table] = {
            fk["referred_table"]
            for fk in inspector.get_foreign_keys(table)
            if set(fk["constrained_columns"]) <= required
        } | TRIGGER_REFERENCES.get(table, set())

    def reaches_accounts(table: str, seen: frozenset[str] = frozenset()) -> bool:
        if table == "accounts":
            return True
        return any(reaches_accounts(p, seen | {table}) for p in parents[table] - seen)

    unreachable = sorted(table for table in TABLES if not reaches_accounts(table))
    assert unreachable == []


def test_every_foreign_key_column_leads_an_index(pg_engine: Engine) -> None:
    """Cascades and joins on a reference never scan the child table."""
    inspector = inspect(pg_engine)
    missing = []
    for table in TABLES:
        leading = {
            index["column_names"][0]
            for index in inspector.get_indexes(table)
            if not index.get("dialect_options", {}).get("postgresql_where")
        }
        leading |= {uq["column_names"][0] for uq in inspector.get_unique_constraints(table)}
        leading |= set(inspector.get_pk_constraint(table)["constrained_columns"][:1])
        for fk in inspector.get_foreign_keys(table):
            if fk["constrained_columns"][0] not in leading:
                missing.append(f"{table}.{fk['constrained_columns'][0]}")
    assert missing == []


def test_indexes_for_the_products_queries(pg_engine: Engine) -> None:
    inspector = inspect(pg_engine)

    def indexes(table: str) -> dict[tuple[str | None, ...], dict[str, Any]]:
        found: dict[tuple[str | None, ...], dict[str, Any]] = {
            tuple(ix["column_names"]): dict(ix) for ix in inspector.get_indexes(table)
        }
        for uq in inspector.get_unique_constraints(table):
            found.setdefault(tuple(uq["column_names"]), {"unique": True})
        return found

    # Reports filter by account and hour range (then campaign, ad group or keyword); the
    # idempotent upsert's key is (keyword, hour) within the account. One key serves both.
    metrics_key = inspector.get_pk_constraint("performance_metrics")["constrained_columns"]
    assert metrics_key == ["account_id", "hour", "keyword_id"]
    assert indexes("performance_metrics") == {}  # and no other index: each costs every write
    assert ("keyword_id", "created_at") in indexes("bid_history")  # a keyword's bid changes
    assert ("cycle_id",) in indexes("bid_history")  # roll back one cycle
    open_by_account = indexes("anomaly_detection")[("account_id", "detected_at")]
    where = str(open_by_account["dialect_options"]["postgresql_where"])
    assert "status" in where and "'open'" in where  # partial: only open anomalies


def _shape(engine: Engine) -> dict[str, Any]:
    """Names and rules that must not depend on the backend (types are allowed to differ)."""
    inspector = inspect(engine)
    shape: dict[str, Any] = {}
    for table in sorted(TABLES):
        shape[table] = {
            "columns": [(c["name"], c["nullable"]) for c in inspector.get_columns(table)],
            "primary_key": inspector.get_pk_constraint(table)["name"],
            "foreign_keys": sorted(
                (fk["name"], (fk["options"].get("ondelete") or "NO ACTION").upper())
                for fk in inspector.get_foreign_keys(table)
            ),
            "uniques": sorted(uq["name"] for uq in inspector.get_unique_constraints(table)),
            "indexes": sorted(
                (ix["name"], bool(ix["unique"]))
                for ix in inspector.get_indexes(table)
                if not ix.get("duplicates_constraint")
            ),
            "checks": sorted(ck["name"] for ck in inspector.get_check_constraints(table)),
        }
    return shape


TRIGGER_SQL = {
    "postgresql": "SELECT c.relname, t.tgname FROM pg_trigger t "
    "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND NOT t.tgisinternal",
    "sqlite": "SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'",
}


def _triggers(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(text(TRIGGER_SQL[engine.dialect.name]))
        return sorted((table, name) for table, name in rows)


def test_postgresql_and_sqlite_have_the_same_schema(
    pg_engine: Engine, sqlite_engine: Engine
) -> None:
    assert _shape(pg_engine) == _shape(sqlite_engine)
    assert _triggers(pg_engine) == _triggers(sqlite_engine)
    assert len(_triggers(pg_engine)) == COUNTS["triggers"]
