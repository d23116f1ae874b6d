"""Plain HTML pages for young people. They work without JavaScript and share the session
(and the service calls) with ``/api/v1/me``. Every posted form carries a CSRF token."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, Response, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from app.auth import service as auth
from app.container import Services
from app.deps import (
    PRESESSION_COOKIE,
    SESSION_COOKIE,
    DbSession,
    FormCsrf,
    PageUser,
    ServicesDep,
    SignedInPerson,
    client_address,
)
from app.errors import CsrfFailed
from app.web_session import clear_session_cookie, set_session_cookie
from grants import service as grants_service
from vault import export as vault_export
from vault import service
from vault.errors import PayloadTooLarge, RateLimited, StorykeepError
from vault.repository import VaultScope
from vault.schemas import EntryCreate, EntryUpdate, NoteCreate
from vault.vocabulary import CATEGORY_LABELS

router = APIRouter(include_in_schema=False)

ShareChoice = Annotated[str, Form(pattern="^(yes|no)$")]
OptionalPhoto = UploadFile | None


def _render(
    request: Request, name: str, user: SignedInPerson | None, status_code: int = 200, **ctx: Any
) -> HTMLResponse:
    templates = request.app.state.templates
    context = {"user": user.person if user else None, "csrf_token": user.csrf_token if user else ""}
    context.update(ctx)
    response: HTMLResponse = templates.TemplateResponse(
        request, name, context, status_code=status_code
    )
    return response


def _safe_next(target: str | None) -> str:
    """Only same-site paths, so sign-in cannot be used as an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/story"


def _presession_form(
    request: Request, services: ServicesDep, name: str, status_code: int = 200, **ctx: Any
) -> HTMLResponse:
    presession = request.cookies.get(PRESESSION_COOKIE) or auth.new_presession()
    response = _render(
        request,
        name,
        None,
        status_code,
        form_csrf=auth.csrf_token_for_presession(services.settings, presession),
        **ctx,
    )
    response.set_cookie(
        PRESESSION_COOKIE, presession, max_age=3600, secure=True, httponly=True, samesite="lax"
    )
    return response


def _check_presession(request: Request, services: ServicesDep, given: str | None) -> None:
    presession = request.cookies.get(PRESESSION_COOKIE)
    if not presession or not auth.csrf_matches(
        auth.csrf_token_for_presession(services.settings, presession), given
    ):
        raise CsrfFailed()


async def _photo_bytes(photo: OptionalPhoto, limit: int) -> tuple[str, bytes] | None:
    if photo is None or not photo.filename:
        return None
    data = await photo.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"Photos can be up to {limit // (1024 * 1024)} MB.")
    return photo.content_type or "", data


# -- signing in, up and out ------------
@router.get("/")
def home(request: Request) -> RedirectResponse:
    target = "/story" if request.cookies.get(SESSION_COOKIE) else "/signin"
    return RedirectResponse(target, status_code=303)


@router.get("/signin")
def signin_page(
    request: Request,
    services: ServicesDep,
    again: Annotated[int, Query()] = 0,
    next: Annotated[str, Query(max_length=200)] = "/story",  # noqa: A002
) -> HTMLResponse:
    return _presession_form(
        request, services, "signin.html", again=bool(again), next=_safe_next(next), username=""
    )


@router.post("/signin")
def signin(
    request: Request,
    db: DbSession,
    services: ServicesDep,
    form_csrf: FormCsrf,
    username: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=200)] = "/story",  # noqa: A002
) -> Response:
    _check_presession(request, services, form_csrf)
    try:
        signed_in = auth.sign_in(db, services.settings, username, password, client_address(request))
    except (auth.SignInFailed, RateLimited) as exc:
        # Re-show the form; returning (not raising) keeps the throttle count committed.
        status_code = 429 if isinstance(exc, RateLimited) else 401
        return _presession_form(
            request,
            services,
            "signin.html",
            status_code,
            error=exc.message,
            next=_safe_next(next),
            username=username[:40],
            again=False,
        )
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_session_cookie(response, services.settings, signed_in.token)
    response.delete_cookie(PRESESSION_COOKIE)
    return response


@router.get("/signup")
def signup_page(request: Request, services: ServicesDep) -> HTMLResponse:
    return _presession_form(request, services, "signup.html", username="")


@router.post("/signup")
def signup(
    request: Request,
    db: DbSession,
    services: ServicesDep,
    form_csrf: FormCsrf,
    username: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=1024)],
) -> Response:
    _check_presession(request, services, form_csrf)
    try:
        name = service.validate_new_credentials(username, password)
        person, _vault = service.create_young_person(
            db, services.vault, None, name, auth.hash_password(password)
        )
    except StorykeepError as exc:
        return _presession_form(
            request, services, "signup.html", 422, error=exc.message, username=username[:40]
        )
    signed_in = auth.start_session(db, services.settings, person)
    response = RedirectResponse("/story", status_code=303)
    set_session_cookie(response, services.settings, signed_in.token)
    response.delete_cookie(PRESESSION_COOKIE)
    return response


@router.post("/signout")
def signout(user: PageUser, db: DbSession) -> Response:
    auth.sign_out(db, user.web_session)
    response = RedirectResponse("/signin", status_code=303)
    clear_session_cookie(response)
    return response


# -- my story ------------
@router.get("/story")
def story_page(
    request: Request, user: PageUser, db: DbSession, services: ServicesDep
) -> HTMLResponse:
    entries = service.list_entries(db, services.vault, user.actor, VaultScope.owner(user.vault.id))
    return _render(request, "story.html", user, entries=entries)


@router.post("/story")
async def story_create(
    user: PageUser,
    db: DbSession,
    services: ServicesDep,
    title: Annotated[str, Form()],
    shareable: ShareChoice,
    body: Annotated[str, Form()] = "",
    photo: OptionalPhoto = None,
) -> Response:
    data = EntryCreate(title=title, body=body, shareable=shareable == "yes")
    upload = await _photo_bytes(photo, services.settings.max_photo_bytes)
    entry_id = await run_in_threadpool(_create_entry_with_photo, db, services, user, data, upload)
    return RedirectResponse(f"/story/{entry_id}", status_code=303)


def _create_entry_with_photo(
    db: Session,
    services: Services,
    user: SignedInPerson,
    data: EntryCreate,
    upload: tuple[str, bytes] | None,
) -> uuid.UUID:
    entry = service.create_entry(db, services.vault, user.actor, user.vault, data)
    if upload is not None:
        service.set_photo(db, services.vault, user.actor, user.vault, entry.id, *upload)
    return entry.id


def _update_entry_with_photo(
    db: Session,
    services: Services,
    user: SignedInPerson,
    entry_id: uuid.UUID,
    data: EntryUpdate,
    upload: tuple[str, bytes] | None,
) -> uuid.UUID:
    service.update_entry(db, services.vault, user.actor, user.vault, entry_id, data)
    if upload is not None:
        service.set_photo(db, services.vault, user.actor, user.vault, entry_id, *upload)
    return entry_id


@router.get("/story/{entry_id}")
def entry_page(
    request: Request, entry_id: uuid.UUID, user: PageUser, db: DbSession, services: ServicesDep
) -> HTMLResponse:
    entry = service.get_entry(
        db, services.vault, user.actor, VaultScope.owner(user.vault.id), entry_id
    )
    return _render(request, "entry.html", user, entry=entry)


@router.post("/story/{entry_id}")
async def entry_update(
    entry_id: uuid.UUID,
    user: PageUser,
    db: DbSession,
    services: ServicesDep,
    title: Annotated[str, Form()],
    shareable: ShareChoice,
    body: Annotated[str, Form()] = "",
    photo: OptionalPhoto = None,
) -> Response:
    data = EntryUpdate(title=title, body=body, shareable=shareable == "yes")
    upload = await _photo_bytes(photo, services.settings.max_photo_bytes)
    await run_in_threadpool(_update_entry_with_photo, db, services, user, entry_id, data, upload)
    return RedirectResponse(f"/story/{entry_id}", status_code=303)


@router.post("/story/{entry_id}/delete")
def entry_delete(
    entry_id: uuid.UUID, user: PageUser, db: DbSession, services: ServicesDep
) -> Response:
    service.delete_entry(db, services.vault, user.actor, user.vault, entry_id)
    return RedirectResponse("/story", status_code=303)


@router.get("/story/{entry_id}/photo")
def entry_photo(
    entry_id: uuid.UUID, user: PageUser, db: DbSession, services: ServicesDep
) -> Response:
    content_type, data = service.get_photo(
        db, services.vault, user.actor, VaultScope.owner(user.vault.id), entry_id
    )
    return Response(content=data, media_type=content_type)


# -- records about me ------------
@router.get("/records")
def records_page(
    request: Request, user: PageUser, db: DbSession, services: ServicesDep
) -> HTMLResponse:
    records = service.list_records(db, services.vault, user.actor, VaultScope.owner(user.vault.id))
    return _render(request, "records.html", user, records=records, labels=CATEGORY_LABELS)


@router.get("/records/{record_id}")
def record_page(
    request: Request, record_id: uuid.UUID, user: PageUser, db: DbSession, services: ServicesDep
) -> HTMLResponse:
    record = service.get_record(
        db, services.vault, user.actor, VaultScope.owner(user.vault.id), record_id
    )
    return _render(request, "record.html", user, record=record, labels=CATEGORY_LABELS)


@router.post("/records/{record_id}/notes")
def record_note(
    record_id: uuid.UUID,
    user: PageUser,
    db: DbSession,
    services: ServicesDep,
    body: Annotated[str, Form()],
) -> Response:
    service.add_note(db, services.vault, user.actor, user.vault, record_id, NoteCreate(body=body))
    return RedirectResponse(f"/records/{record_id}", status_code=303)


# -- audit and account ------------
@router.get("/audit")
def audit_page(
    request: Request,
    user: PageUser,
    db: DbSession,
    services: ServicesDep,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    page = service.audit_trail(db, services.vault, user.actor, user.vault, before, 50)
    return _render(request, "audit.html", user, page=page)


@router.get("/account")
def account_page(request: Request, user: PageUser) -> HTMLResponse:
    return _render(request, "account.html", user)


@router.get("/account/export")
def account_export(user: PageUser, db: DbSession, services: ServicesDep) -> Response:
    auth.require_recent_sign_in(services.settings, user.web_session)
    data = vault_export.build(db, services.vault, user.actor, user.person, user.vault)
    stamp = datetime.now().strftime("%Y-%m-%d")  # noqa: DTZ005 - a file name, local day
    return Response(
        content=data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="storykeep-{stamp}.zip"'},
    )


@router.post("/account/delete")
def account_delete(
    request: Request,
    user: PageUser,
    db: DbSession,
    services: ServicesDep,
    password: Annotated[str, Form(max_length=1024)],
) -> Response:
    try:
        auth.reauthenticate(
            db,
            services.settings,
            user.web_session,
            user.person,
            password,
            client_address(request),
        )
    except (auth.SignInFailed, RateLimited) as exc:
        # Returned, not raised, so the failed try still counts towards the throttle.
        return _render(
            request,
            "account.html",
            user,
            429 if isinstance(exc, RateLimited) else 401,
            notice=f"{exc.message} Nothing was deleted.",
        )
    grants_service.erase_young_person(db, services.vault, user.actor, user.person)
    response = RedirectResponse("/signin", status_code=303)
    clear_session_cookie(response)
    return response
