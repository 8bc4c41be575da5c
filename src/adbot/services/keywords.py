"""Keywords: children of an ad group of the same account. Text is normalised (trimmed,
single spaces, lower case) because the platforms match keywords case-insensitively, so
"Running  Shoes" and "running shoes" are one natural key. Every bid change is logged.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from adbot.config import LimitSettings
from adbot.db.models import AdGroup, Campaign, EntityStatus, Keyword, MatchType
from adbot.errors import Conflict, InvalidInput
from adbot.services.ad_groups import get_ad_group, refuse_removed_parent
from adbot.services.bids import BidUpdate, record_bid_changes
from adbot.services.common import (
    Actor,
    Owned,
    Page,
    apply_changes,
    archive,
    check_bounds,
    check_transition,
    writing,
)
from adbot.services.reports import reports_changed

SORTS = {
    "id": Keyword.id,
    "text": Keyword.text,
    "created_at": Keyword.created_at,
    "bid_micros": Keyword.bid_micros,
}
KEYWORDS = Owned(
    Keyword,
    Keyword.id,
    "keyword",
    Campaign.account_id,
    SORTS,
    Keyword.text,
    (Keyword.ad_group, AdGroup.campaign),
)
UPDATABLE = {"status", "bid_micros"}
# Fields a performance report shows (or may filter by): a change empties its cache.
REPORTED = {"status"}


def normalise_text(text: str) -> str:
    normalised = " ".join(text.split()).lower()
    if not normalised:
        raise InvalidInput("keyword text is blank", details={"field": "text"})
    return normalised


def create_keyword(
    *,
    session: Session,
    actor: Actor,
    limits: LimitSettings,
    ad_group_id: int,
    text: str,
    match_type: MatchType,
    bid_micros: int | None = None,
    status: EntityStatus = EntityStatus.ENABLED,
    external_id: str | None = None,
) -> Keyword:
    ad_group = get_ad_group(session=session, actor=actor, ad_group_id=ad_group_id)
    refuse_removed_parent(ad_group.status, "ad group", ad_group_id)
    _check_bid(bid_micros, limits)
    keyword = Keyword(
        ad_group_id=ad_group.id,
        text=normalise_text(text),
        match_type=match_type,
        bid_micros=bid_micros,
        status=status,
        external_id=external_id,
    )
    with writing(session):
        session.add(keyword)
        reports_changed(session, actor.account_id)
    return keyword


def list_keywords(
    *,
    session: Session,
    actor: Actor,
    limit: int,
    offset: int,
    sort: str = "id",
    status: EntityStatus | None = None,
    ad_group_id: int | None = None,
    campaign_id: int | None = None,
    match_type: MatchType | None = None,
    q: str | None = None,
) -> Page[Keyword]:
    where = [
        (Keyword.status, status),
        (Keyword.ad_group_id, ad_group_id),
        (AdGroup.campaign_id, campaign_id),
        (Keyword.match_type, match_type),
    ]
    return KEYWORDS.page(
        session, actor.account_id, where, q=q, sort=sort, limit=limit, offset=offset
    )


def get_keyword(*, session: Session, actor: Actor, keyword_id: int) -> Keyword:
    return KEYWORDS.get(session, keyword_id, account_id=actor.account_id)


def update_keyword(
    *,
    session: Session,
    actor: Actor,
    limits: LimitSettings,
    keyword_id: int,
    changes: Mapping[str, Any],
    reason: str | None = None,
) -> Keyword:
    """Change status and/or bid; a new bid is written to ``bid_history`` as a manual change."""
    keyword = get_keyword(session=session, actor=actor, keyword_id=keyword_id)
    new_status = changes.get("status", keyword.status)
    check_transition(keyword.status, new_status, entity="keyword")
    new_bid = changes.get("bid_micros", keyword.bid_micros)
    if "bid_micros" in changes:
        if new_bid is None:
            raise InvalidInput("bid_micros cannot be cleared", details={"field": "bid_micros"})
        _check_bid(new_bid, limits)
    old_bid = keyword.bid_micros
    bid_changes = new_bid is not None and new_bid != old_bid
    if bid_changes and new_status == EntityStatus.REMOVED:
        raise Conflict("a removed keyword's bid cannot change", details={"field": "bid_micros"})
    with writing(session):
        apply_changes(keyword, changes, UPDATABLE)
        if REPORTED & set(changes):
            reports_changed(session, actor.account_id)
        if bid_changes:
            assert new_bid is not None
            session.flush()
            record_bid_changes(
                session,
                actor,
                [BidUpdate(keyword.id, old_bid, new_bid)],
                cycle_id=uuid.uuid4(),
                reason=reason,
            )
    return keyword


def remove_keyword(*, session: Session, actor: Actor, keyword_id: int) -> Keyword:
    """Archive: status ``removed``; its bid history keeps pointing at it."""
    keyword = get_keyword(session=session, actor=actor, keyword_id=keyword_id)
    reports_changed(session, actor.account_id)
    return archive(session, keyword)


def _check_bid(value: int | None, limits: LimitSettings) -> None:
    check_bounds(value, field="bid_micros", low=limits.min_bid_micros, high=limits.max_bid_micros)
