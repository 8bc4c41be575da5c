"""performance_metrics: natural primary key, references kept by set-based triggers.

Revision ID: 0002
Revises: 0001
Created: 2026-11-26

Why: ``performance_metrics`` is the largest and most written table, and its shape was the
limit of ingestion (issue 6): a raw COPY into it ran at ~25,000 rows/s. Each of its four
foreign keys is a trigger call per row (~4 us per row each on PostgreSQL, measured), and
each of its five indexes a B-tree insert per row. Now:

- primary key ``(account_id, hour, keyword_id)``, the natural key (a keyword belongs to
  one account, so it is as unique as ``(keyword_id, hour)``): the upsert's ``ON CONFLICT``
  target and the order reports read (account + hour range). No surrogate ``id``, no other
  index, no foreign key; the check constraints stay.
- integrity by triggers, at least as strong as the foreign keys were: every inserted or
  updated row must name an existing keyword *and* that keyword's ad group, campaign and
  account (the foreign keys only checked that each id existed). On PostgreSQL this is one
  statement-level trigger per INSERT and per UPDATE with a transition table: it locks the
  distinct keywords ``FOR KEY SHARE`` (the lock a foreign key takes, once per keyword
  instead of once per row) and checks them in one join (~0.5 s per million rows instead
  of ~4 s per key). SQLite has no statement-level triggers: row-level ones do the same.
- cascades by triggers: deleting keywords, ad groups, campaigns or accounts deletes their
  metrics, once per statement, each delete inside one account's range of the primary key
  (statement-level AFTER DELETE triggers with transition tables; row-level on SQLite).
  Foreign-key cascades delete children first, when their parents are already gone, so
  each level deletes what it can scope to an account and the level above does the rest:
  an account's own trigger, a campaign's ``account_id``.
- the copied ids stay the keyword's: a keyword's ad group, an ad group's campaign and a
  campaign's account cannot change (nothing in AdBot moves them).

Upgrade and downgrade rebuild the table (rename, create, copy, drop) so each backend gets
exactly the shape the models and migration 0001 describe. A batch rebuild of
``performance_metrics``, ``keywords``, ``ad_groups``, ``campaigns`` or ``accounts`` in a
later migration drops their triggers on SQLite: re-create them there.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "performance_metrics"
TIMESTAMP = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
NOW = sa.text("CURRENT_TIMESTAMP")
VALUES = ("impressions", "clicks", "conversions", "cost_micros", "conversion_value_micros")
COPIED = ("account_id", "campaign_id", "ad_group_id", "keyword_id", "hour", *VALUES, "updated_at")
# The error a refused row raises names this, like a foreign key's name.
CHAIN = "performance_metrics_keyword_chain"

# --- PostgreSQL ---------------------------------------------------------------------------

PG_CHECK_ROWS = f"""
CREATE FUNCTION performance_metrics_check_keywords() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  bad record;
BEGIN
  -- What a foreign key does per row, once per statement: lock the keywords so they cannot
  -- be deleted before this transaction ends, then check all rows in one join.
  PERFORM 1 FROM keywords WHERE id IN (SELECT keyword_id FROM new_rows) FOR KEY SHARE;
  SELECT n.*, k.id AS found, c.account_id AS k_account, g.campaign_id AS k_campaign,
         k.ad_group_id AS k_ad_group
    INTO bad
    FROM (SELECT DISTINCT account_id, campaign_id, ad_group_id, keyword_id FROM new_rows) n
    LEFT JOIN keywords k ON k.id = n.keyword_id
    LEFT JOIN ad_groups g ON g.id = k.ad_group_id
    LEFT JOIN campaigns c ON c.id = g.campaign_id
   WHERE k.id IS NULL OR k.ad_group_id <> n.ad_group_id OR g.campaign_id <> n.campaign_id
      OR c.account_id <> n.account_id
   LIMIT 1;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF bad.found IS NULL THEN
    RAISE foreign_key_violation USING
      MESSAGE = format('performance_metrics: keyword %s does not exist', bad.keyword_id),
      CONSTRAINT = '{CHAIN}', TABLE = 'performance_metrics';
  END IF;
  RAISE foreign_key_violation USING
    MESSAGE = format(
      'performance_metrics: keyword %s is in account %s, campaign %s, ad group %s; '
      'the row says account %s, campaign %s, ad group %s',
      bad.keyword_id, bad.k_account, bad.k_campaign, bad.k_ad_group,
      bad.account_id, bad.campaign_id, bad.ad_group_id),
    CONSTRAINT = '{CHAIN}', TABLE = 'performance_metrics';
END $$
"""

# Deleting parents deletes their metrics; each delete is scoped to an account (the leading
# column of the primary key). Parents deleted by the same cascade are invisible here, and
# the level above deletes their metrics instead.
PG_CASCADES = {
    "keywords": """
  DELETE FROM performance_metrics m
   USING old_rows o JOIN ad_groups g ON g.id = o.ad_group_id
        JOIN campaigns c ON c.id = g.campaign_id
   WHERE m.account_id = c.account_id AND m.keyword_id = o.id;""",
    "ad_groups": """
  DELETE FROM performance_metrics m
   USING old_rows o JOIN campaigns c ON c.id = o.campaign_id
   WHERE m.account_id = c.account_id AND m.ad_group_id = o.id;""",
    "campaigns": """
  DELETE FROM performance_metrics m
   USING old_rows o
   WHERE m.account_id = o.account_id AND m.campaign_id = o.id;""",
    "accounts": """
  DELETE FROM performance_metrics m USING old_rows o WHERE m.account_id = o.id;""",
}

PG_FIXED_PARENT = """
CREATE FUNCTION performance_metrics_fixed_parent() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE restrict_violation USING
    MESSAGE = format('%s.%s cannot change: performance_metrics copies it (create a new row '
                     'under the other parent instead)', TG_TABLE_NAME, TG_ARGV[0]),
    CONSTRAINT = TG_TABLE_NAME || '_fixed_' || TG_ARGV[0], TABLE = TG_TABLE_NAME;
END $$
"""

# table -> the parent reference that metrics copy and that must not change.
FIXED_PARENTS = {"keywords": "ad_group_id", "ad_groups": "campaign_id", "campaigns": "account_id"}


def _pg_triggers() -> list[str]:
    statements = [PG_CHECK_ROWS]
    for event in ("insert", "update"):
        statements.append(
            f"CREATE TRIGGER performance_metrics_check_{event} AFTER {event.upper()} "
            f"ON {TABLE} REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
            "EXECUTE FUNCTION performance_metrics_check_keywords()"
        )
    for parent, body in PG_CASCADES.items():
        statements.append(
            f"CREATE FUNCTION {parent}_delete_metrics() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN{body}\n  RETURN NULL;\nEND $$"
        )
        statements.append(
            f"CREATE TRIGGER {parent}_delete_metrics AFTER DELETE ON {parent} "
            "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
            f"EXECUTE FUNCTION {parent}_delete_metrics()"
        )
    statements.append(PG_FIXED_PARENT)
    for table, column in FIXED_PARENTS.items():
        statements.append(
            f"CREATE TRIGGER {table}_fixed_{column} BEFORE UPDATE OF {column} ON {table} "
            f"FOR EACH ROW WHEN (OLD.{column} IS DISTINCT FROM NEW.{column}) "
            f"EXECUTE FUNCTION performance_metrics_fixed_parent('{column}')"
        )
    return statements


def _pg_drop_triggers() -> list[str]:
    statements = [
        f"DROP TRIGGER performance_metrics_check_{event} ON {TABLE}"
        for event in ("insert", "update")
    ]
    statements.append("DROP FUNCTION performance_metrics_check_keywords()")
    for parent in PG_CASCADES:
        statements.append(f"DROP TRIGGER {parent}_delete_metrics ON {parent}")
        statements.append(f"DROP FUNCTION {parent}_delete_metrics()")
    for table, column in FIXED_PARENTS.items():
        statements.append(f"DROP TRIGGER {table}_fixed_{column} ON {table}")
    statements.append("DROP FUNCTION performance_metrics_fixed_parent()")
    return statements


# --- SQLite -------------------------------------------------------------------------------

# The keyword's own chain, for one row NEW (row-level triggers only).
SQLITE_CHAIN_OK = """EXISTS (
    SELECT 1 FROM keywords k
      JOIN ad_groups g ON g.id = k.ad_group_id
      JOIN campaigns c ON c.id = g.campaign_id
     WHERE k.id = NEW.keyword_id AND g.id = NEW.ad_group_id
       AND c.id = NEW.campaign_id AND c.account_id = NEW.account_id)"""
SQLITE_REFUSED = (
    f"FOREIGN KEY constraint failed: {CHAIN} (unknown keyword, or account, campaign or "
    "ad group not those of the keyword)"
)
SQLITE_CASCADES = {
    "keywords": """DELETE FROM performance_metrics
     WHERE account_id = (SELECT c.account_id FROM ad_groups g
                           JOIN campaigns c ON c.id = g.campaign_id
                          WHERE g.id = OLD.ad_group_id)
       AND keyword_id = OLD.id;""",
    "ad_groups": """DELETE FROM performance_metrics
     WHERE account_id = (SELECT account_id FROM campaigns WHERE id = OLD.campaign_id)
       AND ad_group_id = OLD.id;""",
    "campaigns": """DELETE FROM performance_metrics
     WHERE account_id = OLD.account_id AND campaign_id = OLD.id;""",
    "accounts": "DELETE FROM performance_metrics WHERE account_id = OLD.id;",
}


def _sqlite_triggers() -> list[str]:
    statements = []
    for event, when in (
        ("insert", "INSERT"),
        ("update", "UPDATE OF account_id, campaign_id, ad_group_id, keyword_id"),
    ):
        statements.append(
            f"CREATE TRIGGER performance_metrics_check_{event} BEFORE {when} ON {TABLE} "
            f"FOR EACH ROW WHEN NOT {SQLITE_CHAIN_OK}\n"
            f"BEGIN SELECT RAISE(ABORT, '{SQLITE_REFUSED}'); END"
        )
    for parent, body in SQLITE_CASCADES.items():
        statements.append(
            f"CREATE TRIGGER {parent}_delete_metrics AFTER DELETE ON {parent} "
            f"FOR EACH ROW BEGIN\n    {body}\nEND"
        )
    for table, column in FIXED_PARENTS.items():
        message = (
            f"{table}.{column} cannot change: performance_metrics copies it (create a new "
            "row under the other parent instead)"
        )
        statements.append(
            f"CREATE TRIGGER {table}_fixed_{column} BEFORE UPDATE OF {column} ON {table} "
            f"FOR EACH ROW WHEN OLD.{column} IS NOT NEW.{column}\n"
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
        )
    return statements


def _sqlite_drop_triggers() -> list[str]:
    names = [f"performance_metrics_check_{event}" for event in ("insert", "update")]
    names += [f"{parent}_delete_metrics" for parent in SQLITE_CASCADES]
    names += [f"{table}_fixed_{column}" for table, column in FIXED_PARENTS.items()]
    return [f"DROP TRIGGER {name}" for name in names]


# --- the two shapes -----------------------------------------------------------------------


def _is_postgresql() -> bool:
    return op.get_context().dialect.name == "postgresql"


def _check(name: str, sql: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(sql, name=op.f(f"ck_{TABLE}_{name}"))


def _checks() -> list[sa.CheckConstraint]:
    if _is_postgresql():
        aligned = "date_trunc('hour', hour AT TIME ZONE 'UTC') = hour AT TIME ZONE 'UTC'"
    else:
        aligned = "strftime('%M:%f', hour) = '00:00.000'"
    return [
        # 0 <= conversions <= clicks <= impressions also keeps clicks and impressions >= 0.
        *(
            _check(f"{column}_non_negative", f"{column} >= 0")
            for column in ("conversions", "cost_micros", "conversion_value_micros")
        ),
        _check("clicks_le_impressions", "clicks <= impressions"),
        _check("conversions_le_clicks", "conversions <= clicks"),
        _check("hour_aligned", aligned),
    ]


def _values() -> list[sa.Column]:
    return [
        sa.Column("hour", TIMESTAMP, nullable=False),
        sa.Column("impressions", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("clicks", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("conversions", sa.Double(), server_default="0", nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("conversion_value_micros", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_at", TIMESTAMP, server_default=NOW, nullable=False),
    ]


def _create_natural_key_table() -> None:
    op.create_table(
        TABLE,
        *(
            sa.Column(name, sa.Integer(), autoincrement=False, nullable=False)
            for name in ("account_id", "campaign_id", "ad_group_id", "keyword_id")
        ),
        *_values(),
        sa.PrimaryKeyConstraint("account_id", "hour", "keyword_id", name=op.f(f"pk_{TABLE}")),
        *_checks(),
    )


def _create_surrogate_key_table() -> None:
    """The table as migration 0001 made it."""
    references = [
        item
        for column, target in (
            ("account_id", "accounts"),
            ("campaign_id", "campaigns"),
            ("ad_group_id", "ad_groups"),
            ("keyword_id", "keywords"),
        )
        for item in (
            sa.Column(column, sa.Integer(), nullable=False),
            sa.ForeignKeyConstraint(
                [column],
                [f"{target}.id"],
                name=op.f(f"fk_{TABLE}_{column}_{target}"),
                ondelete="CASCADE",
            ),
        )
    ]
    op.create_table(
        TABLE,
        sa.Column("id", BIG_ID, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{TABLE}")),
        *references,
        *_values(),
        sa.UniqueConstraint("keyword_id", "hour", name=op.f(f"uq_{TABLE}_keyword_id_hour")),
        *_checks(),
    )
    for column in ("campaign_id", "ad_group_id", "account_id"):
        op.create_index(op.f(f"ix_{TABLE}_{column}_hour"), TABLE, [column, "hour"])


def _set_aside(name: str) -> None:
    """Rename the current table; on PostgreSQL also its primary key, whose index name the
    new table needs (SQLite keeps constraint names in the table's SQL only).
    """
    op.rename_table(TABLE, name)
    if _is_postgresql():
        op.execute(f"ALTER TABLE {name} RENAME CONSTRAINT pk_{TABLE} TO pk_{name}")


def _copy_from(name: str) -> None:
    columns = ", ".join(COPIED)
    op.execute(f"INSERT INTO {TABLE} ({columns}) SELECT {columns} FROM {name}")
    op.drop_table(name)


def upgrade() -> None:
    _set_aside(f"{TABLE}_0001")
    _create_natural_key_table()
    for statement in _pg_triggers() if _is_postgresql() else _sqlite_triggers():
        op.execute(statement)
    # Through the new triggers: a row the old foreign keys let through but whose ids are
    # not its keyword's stops the migration with the keyword named.
    _copy_from(f"{TABLE}_0001")


def downgrade() -> None:
    # Triggers first: SQLite's RENAME would rewrite their references to the old name.
    for statement in _pg_drop_triggers() if _is_postgresql() else _sqlite_drop_triggers():
        op.execute(statement)
    _set_aside(f"{TABLE}_0002")
    _create_surrogate_key_table()
    _copy_from(f"{TABLE}_0002")
