"""Manual bid changes and the ``bid_history`` log.

A bulk change is one transaction: every keyword must belong to the actor's account, be
not removed and get a bid inside the configured bounds, or nothing changes. On PostgreSQL
the whole batch is two statements (``UPDATE ... FROM unnest(...)`` and
``INSERT ... SELECT FROM unnest(...)``), however many keywords it touches.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Insert,
    Integer,
    Select,
    bindparam,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from adbot.config import LimitSettings
from adbot.db.base import UTCDateTime
from adbot.db.models import (
    AdGroup,
    BidChange,
    BidOutcome,
    BidSource,
    Campaign,
    EntityStatus,
    Keyword,
)
from adbot.errors import Conflict, InvalidInput, NotFound
from adbot.services.common import Actor, writing

MAX_BULK_CHANGES = 10_000
# How many offending ids an error lists; enough to act on, small enough to read.
_LISTED = 100


@dataclass(frozen=True)
class BidUpdate:
    keyword_id: int
    old_bid_micros: int | None
    new_bid_micros: int


@dataclass(frozen=True)
class BulkResult:
    cycle_id: uuid.UUID
    updated: int
    unchanged: int


def bulk_update_bids(
    *,
    session: Session,
    actor: Actor,
    limits: LimitSettings,
    changes: Sequence[tuple[int, int]],
    reason: str | None = None,
) -> BulkResult:
    """Set ``(keyword_id, bid_micros)`` pairs, all or nothing; no-op pairs are not logged."""
    _check_request(changes, limits)
    ids = [keyword_id for keyword_id, _ in changes]
    with writing(session):
        current = _lock_keywords(session, actor, ids)
        missing = [keyword_id for keyword_id in ids if keyword_id not in current]
        if missing:
            raise NotFound(
                f"{len(missing)} keyword(s) not found", details={"keyword_ids": missing[:_LISTED]}
            )
        removed = [kid for kid in ids if current[kid][1] == EntityStatus.REMOVED]
        if removed:
            raise Conflict(
                f"{len(removed)} keyword(s) are removed; their bids cannot change",
                details={"keyword_ids": removed[:_LISTED]},
            )
        updates = [
            BidUpdate(kid, current[kid][0], bid) for kid, bid in changes if current[kid][0] != bid
        ]
        cycle_id = uuid.uuid4()
        _write_bids(session, updates)
        record_bid_changes(session, actor, updates, cycle_id=cycle_id, reason=reason)
    return BulkResult(
        cycle_id=cycle_id, updated=len(updates), unchanged=len(changes) - len(updates)
    )


def record_bid_changes(
    session: Session,
    actor: Actor,
    updates: Sequence[BidUpdate],
    *,
    cycle_id: uuid.UUID,
    reason: str | None,
) -> None:
    """Append manual changes to ``bid_history`` in the caller's transaction."""
    if not updates:
        return
    now = datetime.now(UTC)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_history_insert_pg(actor, updates, cycle_id, reason, now))
        return
    session.execute(
        insert(BidChange),
        [
            {
                "account_id": actor.account_id,
                "keyword_id": update_.keyword_id,
                "cycle_id": cycle_id,
                "old_bid_micros": update_.old_bid_micros,
                "new_bid_micros": update_.new_bid_micros,
                "source": BidSource.MANUAL,
                "outcome": BidOutcome.APPLIED,
                "reason": reason,
                "user_id": actor.user_id,
                "created_at": now,
            }
            for update_ in updates
        ],
    )


def _check_request(changes: Sequence[tuple[int, int]], limits: LimitSettings) -> None:
    if not 1 <= len(changes) <= MAX_BULK_CHANGES:
        raise InvalidInput(
            f"send between 1 and {MAX_BULK_CHANGES} changes", details={"field": "changes"}
        )
    repeated = [kid for kid, count in Counter(kid for kid, _ in changes).items() if count > 1]
    if repeated:
        raise InvalidInput(
            "each keyword may appear once per request",
            details={"field": "changes", "keyword_ids": repeated[:_LISTED]},
        )
    low, high = limits.min_bid_micros, limits.max_bid_micros
    outside = [index for index, (_, bid) in enumerate(changes) if not low <= bid <= high]
    if outside:
        raise InvalidInput(
            f"{len(outside)} bid(s) outside the configured bounds [{low}, {high}]",
            details={"field": "changes", "indexes": outside[:_LISTED], "min": low, "max": high},
        )


def _lock_keywords(
    session: Session, actor: Actor, ids: list[int]
) -> dict[int, tuple[int | None, EntityStatus]]:
    """Current bid and status of the actor's keywords among ``ids``, locked until commit so
    a concurrent change cannot slip between the read and the write.
    """
    stmt: Select[tuple[int, int | None, EntityStatus]] = (
        select(Keyword.id, Keyword.bid_micros, Keyword.status)
        .join(AdGroup, AdGroup.id == Keyword.ad_group_id)
        .join(Campaign, Campaign.id == AdGroup.campaign_id)
        .where(Campaign.account_id == actor.account_id, Keyword.id.in_(ids))
        .with_for_update(of=Keyword)
    )
    return {row[0]: (row[1], row[2]) for row in session.execute(stmt)}


def _write_bids(session: Session, updates: Sequence[BidUpdate]) -> None:
    if not updates:
        return
    now = datetime.now(UTC)
    if session.get_bind().dialect.name == "postgresql":
        values = (
            func.unnest(
                bindparam("ids", [u.keyword_id for u in updates], type_=ARRAY(Integer)),
                bindparam("bids", [u.new_bid_micros for u in updates], type_=ARRAY(BigInteger)),
            )
            .table_valued("id", "bid")
            .render_derived(with_types=False)
        )
        session.execute(
            update(Keyword)
            .where(Keyword.id == values.c.id)
            .values(bid_micros=values.c.bid, updated_at=now),
            execution_options={"synchronize_session": False},
        )
    else:
        session.execute(
            update(Keyword),
            [
                {"id": u.keyword_id, "bid_micros": u.new_bid_micros, "updated_at": now}
                for u in updates
            ],
        )
    # The rows changed behind the ORM's back; reload them if anyone asks.
    session.expire_all()


def _history_insert_pg(
    actor: Actor,
    updates: Sequence[BidUpdate],
    cycle_id: uuid.UUID,
    reason: str | None,
    now: datetime,
) -> Insert:
    values = (
        func.unnest(
            bindparam("kids", [u.keyword_id for u in updates], type_=ARRAY(Integer)),
            bindparam("olds", [u.old_bid_micros for u in updates], type_=ARRAY(BigInteger)),
            bindparam("news", [u.new_bid_micros for u in updates], type_=ARRAY(BigInteger)),
        )
        .table_valued("keyword_id", "old_bid", "new_bid")
        .render_derived(with_types=False)
    )
    rows = select(
        literal(actor.account_id, Integer),
        values.c.keyword_id,
        literal(cycle_id, BidChange.__table__.c.cycle_id.type),
        values.c.old_bid,
        values.c.new_bid,
        literal(BidSource.MANUAL.value),
        literal(BidOutcome.APPLIED.value),
        literal(reason, BidChange.__table__.c.reason.type),
        literal(actor.user_id, Integer),
        literal(now, UTCDateTime()),
    )
    return insert(BidChange).from_select(
        [
            "account_id",
            "keyword_id",
            "cycle_id",
            "old_bid_micros",
            "new_bid_micros",
            "source",
            "outcome",
            "reason",
            "user_id",
            "created_at",
        ],
        rows,
    )
