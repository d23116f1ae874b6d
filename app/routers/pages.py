"""Plain HTML pages for young people. They work without JavaScript and share the session
(and the service calls) with ``/api/v1/me``. Every posted form carries a CSRF token."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request, Response, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from app.auth import service as auth
from app.container import Services
from app.deps import (
    PRESESSION_COOKIE,
    SESSION_COOKIE,
    AuditCursor,
    DbSession,
    FormCsrf,
    PageUser,
    ServicesDep,
    SignedInPerson,
    client_address,
)
from app.errors import CsrfFailed
from app.jobs import notifier_for
from app.web_session import clear_session_cookie, set_session_cookie
from grants import service as grants_service
from grants import wording
from grants.schemas import ApproveBody, DeclineBody, GrantPublic, RequestPublic
from vault import export as vault_export
from vault import service
from vault.db_types import utcnow
from vault.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    StepUpRequired,
    StorykeepError,
)
from vault.repository import VaultScope
from vault.schemas import CorrectionCreate, EntryCreate, EntryUpdate, NoteCreate
from vault.vocabulary import CATEGORY_LABELS

router = APIRouter(include_in_schema=False)

ShareChoice = Annotated[str, Form(pattern="^(yes|no)$")]
OptionalPhoto = UploadFile | None
OptionalPassword = Annotated[str, Form(max_length=1024)]

# Young people here live in Scotland: show their clock, not UTC.
LOCAL_TZ = ZoneInfo("Europe/London")

# Messages after a change, picked by a fixed key (?done=...), so no text is reflected.
DONE = {
    "yes": "You said yes. You can stop sharing at any time on this page.",
    "no": "You said no. Nothing is shared.",
    "stopped": "You stopped sharing. They cannot see your things now.",
    "code-stopped": "That code will not work now.",
    "correction": "We have saved your request.",
}


def _render(
    request: Request, name: str, user: SignedInPerson | None, status_code: int = 200, **ctx: Any
) -> HTMLResponse:
    templates = request.app.state.templates
    context: dict[str, Any] = {
        "user": user.person if user else None,
        "csrf_token": user.csrf_token if user else "",
        "when": When,
        "labels": CATEGORY_LABELS,
    }
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


class When:
    """Dates and times in plain words, on the young person's clock (Europe/London)."""

    @staticmethod
    def day(at: datetime) -> str:
        """E.g. "Tuesday 3 March" (with the year when it is not this year)."""
        local = at.astimezone(LOCAL_TZ)
        text = f"{local.strftime('%A')} {local.day} {local.strftime('%B')}"
        if local.year != utcnow().astimezone(LOCAL_TZ).year:
            text += f" {local.year}"
        return text

    @staticmethod
    def date(at: datetime) -> str:
        """E.g. "3 March 2026"."""
        local = at.astimezone(LOCAL_TZ)
        return f"{local.day} {local.strftime('%B %Y')}"

    @staticmethod
    def clock(at: datetime) -> str:
        return at.astimezone(LOCAL_TZ).strftime("%H:%M")

    @staticmethod
    def ends_in(at: datetime) -> str:
        """A countdown: "Ends in 12 days", "Ends in 5 hours", "Ends in 3 minutes"."""
        left = (at - utcnow()).total_seconds()
        if left >= 2 * 86400:
            count, unit = round(left / 86400), "day"
        elif left >= 2 * 3600:
            count, unit = round(left / 3600), "hour"
        elif left >= 60:
            count, unit = int(left // 60), "minute"
        else:
            return "Ends in less than a minute"
        return f"Ends in {count} {unit}{'' if count == 1 else 's'}"

    @staticmethod
    def days(count: int) -> str:
        return "1 day" if count == 1 else f"{count} days"


def _purpose(purpose: str) -> str:
    """ "to plan support at school", with a capital letter to start a sentence."""
    words = wording.purpose_words(purpose)
    return words[:1].upper() + words[1:]


def _step_up_problem(
    request: Request, db: Session, services: Services, user: SignedInPerson, password: str
) -> tuple[int, str] | None:
    """Saying yes needs a recent sign-in (SECURITY.md step-up). Asked for on the same page,
    so nobody is bounced away mid-decision. Returns (status, message) when not satisfied."""
    try:
        auth.require_recent_sign_in(services.settings, user.web_session)
    except StepUpRequired:
        if not password:
            return 401, "Please type your password to say yes."
        try:
            auth.reauthenticate(
                db, services.settings, user.web_session, user.person, password,
                client_address(request),
            )  # fmt: skip
        except (auth.SignInFailed, RateLimited) as exc:
            return 429 if isinstance(exc, RateLimited) else 401, f"{exc.message} Nothing changed."
    return None


def _needs_password(services: Services, user: SignedInPerson) -> bool:
    try:
        auth.require_recent_sign_in(services.settings, user.web_session)
    except StepUpRequired:
        return True
    return False


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
    timeout: Annotated[int, Query()] = 0,
    next: Annotated[str, Query(max_length=200)] = "/story",  # noqa: A002
) -> HTMLResponse:
    return _presession_form(
        request,
        services,
        "signin.html",
        again=bool(again),
        timeout=bool(timeout),
        next=_safe_next(next),
        username="",
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
            timeout=False,
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
    return _render(request, "records.html", user, records=records)


@router.get("/records/{record_id}")
def record_page(
    request: Request,
    record_id: uuid.UUID,
    user: PageUser,
    db: DbSession,
    services: ServicesDep,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:
    view = service.record_for_owner(db, services.vault, user.actor, user.vault, record_id)
    return _render(
        request,
        "record.html",
        user,
        record=view.record,
        corrections=view.corrections,
        notice=DONE.get(done or ""),
    )


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


@router.post("/records/{record_id}/corrections")
def record_correction(
    record_id: uuid.UUID,
    user: PageUser,
    db: DbSession,
    services: ServicesDep,
    body: Annotated[str, Form()],
) -> Response:
    """Ask for a change (UK GDPR Art. 16). Recorded now; sent to the agency later."""
    service.request_correction(
        db, services.vault, user.actor, user.vault, record_id, CorrectionCreate(body=body)
    )
    return RedirectResponse(f"/records/{record_id}?done=correction#changes", status_code=303)


# -- audit and account ------------
@router.get("/audit")
def audit_page(
    request: Request,
    user: PageUser,
    db: DbSession,
    services: ServicesDep,
    before: AuditCursor = None,
    who: Annotated[str, Query(max_length=16)] = "",
) -> HTMLResponse:
    trail = service.audit_view(
        db, services.vault, user.actor, user.vault, who=who or None, before=before, limit=50,
        tz=LOCAL_TZ, purpose_words=wording.purpose_words,
    )  # fmt: skip
    return _render(request, "audit.html", user, trail=trail)


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
    grants_service.erase_young_person(
        db, services.vault, user.actor, user.person, notifier=notifier_for(services)
    )
    response = RedirectResponse("/signin", status_code=303)
    clear_session_cookie(response)
    return response


# -- requests: Yes, Change or No ------------
# Shorter ends a young person can pick instead of what was asked (days, words).
SHORTER_ENDS = ((1, "1 day"), (7, "1 week"), (14, "2 weeks"), (30, "1 month"), (90, "3 months"))


def _find_request(
    db: Session, user: SignedInPerson, request_id: uuid.UUID, pending: bool = True
) -> RequestPublic:
    for asked in grants_service.list_requests(db, user.vault):
        if asked.id == request_id:
            if pending and asked.status != "pending":
                raise Conflict("This request has already been answered, or has run out.")
            return asked
    raise NotFound("We could not find that request.")


def _asked_end(asked: RequestPublic) -> datetime:
    return asked.created_at + timedelta(days=asked.duration_days)


def _end_choices(asked: RequestPublic) -> list[tuple[str, str]]:
    """(value, words) for the "how long" select: what they asked, or shorter, never longer."""
    choices = [("asked", f"As they asked: {When.days(asked.duration_days)}")]
    choices += [(str(days), words) for days, words in SHORTER_ENDS if days < asked.duration_days]
    return choices


def _chosen_end(asked: RequestPublic, choice: str) -> datetime | None:
    if choice == "asked":
        return None
    if choice not in {value for value, _words in _end_choices(asked)}:
        raise InvalidInput("Please pick one of the choices for how long.")
    return min(utcnow() + timedelta(days=int(choice)), _asked_end(asked))


def _request_page(
    request: Request,
    name: str,
    user: SignedInPerson,
    services: Services,
    asked: RequestPublic,
    status_code: int = 200,
    **ctx: Any,
) -> HTMLResponse:
    return _render(
        request,
        name,
        user,
        status_code,
        asked=asked,
        purpose=_purpose,
        asked_end=_asked_end,
        needs_password=_needs_password(services, user),
        **ctx,
    )


@router.get("/requests")
def requests_page(
    request: Request,
    user: PageUser,
    db: DbSession,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:
    everything = grants_service.list_requests(db, user.vault)
    return _render(
        request,
        "requests.html",
        user,
        pending=[r for r in everything if r.status == "pending"],
        past=[r for r in everything if r.status != "pending"][:20],
        purpose=_purpose,
        asked_end=_asked_end,
        notice=DONE.get(done or ""),
    )


@router.post("/requests/{request_id}/yes")
def request_yes(
    request: Request,
    request_id: uuid.UUID,
    user: PageUser,
    db: DbSession,
    services: ServicesDep,
    password: OptionalPassword = "",
) -> Response:
    """Yes, to everything asked. If the sign-in is not recent, ask for the password here."""
    asked = _find_request(db, user, request_id)
    problem = _step_up_problem(request, db, services, user, password)
    if problem is not None:
        # Returned, not raised, so a wrong password still counts towards the throttle.
        status_code, message = problem
        return _request_page(
            request, "request_yes.html", user, services, asked, status_code, error=message
        )
    grants_service.approve(
        db, services.vault, user.actor, user.vault, asked.id, ApproveBody(),
        notifier=notifier_for(services),
    )  # fmt: skip
    return RedirectResponse("/sharing?done=yes", status_code=303)


@router.get("/requests/{request_id}/change")
def request_change_page(
    request: Request, request_id: uuid.UUID, user: PageUser, db: DbSession, services: ServicesDep
) -> HTMLResponse:
    asked = _find_request(db, user, request_id)
    return _request_page(
        request, "request_change.html", user, services, asked,
        ticked=set(asked.categories), choices=_end_choices(asked), chosen="asked",
    )  # fmt: skip


@router.post("/requests/{request_id}/change")
def request_change(
    request: Request,
    request_id: uuid.UUID,
    user: PageUser,
    db: DbSession,
    services: ServicesDep,
    until: Annotated[str, Form(max_length=10)] = "asked",
    categories: Annotated[list[str] | None, Form(max_length=10)] = None,
    password: OptionalPassword = "",
) -> Response:
    """Yes to less: only some of the things asked for, for a shorter time (never more)."""
    asked = _find_request(db, user, request_id)
    picked = categories or []

    def again(status_code: int, message: str) -> HTMLResponse:
        return _request_page(
            request, "request_change.html", user, services, asked, status_code, error=message,
            ticked=set(picked), choices=_end_choices(asked), chosen=until,
        )  # fmt: skip

    if not picked:
        return again(422, "Tick at least one thing they can see. Or go back and say No.")
    try:
        body = ApproveBody(categories=picked, expires_at=_chosen_end(asked, until))
    except InvalidInput as exc:
        return again(422, exc.message)
    if set(picked) - set(asked.categories):
        # Checked before the password, so nothing (not even the sign-in time) changes.
        return again(422, "You can only keep some of the things they asked for, not add more.")
    problem = _step_up_problem(request, db, services, user, password)
    if problem is not None:
        return again(*problem)
    grants_service.approve(
        db, services.vault, user.actor, user.vault, asked.id, body,
        notifier=notifier_for(services),
    )  # fmt: skip
    return RedirectResponse("/sharing?done=yes", status_code=303)


@router.get("/requests/{request_id}/no")
def request_no_page(
    request: Request, request_id: uuid.UUID, user: PageUser, db: DbSession, services: ServicesDep
) -> HTMLResponse:
    asked = _find_request(db, user, request_id)
    return _request_page(request, "request_no.html", user, services, asked)


@router.post("/requests/{request_id}/no")
def request_no(
    request_id: uuid.UUID,
    user: PageUser,
    db: DbSession,
    services: ServicesDep,
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    body = DeclineBody(reason=reason.strip() or None)
    grants_service.decline(
        db, services.vault, user.actor, user.vault, request_id, body,
        notifier=notifier_for(services),
    )  # fmt: skip
    return RedirectResponse("/requests?done=no", status_code=303)


# -- who can see my story ------------
def _find_grant(db: Session, user: SignedInPerson, grant_id: uuid.UUID) -> GrantPublic:
    for grant in grants_service.list_grants(db, user.vault):
        if grant.id == grant_id:
            if not grant.active:
                raise Conflict("This has already stopped. Nothing was changed.")
            return grant
    raise NotFound("We could not find that.")


@router.get("/sharing")
def sharing_page(
    request: Request,
    user: PageUser,
    db: DbSession,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:
    grants = grants_service.list_grants(db, user.vault)
    return _render(
        request,
        "sharing.html",
        user,
        active=[g for g in grants if g.active],
        ended=[g for g in grants if not g.active][:20],
        purpose=_purpose,
        notice=DONE.get(done or ""),
    )


@router.get("/sharing/{grant_id}/stop")
def stop_page(request: Request, grant_id: uuid.UUID, user: PageUser, db: DbSession) -> HTMLResponse:
    grant = _find_grant(db, user, grant_id)
    return _render(request, "sharing_stop.html", user, grant=grant)


@router.post("/sharing/{grant_id}/stop")
def stop_sharing(
    grant_id: uuid.UUID, user: PageUser, db: DbSession, services: ServicesDep
) -> Response:
    grants_service.revoke_by_young_person(
        db, services.vault, user.actor, user.vault, grant_id, notifier=notifier_for(services)
    )
    return RedirectResponse("/sharing?done=stopped", status_code=303)


# -- connect with a worker ------------
@router.get("/connect")
def connect_page(
    request: Request,
    user: PageUser,
    db: DbSession,
    services: ServicesDep,
    show: Annotated[uuid.UUID | None, Query()] = None,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:
    codes = grants_service.list_codes(db, services.vault, user.vault)
    shown = next((c for c in codes if c.id == show), None)
    return _render(
        request, "connect.html", user, codes=codes, shown=shown, notice=DONE.get(done or "")
    )


@router.post("/connect")
def connect_make(user: PageUser, db: DbSession, services: ServicesDep) -> Response:
    code = grants_service.make_code(db, services.grants, services.vault, user.actor, user.vault)
    return RedirectResponse(f"/connect?show={code.id}#code", status_code=303)


@router.post("/connect/{code_id}/cancel")
def connect_cancel(
    code_id: uuid.UUID, user: PageUser, db: DbSession, services: ServicesDep
) -> Response:
    grants_service.cancel_code(db, services.vault, user.actor, user.vault, code_id)
    return RedirectResponse("/connect?done=code-stopped", status_code=303)
