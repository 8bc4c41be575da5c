"""Keywords (analysts and admins write, everyone reads). A PATCH of ``bid_micros`` is
logged in ``bid_history`` as a manual change by the caller.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from adbot.api.deps import ReadAccess, SessionDep, SettingsDep, WriteAccess
from adbot.api.routing import StrictJsonRoute
from adbot.api.schemas.common import IdPath, Page, page_of
from adbot.api.schemas.keywords import KeywordCreate, KeywordFilters, KeywordRead, KeywordUpdate
from adbot.services import keywords as service

router = APIRouter(prefix="/keywords", tags=["keywords"], route_class=StrictJsonRoute)


@router.post("", status_code=201)
def create_keyword(
    body: KeywordCreate, actor: WriteAccess, session: SessionDep, settings: SettingsDep
) -> KeywordRead:
    keyword = service.create_keyword(
        session=session, actor=actor, limits=settings.limits, **body.model_dump()
    )
    return KeywordRead.model_validate(keyword)


@router.get("")
def list_keywords(
    filters: Annotated[KeywordFilters, Query()], actor: ReadAccess, session: SessionDep
) -> Page[KeywordRead]:
    page = service.list_keywords(session=session, actor=actor, **filters.model_dump())
    return page_of(KeywordRead, page)


@router.get("/{keyword_id}")
def get_keyword(keyword_id: IdPath, actor: ReadAccess, session: SessionDep) -> KeywordRead:
    keyword = service.get_keyword(session=session, actor=actor, keyword_id=keyword_id)
    return KeywordRead.model_validate(keyword)


@router.patch("/{keyword_id}")
def update_keyword(
    keyword_id: IdPath,
    body: KeywordUpdate,
    actor: WriteAccess,
    session: SessionDep,
    settings: SettingsDep,
) -> KeywordRead:
    changes = body.model_dump(exclude_unset=True)
    reason = changes.pop("reason", None)
    keyword = service.update_keyword(
        session=session,
        actor=actor,
        limits=settings.limits,
        keyword_id=keyword_id,
        changes=changes,
        reason=reason,
    )
    return KeywordRead.model_validate(keyword)


@router.delete("/{keyword_id}")
def remove_keyword(keyword_id: IdPath, actor: WriteAccess, session: SessionDep) -> KeywordRead:
    """Remove (archive): status becomes ``removed``, which is final; history stays."""
    keyword = service.remove_keyword(session=session, actor=actor, keyword_id=keyword_id)
    return KeywordRead.model_validate(keyword)
