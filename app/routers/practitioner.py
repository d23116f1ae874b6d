"""Practitioners' pages: sign in (password and TOTP, or the agency's OpenID Connect
provider), ask a young person with their connection code, follow the request, and read
(or add to) what was granted, until the grant ends.

There is no second policy path here: requests go through ``grants.service.open_request``
and reads and writes through ``grants.access`` (``grant_access``, then the same
``list_records``/``get_record``/``write_record`` as the agencies' resource API), so every
read lands in the young person's audit log, and a revocation bites on the next page.
Plain HTML forms, no JavaScript; every posted form carries a CSRF token.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import Session

from app.auth import oidc, practitioners, staff
from app.auth import service as auth
from app.container import Services
from app.db import transaction
from app.deps import (
    PRESESSION_COOKIE,
    DbSession,
    FormCsrf,
    PractitionerPage,
    ServicesDep,
    SignedInPractitioner,
    client_address,
)
from app.errors import CsrfFailed
from app.jobs import notifier_for
from app.web_session import clear_staff_cookie, set_staff_cookie
from grants import access, emergency
from grants import repository as grants_repo
from grants import service as grants_service
from grants.access import AgencyRecordWrite, GrantEnded, PageReader
from grants.schemas import PageRequestForm
from grants.wording import PRACTITIONER_CATEGORY_LABELS, purpose_label
from vault.errors import InvalidInput, RateLimited
from vault.schemas import BODY_MAX, TITLE_MAX, is_number
from vault.vocabulary import GRANT_CATEGORIES

router = APIRouter(prefix="/practitioner", include_in_schema=False)
LOCAL_TZ = ZoneInfo("Europe/London")
HOME = "/practitioner"
SIGNIN = "/practitioner/signin"


def _when(value: datetime | None, with_time: bool = False) -> str:
    """E.g. "3 March 2026" or "3 March 2026, 10:14", on UK time."""
    if value is None:
        return ""
    local = value.astimezone(LOCAL_TZ)
    return local.strftime("%-d %B %Y, %H:%M" if with_time else "%-d %B %Y")


def _render(
    request: Request,
    name: str,
    user: SignedInPractitioner | None,
    status_code: int = 200,
    **ctx: Any,
) -> HTMLResponse:
    templates = request.app.state.templates
    context: dict[str, Any] = {
        "practitioner": user.practitioner if user else None,
        "agency": user.agency if user else None,
        "csrf_token": user.csrf_token if user else "",
        "notice": None,
        "labels": PRACTITIONER_CATEGORY_LABELS,
        "purpose_label": purpose_label,
        "when": _when,
    }
    context.update(ctx)
    response: HTMLResponse = templates.TemplateResponse(
        request, name, context, status_code=status_code
    )
    return response


def _reader(user: SignedInPractitioner) -> PageReader:
    return PageReader(
        practitioner_id=user.practitioner.id,
        agency_id=user.agency.id,
        agency_name=user.agency.name,
    )


def _stopped(request: Request, user: SignedInPractitioner) -> HTMLResponse:
    """The grant was revoked or ran out: say so, show nothing from it (403)."""
    return _render(request, "practitioner/stopped.html", user, 403)


# -- signing in and out ---------------------------------------------------------------------------
def _oidc_choices(session: Session) -> list[tuple[str, str]]:
    return [(a.id.hex, a.name) for a in grants_repo.agencies_with_oidc(session)]


def _signin_page(
    request: Request,
    services: Services,
    choices: list[tuple[str, str]],
    status_code: int = 200,
    **ctx: Any,
) -> HTMLResponse:
    """The sign-in form has no session yet, so its CSRF token comes from a short-lived
    pre-session cookie (as on the young person's sign-in page)."""
    presession = request.cookies.get(PRESESSION_COOKIE) or auth.new_presession()
    ctx.setdefault("email", "")
    ctx.setdefault("error", None)
    response = _render(
        request,
        "practitioner/signin.html",
        None,
        status_code,
        csrf_token=auth.csrf_token_for_presession(services.settings, presession),
        oidc_agencies=choices,
        **ctx,
    )
    response.set_cookie(
        PRESESSION_COOKIE, presession, max_age=3600, secure=True, httponly=True, samesite="lax"
    )
    return response


def _check_presession(request: Request, services: Services, given: str | None) -> None:
    presession = request.cookies.get(PRESESSION_COOKIE)
    if not presession or not auth.csrf_matches(
        auth.csrf_token_for_presession(services.settings, presession), given
    ):
        raise CsrfFailed()


def _signin_page_fresh(
    request: Request, services: Services, status_code: int, error: str
) -> HTMLResponse:
    """For routes without a request transaction (the OpenID Connect legs)."""
    with transaction(services.engine) as session:
        choices = _oidc_choices(session)
    return _signin_page(request, services, choices, status_code, error=error)


@router.get("/signin")
def signin_page(request: Request, db: DbSession, services: ServicesDep) -> HTMLResponse:
    return _signin_page(request, services, _oidc_choices(db))


@router.post("/signin")
def signin(
    request: Request,
    db: DbSession,
    services: ServicesDep,
    form_csrf: FormCsrf,
    # Blank fields are one more wrong answer, not a different error page.
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    code: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    _check_presession(request, services, form_csrf)
    try:
        signed_in = practitioners.sign_in(
            db, services.settings, email, password, code, client_address(request)
        )
    except (staff.StaffSignInFailed, RateLimited) as exc:
        # Re-show the form; returning (not raising) keeps the throttle count committed.
        status_code = 429 if isinstance(exc, RateLimited) else 401
        page = _signin_page(
            request, services, _oidc_choices(db), status_code, error=exc.message, email=email[:80]
        )
        if isinstance(exc, RateLimited):
            page.headers["Retry-After"] = str(exc.retry_after)
        return page
    response = RedirectResponse(HOME, status_code=303)
    set_staff_cookie(response, services.settings, signed_in.token)
    response.delete_cookie(PRESESSION_COOKIE)
    return response


@router.post("/signout")
def signout(user: PractitionerPage, db: DbSession) -> Response:
    staff.sign_out(db, user.staff_session)
    response = RedirectResponse(SIGNIN, status_code=303)
    clear_staff_cookie(response)
    return response


# -- OpenID Connect: the agency's own provider ---------------------------------------------------
# These two routes take no request transaction: they call the provider over HTTP, which
# must not happen while the database is locked (app/auth/oidc.py).
@router.get("/oidc/start")
def oidc_start(
    request: Request,
    services: ServicesDep,
    agency: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """Send the browser to the agency's provider (authorization code flow with PKCE)."""
    try:
        agency_id = uuid.UUID(hex=agency)
    except ValueError:
        return _signin_page_fresh(request, services, 422, "Choose your organisation.")
    try:
        with transaction(services.engine) as session:
            provider = oidc.provider_for(session, services.settings, agency_id)
        url, sealed_flow = oidc.begin(services.settings, provider)
    except oidc.OidcSignInFailed as exc:
        return _signin_page_fresh(request, services, 400, exc.message)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        oidc.STATE_COOKIE,
        sealed_flow,
        max_age=oidc.FLOW_SECONDS,
        path=oidc.STATE_COOKIE_PATH,
        secure=True,
        httponly=True,
        samesite="lax",  # the provider's redirect back is a top-level GET: Lax sends it
    )
    return response


def _finish_oidc(
    services: Services, cookie: str | None, params: dict[str, str]
) -> staff.StaffSignedIn:
    settings = services.settings
    flow = oidc.open_flow(settings, cookie)
    with transaction(services.engine) as session:
        provider = oidc.provider_for(session, settings, flow.agency_id)
    claims = oidc.finish(settings, provider, flow, params)
    with transaction(services.engine) as session:
        return practitioners.sign_in_with_oidc(
            session, settings, services.keys, flow.agency_id, claims
        )


@router.get("/oidc/callback")
def oidc_callback(request: Request, services: ServicesDep) -> Response:
    """The provider sends the browser back here with ``code`` and ``state``."""
    params = {k: v[:4000] for k, v in request.query_params.items()}
    try:
        signed_in = _finish_oidc(services, request.cookies.get(oidc.STATE_COOKIE), params)
    except oidc.OidcSignInFailed as exc:
        response: Response = _signin_page_fresh(request, services, 401, exc.message)
    else:
        response = RedirectResponse(HOME, status_code=303)
        set_staff_cookie(response, services.settings, signed_in.token)
    # One flow, one try: the state cookie goes either way.
    response.delete_cookie(
        oidc.STATE_COOKIE, path=oidc.STATE_COOKIE_PATH, secure=True, httponly=True
    )
    return response


# -- home, asking and following a request ---------------------------------------------------------
@router.get("")
def home(request: Request, user: PractitionerPage, db: DbSession) -> HTMLResponse:
    mine = grants_service.practitioner_home(db, user.practitioner.id, user.agency.id)
    # Independent reviewers find their emergency reviews from here (the nav link).
    reviewer = emergency.is_reviewer(db, user.practitioner.id)
    return _render(request, "practitioner/home.html", user, home=mine, is_reviewer=reviewer)


def _request_form(
    request: Request,
    user: SignedInPractitioner,
    status_code: int = 200,
    form: PageRequestForm | None = None,
    error: str | None = None,
) -> HTMLResponse:
    agency = user.agency
    return _render(
        request,
        "practitioner/request.html",
        user,
        status_code,
        form=form
        or PageRequestForm(
            connection_code="",
            purpose=agency.purposes[0] if len(agency.purposes) == 1 else "",
            days=min(30, agency.max_duration_days),
        ),
        categories=GRANT_CATEGORIES,
        purposes=agency.purposes,
        max_days=agency.max_duration_days,
        error=error,
    )


@router.get("/request")
def request_page(
    request: Request,
    user: PractitionerPage,
    db: DbSession,
    renew: Annotated[uuid.UUID | None, Query()] = None,
) -> HTMLResponse:
    """The request form; ``?renew=<request id>`` pre-fills it from that request's grant."""
    if renew is None:
        return _request_form(request, user)
    form = grants_service.renewal_form(db, user.practitioner.id, user.agency, renew)
    return _request_form(request, user, form=form)


@router.post("/request")
def send_request(
    request: Request,
    user: PractitionerPage,
    db: DbSession,
    services: ServicesDep,
    connection_code: Annotated[str, Form(max_length=100)] = "",
    categories: Annotated[list[str] | None, Form(max_length=10)] = None,
    purpose: Annotated[str, Form(max_length=64)] = "",
    days: Annotated[str, Form(max_length=6)] = "",
    write: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    form = PageRequestForm(
        connection_code=connection_code,
        categories=[c[:32] for c in categories or []],
        purpose=purpose,
        days=int(days) if is_number(days.strip()) else None,
        write=write == "yes",
    )
    p = user.practitioner
    try:
        created = grants_service.request_from_page(
            db,
            services.grants,
            services.keys,
            agency=user.agency,
            practitioner_id=p.id,
            practitioner={"name": p.name, "role": p.role, "email": p.email},
            form=form,
            notifier=notifier_for(services),
        )
    except InvalidInput as exc:
        db.rollback()  # nothing of a refused request may stay, the code above all
        return _request_form(request, user, 422, form, exc.message)
    return RedirectResponse(f"{HOME}/requests/{created.id}", status_code=303)


@router.get("/requests/{request_id}")
def request_status(
    request: Request, request_id: uuid.UUID, user: PractitionerPage, db: DbSession
) -> HTMLResponse:
    asked = grants_service.practitioner_request(
        db, user.practitioner.id, user.agency.id, request_id
    )
    return _render(request, "practitioner/request_status.html", user, asked=asked)


# -- what was granted ----------------------------------------------------------------------------
@router.get("/grants/{grant_id}")
def grant_page(
    request: Request,
    grant_id: uuid.UUID,
    user: PractitionerPage,
    db: DbSession,
    services: ServicesDep,
) -> HTMLResponse:
    try:
        page = access.practitioner_grant_page(
            db, services.vault, _reader(user), grant_id, notifier_for(services)
        )
    except GrantEnded:
        return _stopped(request, user)
    return _render(request, "practitioner/grant.html", user, page=page)


@router.get("/grants/{grant_id}/records/{record_id}")
def record_page(
    request: Request,
    grant_id: uuid.UUID,
    record_id: uuid.UUID,
    user: PractitionerPage,
    db: DbSession,
    services: ServicesDep,
    added: Annotated[int, Query()] = 0,
) -> HTMLResponse:
    try:
        page = access.practitioner_record_page(
            db, services.vault, _reader(user), grant_id, record_id, notifier_for(services)
        )
    except GrantEnded:
        return _stopped(request, user)
    notice = "The record was added. The young person can see it now." if added else None
    return _render(request, "practitioner/record.html", user, page=page, notice=notice)


@router.post("/grants/{grant_id}/records")
def add_record(
    request: Request,
    grant_id: uuid.UUID,
    user: PractitionerPage,
    db: DbSession,
    services: ServicesDep,
    category: Annotated[str, Form(max_length=32)],
    title: Annotated[str, Form(min_length=1, max_length=TITLE_MAX)],
    body: Annotated[str, Form(min_length=1, max_length=BODY_MAX)],
) -> Response:
    """Add a record, when the grant includes ``write``. Who wrote it comes from the
    grant (agency, name, role), never from the form."""
    data = AgencyRecordWrite(category=category, title=title, body=body)
    try:
        record = access.practitioner_write_record(db, services.vault, _reader(user), grant_id, data)
    except GrantEnded:  # refused before anything was written; the refusal's entry stays
        return _stopped(request, user)
    return RedirectResponse(
        f"{HOME}/grants/{grant_id}/records/{record.id}?added=1", status_code=303
    )
