"""The young person's JSON API (``/api/v1/me``), used by the pages and by mobile apps.

Sign in with ``POST /api/v1/me/session``; the cookie it sets authenticates every other
call, and every unsafe method needs the returned ``csrf_token`` as ``X-CSRF-Token``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from app.auth import service as auth
from app.deps import ApiUser, AuditCursor, DbSession, ServicesDep, client_address
from app.jobs import notifier_for
from app.schemas import AccountPublic, Credentials, PasswordConfirm, SessionPublic
from app.uploads import bounded_body
from app.web_session import clear_session_cookie, set_session_cookie
from grants import service as grants_service
from vault import export as vault_export
from vault import service
from vault.repository import VaultScope
from vault.schemas import (
    AuditPage,
    EntryCreate,
    EntryPublic,
    EntryUpdate,
    NoteCreate,
    NotePublic,
    RecordPublic,
)

router = APIRouter(prefix="/api/v1", tags=["young person"])


@router.post("/accounts", status_code=status.HTTP_201_CREATED)
def sign_up(body: Credentials, db: DbSession, services: ServicesDep) -> AccountPublic:
    """Make an account with only a username and a password: no email, no real name."""
    name = service.validate_new_credentials(body.username, body.password)
    person, _vault = service.create_young_person(
        db, services.vault, None, name, auth.hash_password(body.password)
    )
    return AccountPublic(id=person.id, username=person.username, created_at=person.created_at)


@router.post("/me/session")
def sign_in(
    body: Credentials, request: Request, response: Response, db: DbSession, services: ServicesDep
) -> SessionPublic:
    signed_in = auth.sign_in(
        db, services.settings, body.username, body.password, client_address(request)
    )
    set_session_cookie(response, services.settings, signed_in.token)
    return SessionPublic(
        csrf_token=auth.csrf_token(services.settings, signed_in.web_session),
        expires_at=signed_in.web_session.expires_at,
    )


@router.post("/me/session/step-up")
def step_up(
    body: PasswordConfirm, request: Request, user: ApiUser, db: DbSession, services: ServicesDep
) -> SessionPublic:
    """Enter the password again before exporting or deleting (SECURITY.md step-up)."""
    auth.reauthenticate(
        db,
        services.settings,
        user.web_session,
        user.person,
        body.password,
        client_address(request),
    )
    return SessionPublic(csrf_token=user.csrf_token, expires_at=user.web_session.expires_at)


@router.delete("/me/session", status_code=status.HTTP_204_NO_CONTENT)
def sign_out(user: ApiUser, db: DbSession, response: Response) -> None:
    auth.sign_out(db, user.web_session)
    clear_session_cookie(response)


@router.get("/me")
def whoami(user: ApiUser) -> AccountPublic:
    return AccountPublic(
        id=user.person.id, username=user.person.username, created_at=user.person.created_at
    )


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT)
def erase_account(user: ApiUser, db: DbSession, services: ServicesDep, response: Response) -> None:
    """Delete the account and crypto-shred the vault. Needs a recent sign-in."""
    auth.require_recent_sign_in(services.settings, user.web_session)
    grants_service.erase_young_person(
        db, services.vault, user.actor, user.person, notifier=notifier_for(services)
    )
    clear_session_cookie(response)


# -- story ------------
@router.post("/me/entries", status_code=status.HTTP_201_CREATED)
def create_entry(
    body: EntryCreate, user: ApiUser, db: DbSession, services: ServicesDep
) -> EntryPublic:
    return service.create_entry(db, services.vault, user.actor, user.vault, body)


@router.get("/me/entries")
def list_entries(user: ApiUser, db: DbSession, services: ServicesDep) -> list[EntryPublic]:
    return service.list_entries(db, services.vault, user.actor, VaultScope.owner(user.vault.id))


@router.get("/me/entries/{entry_id}")
def get_entry(
    entry_id: uuid.UUID, user: ApiUser, db: DbSession, services: ServicesDep
) -> EntryPublic:
    return service.get_entry(
        db, services.vault, user.actor, VaultScope.owner(user.vault.id), entry_id
    )


@router.patch("/me/entries/{entry_id}")
def update_entry(
    entry_id: uuid.UUID, body: EntryUpdate, user: ApiUser, db: DbSession, services: ServicesDep
) -> EntryPublic:
    return service.update_entry(db, services.vault, user.actor, user.vault, entry_id, body)


@router.delete("/me/entries/{entry_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_entry(entry_id: uuid.UUID, user: ApiUser, db: DbSession, services: ServicesDep) -> None:
    service.delete_entry(db, services.vault, user.actor, user.vault, entry_id)


@router.put("/me/entries/{entry_id}/photo", status_code=status.HTTP_204_NO_CONTENT)
def put_photo(
    entry_id: uuid.UUID,
    request: Request,
    data: Annotated[bytes, Depends(bounded_body)],
    user: ApiUser,
    db: DbSession,
    services: ServicesDep,
) -> None:
    """Send the raw image as the body with its Content-Type (JPEG, PNG or WebP)."""
    content_type = request.headers.get("content-type", "")
    service.set_photo(db, services.vault, user.actor, user.vault, entry_id, content_type, data)


@router.get("/me/entries/{entry_id}/photo")
def get_photo(entry_id: uuid.UUID, user: ApiUser, db: DbSession, services: ServicesDep) -> Response:
    content_type, data = service.get_photo(
        db, services.vault, user.actor, VaultScope.owner(user.vault.id), entry_id
    )
    return Response(content=data, media_type=content_type)


# -- records about me ------------
@router.get("/me/records")
def list_records(
    user: ApiUser, db: DbSession, services: ServicesDep, category: str | None = None
) -> list[RecordPublic]:
    return service.list_records(
        db, services.vault, user.actor, VaultScope.owner(user.vault.id), category
    )


@router.get("/me/records/{record_id}")
def get_record(
    record_id: uuid.UUID, user: ApiUser, db: DbSession, services: ServicesDep
) -> RecordPublic:
    return service.get_record(
        db, services.vault, user.actor, VaultScope.owner(user.vault.id), record_id
    )


@router.post("/me/records/{record_id}/notes", status_code=status.HTTP_201_CREATED)
def add_note(
    record_id: uuid.UUID, body: NoteCreate, user: ApiUser, db: DbSession, services: ServicesDep
) -> NotePublic:
    return service.add_note(db, services.vault, user.actor, user.vault, record_id, body)


# -- audit and export ------------
@router.get("/me/audit")
def audit_trail(
    user: ApiUser,
    db: DbSession,
    services: ServicesDep,
    before: AuditCursor = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AuditPage:
    return service.audit_trail(db, services.vault, user.actor, user.vault, before, limit)


@router.get("/me/export", response_class=Response)
def export(user: ApiUser, db: DbSession, services: ServicesDep) -> Response:
    """Everything as a zip. Needs a recent sign-in (step-up), and is logged."""
    auth.require_recent_sign_in(services.settings, user.web_session)
    data = vault_export.build(db, services.vault, user.actor, user.person, user.vault)
    stamp = datetime.now().strftime("%Y-%m-%d")  # noqa: DTZ005 - a file name, local day
    return Response(
        content=data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="storykeep-{stamp}.zip"'},
    )
