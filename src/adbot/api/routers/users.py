"""People of the account (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from adbot.api.deps import AdminAccess, SessionDep, SettingsDep
from adbot.api.routing import StrictJsonRoute
from adbot.api.schemas.common import IdPath, Page, page_of
from adbot.api.schemas.users import UserCreate, UserFilters, UserRead, UserUpdate
from adbot.services import users as service

router = APIRouter(prefix="/users", tags=["users"], route_class=StrictJsonRoute)


@router.post("", status_code=201)
def create_user(
    body: UserCreate, actor: AdminAccess, session: SessionDep, settings: SettingsDep
) -> UserRead:
    user = service.create_user(
        session=session, actor=actor, auth=settings.auth, **body.model_dump()
    )
    return UserRead.model_validate(user)


@router.get("")
def list_users(
    filters: Annotated[UserFilters, Query()], actor: AdminAccess, session: SessionDep
) -> Page[UserRead]:
    page = service.list_users(session=session, actor=actor, **filters.model_dump())
    return page_of(UserRead, page)


@router.get("/{user_id}")
def get_user(user_id: IdPath, actor: AdminAccess, session: SessionDep) -> UserRead:
    return UserRead.model_validate(service.get_user(session=session, actor=actor, user_id=user_id))


@router.patch("/{user_id}")
def update_user(
    user_id: IdPath,
    body: UserUpdate,
    actor: AdminAccess,
    session: SessionDep,
    settings: SettingsDep,
) -> UserRead:
    user = service.update_user(
        session=session,
        actor=actor,
        user_id=user_id,
        changes=body.model_dump(exclude_unset=True),
        auth=settings.auth,
    )
    return UserRead.model_validate(user)


@router.delete("/{user_id}")
def deactivate_user(user_id: IdPath, actor: AdminAccess, session: SessionDep) -> UserRead:
    """Deactivate (archive): the user can no longer sign in; their keys stop working."""
    user = service.deactivate_user(session=session, actor=actor, user_id=user_id)
    return UserRead.model_validate(user)
