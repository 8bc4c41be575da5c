"""API keys (admin): create (the key is shown once), list, read, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from adbot.api.deps import AdminAccess, SessionDep
from adbot.api.routing import StrictJsonRoute
from adbot.api.schemas.api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyFilters, ApiKeyRead
from adbot.api.schemas.common import IdPath, Page, page_of
from adbot.services import api_keys as service

router = APIRouter(prefix="/api-keys", tags=["api keys"], route_class=StrictJsonRoute)


@router.post("", status_code=201)
def create_api_key(body: ApiKeyCreate, actor: AdminAccess, session: SessionDep) -> ApiKeyCreated:
    api_key, plaintext = service.create_api_key(session=session, actor=actor, **body.model_dump())
    return ApiKeyCreated.model_validate(
        {**ApiKeyRead.model_validate(api_key).model_dump(), "key": plaintext}
    )


@router.get("")
def list_api_keys(
    filters: Annotated[ApiKeyFilters, Query()], actor: AdminAccess, session: SessionDep
) -> Page[ApiKeyRead]:
    page = service.list_api_keys(session=session, actor=actor, **filters.model_dump())
    return page_of(ApiKeyRead, page)


@router.get("/{key_id}")
def get_api_key(key_id: IdPath, actor: AdminAccess, session: SessionDep) -> ApiKeyRead:
    return ApiKeyRead.model_validate(
        service.get_api_key(session=session, actor=actor, key_id=key_id)
    )


@router.delete("/{key_id}")
def revoke_api_key(key_id: IdPath, actor: AdminAccess, session: SessionDep) -> ApiKeyRead:
    """Revoke: the key stops working at once; the row stays for the record."""
    api_key = service.revoke_api_key(session=session, actor=actor, key_id=key_id)
    return ApiKeyRead.model_validate(api_key)
