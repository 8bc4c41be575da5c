"""The caller's own account; any other account id answers 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from adbot.api.deps import AdminAccess, ReadAccess, SessionDep
from adbot.api.routing import StrictJsonRoute
from adbot.api.schemas.accounts import AccountFilters, AccountRead, AccountUpdate
from adbot.api.schemas.common import IdPath, Page, page_of
from adbot.services import accounts as service

router = APIRouter(prefix="/accounts", tags=["accounts"], route_class=StrictJsonRoute)


@router.get("")
def list_accounts(
    filters: Annotated[AccountFilters, Query()], actor: ReadAccess, session: SessionDep
) -> Page[AccountRead]:
    page = service.list_accounts(session=session, actor=actor, **filters.model_dump())
    return page_of(AccountRead, page)


@router.get("/{account_id}")
def get_account(account_id: IdPath, actor: ReadAccess, session: SessionDep) -> AccountRead:
    account = service.get_account(session=session, actor=actor, account_id=account_id)
    return AccountRead.model_validate(account)


@router.patch("/{account_id}")
def update_account(
    account_id: IdPath, body: AccountUpdate, actor: AdminAccess, session: SessionDep
) -> AccountRead:
    account = service.update_account(
        session=session,
        actor=actor,
        account_id=account_id,
        changes=body.model_dump(exclude_unset=True),
    )
    return AccountRead.model_validate(account)


@router.delete("/{account_id}")
def close_account(account_id: IdPath, actor: AdminAccess, session: SessionDep) -> AccountRead:
    """Close (archive) the account: its data stays, nobody can sign in to it any more."""
    account = service.close_account(session=session, actor=actor, account_id=account_id)
    return AccountRead.model_validate(account)
