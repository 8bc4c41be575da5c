"""performance_metrics keeps its references with triggers (migration 0002), not foreign
keys: on PostgreSQL and SQLite a row must name an existing keyword and that keyword's own
ad group, campaign and account; deleting a keyword, ad group, campaign or account deletes
its metrics and nothing else; and the parents that metrics copy cannot be moved.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from db_world import HOUR, T0, World
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from adbot.db.models import (
    Account,
    AdGroup,
    BidChange,
    Campaign,
    Keyword,
    MatchType,
    PerformanceMetric,
    Platform,
    PlatformKind,
)

METRICS = PerformanceMetric.__table__
CHAIN = "performance_metrics_keyword_chain"


def _refusal(session: Session, statement: Executable) -> tuple[str | None, str]:
    """Run ``statement`` in a savepoint; it must fail. (constraint name, message)."""
    with pytest.raises(IntegrityError) as info, session.begin_nested():
        session.execute(statement)
    diag = getattr(info.value.orig, "diag", None)
    if diag is not None:  # PostgreSQL
        return diag.constraint_name, str(diag.message_primary)
    return None, str(info.value.orig)


def _metric(world: World, **changes: Any) -> dict[str, Any]:
    """A new row for the world's first keyword (k-1: group 1, campaign 1, acme)."""
    account_id, _, keyword_id = world.ids["performance_metrics"][0]
    row = {
        "account_id": account_id,
        "campaign_id": world.ids["campaigns"][0],
        "ad_group_id": world.ids["ad_groups"][0],
        "keyword_id": keyword_id,
        "hour": T0 + 10 * HOUR,
        "impressions": 10,
        "clicks": 1,
    }
    return {**row, **changes}


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def test_a_row_of_an_existing_keyword_is_accepted(any_session: Session, world: World) -> None:
    any_session.execute(insert(METRICS).values(_metric(world)))
    assert any_session.scalar(select(func.count()).select_from(METRICS)) == 3


def test_an_unknown_keyword_is_refused(any_session: Session, world: World) -> None:
    name, message = _refusal(any_session, insert(METRICS).values(_metric(world, keyword_id=999)))
    if _is_postgresql(any_session):
        assert (name, message) == (CHAIN, "performance_metrics: keyword 999 does not exist")
    else:
        assert message.startswith(f"FOREIGN KEY constraint failed: {CHAIN}")


def _other_parent(world: World, column: str) -> int:
    """An existing parent that is not the first keyword's."""
    return {
        "campaign_id": world.ids["campaigns"][1],
        "ad_group_id": world.ids["ad_groups"][1],
        "account_id": world.ids["accounts"][1],
    }[column]


@pytest.mark.parametrize("column", ["account_id", "campaign_id", "ad_group_id"])
def test_a_parent_that_is_not_the_keywords_is_refused(
    any_session: Session, world: World, column: str
) -> None:
    """The old foreign keys only asked that each id exist; these all do."""
    wrong = _other_parent(world, column)
    name, message = _refusal(any_session, insert(METRICS).values(_metric(world, **{column: wrong})))
    if _is_postgresql(any_session):
        assert name == CHAIN
        assert message.startswith(f"performance_metrics: keyword {_metric(world)['keyword_id']} ")
        row_says = message.split("the row says ")[1]
        assert f"{column.removesuffix('_id').replace('_', ' ')} {wrong}" in row_says
    else:
        assert message.startswith(f"FOREIGN KEY constraint failed: {CHAIN}")


@pytest.mark.parametrize("column", ["campaign_id", "ad_group_id", "keyword_id"])
def test_an_update_is_checked_too(any_session: Session, world: World, column: str) -> None:
    wrong = world.ids["keywords"][2] if column == "keyword_id" else _other_parent(world, column)
    statement = update(METRICS).values({column: wrong})
    name, message = _refusal(any_session, statement)
    if _is_postgresql(any_session):
        assert name == CHAIN
    else:
        assert message.startswith(f"FOREIGN KEY constraint failed: {CHAIN}")


def test_one_bad_row_refuses_the_whole_statement(any_session: Session, world: World) -> None:
    rows = [_metric(world, hour=T0 + (10 + n) * HOUR) for n in range(50)]
    rows[37]["keyword_id"] = 424_242
    _refusal(any_session, insert(METRICS).values(rows))
    assert any_session.scalar(select(func.count()).select_from(METRICS)) == 2


@pytest.mark.parametrize(
    ("table", "column"),
    [("keywords", "ad_group_id"), ("ad_groups", "campaign_id"), ("campaigns", "account_id")],
)
def test_the_parents_that_metrics_copy_cannot_move(
    any_session: Session, world: World, table: str, column: str
) -> None:
    model = {"keywords": Keyword, "ad_groups": AdGroup, "campaigns": Campaign}[table]
    target = {
        "ad_group_id": world.ids["ad_groups"][1],
        "campaign_id": world.ids["campaigns"][1],
        "account_id": world.ids["accounts"][1],
    }[column]
    statement = update(model).where(model.id == world.ids[table][0]).values({column: target})
    name, message = _refusal(any_session, statement)
    assert f"{table}.{column} cannot change" in message
    if _is_postgresql(any_session):
        assert name == f"{table}_fixed_{column}"
    # Changing anything else is fine.
    other = {"bid_micros": 5} if table == "keywords" else {"name": "Renamed"}
    any_session.execute(update(model).where(model.id == world.ids[table][0]).values(other))


# --- cascades -----------------------------------------------------------------------------


def _spread(session: Session, world: World) -> dict[str, int]:
    """Metrics beside the world's two rows of k-1 (group 1, campaign 1, acme): one of k-3
    (group 2, campaign 1), one of a keyword in campaign 2, one in the other account."""
    acme, globex = world.ids["accounts"]
    c1, c2 = world.ids["campaigns"][:2]
    g2 = world.ids["ad_groups"][1]
    k3 = world.ids["keywords"][2]
    platform = Platform(account_id=globex, kind=PlatformKind.SIM, name="Simulator")
    session.add(platform)
    session.flush()
    c3 = Campaign(account_id=globex, platform_id=platform.id, name="G", daily_budget_micros=1)
    session.add(c3)
    session.flush()
    groups = [AdGroup(campaign_id=c2, name="Other"), AdGroup(campaign_id=c3.id, name="G")]
    session.add_all(groups)
    session.flush()
    keywords = [Keyword(ad_group_id=g.id, text="hat", match_type=MatchType.EXACT) for g in groups]
    session.add_all(keywords)
    session.flush()
    placed = [
        (acme, c1, g2, k3),
        (acme, c2, groups[0].id, keywords[0].id),
        (globex, c3.id, groups[1].id, keywords[1].id),
    ]
    session.execute(
        insert(METRICS),
        [
            {
                "account_id": account,
                "campaign_id": campaign,
                "ad_group_id": group,
                "keyword_id": keyword,
                "hour": T0 + timedelta(hours=20),
                "impressions": 1,
                "clicks": 0,
            }
            for account, campaign, group, keyword in placed
        ],
    )
    return {"k3": k3, "campaign 2": keywords[0].id, "globex": keywords[1].id}


def _keywords_with_metrics(session: Session) -> list[int]:
    rows = session.execute(select(METRICS.c.keyword_id).order_by(METRICS.c.keyword_id))
    return list(rows.scalars())


@pytest.mark.parametrize(
    ("deleted", "survivors"),
    [
        ("keyword", ["k3", "campaign 2", "globex"]),
        ("ad group", ["k3", "campaign 2", "globex"]),
        ("campaign", ["campaign 2", "globex"]),
        ("account", ["globex"]),
    ],
)
def test_deleting_a_parent_deletes_its_metrics_and_no_others(
    any_session: Session, world: World, deleted: str, survivors: list[str]
) -> None:
    others = _spread(any_session, world)
    k1 = world.ids["keywords"][0]
    assert _keywords_with_metrics(any_session) == sorted([k1, k1, *others.values()])
    any_session.execute(delete(BidChange))  # its NO ACTION reference keeps keywords
    model, row_id = {
        "keyword": (Keyword, k1),
        "ad group": (AdGroup, world.ids["ad_groups"][0]),
        "campaign": (Campaign, world.ids["campaigns"][0]),
        "account": (Account, world.ids["accounts"][0]),
    }[deleted]
    any_session.execute(delete(model).where(model.id == row_id))
    assert _keywords_with_metrics(any_session) == sorted(others[name] for name in survivors)


def test_deleting_many_keywords_in_one_statement(any_session: Session, world: World) -> None:
    others = _spread(any_session, world)
    any_session.execute(delete(BidChange))
    doomed = [world.ids["keywords"][0], others["k3"], others["globex"]]
    any_session.execute(delete(Keyword).where(Keyword.id.in_(doomed)))
    assert _keywords_with_metrics(any_session) == [others["campaign 2"]]
