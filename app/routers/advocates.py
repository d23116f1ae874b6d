"""Advocates, from both sides (issue 4, "My advocate" and "Advocate pages").

* The young person's "My advocate" pages (``/my-advocate``) and JSON API
  (``/api/v1/me/advocate-invites``, ``/api/v1/me/advocates``): invite with a one-time
  code, see what each advocate can see, remove them.
* The advocate's own pages (``/advocate/...``), on the staff cookie: sign up with an
  invite code, sign in, and see grants, requests and who has looked for each young person
  who invited them. Never record or story content (SECURITY.md).

Routes are thin: parse, one call into ``grants.advocates``, render. Every posted form
carries a CSRF token: the session's, or before sign-in the pre-session cookie's.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse

from app.auth import service as auth
from app.auth import staff
from app.deps import (
    PRESESSION_COOKIE,
    AdvocatePage,
    ApiUser,
    AuditCursor,
    DbSession,
    FormCsrf,
    PageUser,
    ServicesDep,
    SignedInAdvocate,
    SignedInPerson,
    client_address,
)
from app.errors import CsrfFailed
from app.jobs import notifier_for
from app.routers.pages import LOCAL_TZ, When
from app.web_session import clear_staff_cookie, set_staff_cookie
from grants import advocates
from grants.advocates import (
    AdvocateInviteCreate,
    AdvocateInvitePublic,
    AdvocateLinkPublic,
)
from vault.errors import Conflict, InvalidInput, RateLimited

api = APIRouter(prefix="/api/v1/me", tags=["advocates"])
pages = APIRouter(include_in_schema=False)

# Fixed messages after a change, picked by key (?done=...), so no input is reflected.
DONE = {
    "cancelled": "That code will not work now.",
    "removed": "Your advocate is gone. They can not see your things now.",
    "stopped": "Sharing has stopped. The young person will see that you did it.",
    "added": "You can now help this young person.",
}
Done = Annotated[str | None, Query(max_length=20)]
Checkbox = Annotated[str | None, Form(pattern="^yes$")]


def _render(
    request: Request, template: str, user: SignedInPerson, status_code: int = 200, **ctx: Any
) -> HTMLResponse:
    """Young people's pages, rendered as app/routers/pages.py does."""
    context: dict[str, Any] = {"user": user.person, "csrf_token": user.csrf_token, "when": When}
    context.update(ctx)
    response: HTMLResponse = request.app.state.templates.TemplateResponse(
        request, template, context, status_code=status_code
    )
    return response


def _staff_render(
    request: Request, template: str, who: SignedInAdvocate | None, status_code: int = 200,
    **ctx: Any,
) -> HTMLResponse:  # fmt: skip
    context: dict[str, Any] = {
        "advocate": who.advocate if who else None,
        "csrf_token": who.csrf_token if who else "",
        "when": When,
    }
    context.update(ctx)
    response: HTMLResponse = request.app.state.templates.TemplateResponse(
        request, template, context, status_code=status_code
    )
    return response


def _presession_form(
    request: Request, services: ServicesDep, template: str, status_code: int = 200, **ctx: Any
) -> HTMLResponse:
    """Sign-up and sign-in forms have no session yet: their CSRF token comes from a
    short-lived pre-session cookie (the pattern in app/routers/pages.py)."""
    presession = request.cookies.get(PRESESSION_COOKIE) or auth.new_presession()
    response = _staff_render(
        request, template, None, status_code,
        form_csrf=auth.csrf_token_for_presession(services.settings, presession), **ctx,
    )  # fmt: skip
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


def _signed_in(services: ServicesDep, signed_in: staff.StaffSignedIn, target: str) -> Response:
    response = RedirectResponse(target, status_code=303)
    set_staff_cookie(response, services.settings, signed_in.token)
    response.delete_cookie(PRESESSION_COOKIE)
    return response


# == the young person's side: JSON ==============================================================
@api.post("/advocate-invites", status_code=status.HTTP_201_CREATED)
def make_invite(
    user: ApiUser, db: DbSession, services: ServicesDep, body: AdvocateInviteCreate | None = None
) -> AdvocateInvitePublic:
    """A one-time code to give an advocate. It works once, for 7 days."""
    return advocates.make_invite(
        db, services.grants, services.vault, user.actor, user.vault, body or AdvocateInviteCreate()
    )


@api.get("/advocate-invites")
def list_invites(user: ApiUser, db: DbSession, services: ServicesDep) -> list[AdvocateInvitePublic]:
    return advocates.list_invites(db, services.vault, user.vault)


@api.delete("/advocate-invites/{invite_id}", status_code=status.HTTP_204_NO_CONTENT)
def cancel_invite(
    invite_id: uuid.UUID, user: ApiUser, db: DbSession, services: ServicesDep
) -> None:
    advocates.cancel_invite(db, services.vault, user.actor, user.vault, invite_id)


@api.get("/advocates")
def list_advocates(user: ApiUser, db: DbSession) -> list[AdvocateLinkPublic]:
    """Each advocate, and in plain words exactly what they can see and do."""
    return advocates.list_links(db, user.vault)


@api.delete("/advocates/{link_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_advocate(
    link_id: uuid.UUID, user: ApiUser, db: DbSession, services: ServicesDep
) -> None:
    """Their very next page load finds nothing."""
    advocates.remove_link(db, services.vault, user.actor, user.vault, link_id)


# == the young person's side: pages =============================================================
@pages.get("/my-advocate")
def my_advocate_page(
    request: Request,
    user: PageUser,
    db: DbSession,
    services: ServicesDep,
    show: Annotated[uuid.UUID | None, Query()] = None,
    done: Done = None,
) -> HTMLResponse:
    invites = advocates.list_invites(db, services.vault, user.vault)
    return _render(
        request, "my_advocate.html", user, invites=invites,
        shown=next((i for i in invites if i.id == show), None),
        links=advocates.list_links(db, user.vault), can_see=advocates.CAN_SEE,
        notice=DONE.get(done or ""),
    )  # fmt: skip


@pages.post("/my-advocate/invites")
def my_advocate_invite(
    user: PageUser, db: DbSession, services: ServicesDep, can_stop_sharing: Checkbox = None
) -> Response:
    invite = advocates.make_invite(
        db, services.grants, services.vault, user.actor, user.vault,
        AdvocateInviteCreate(can_stop_sharing=can_stop_sharing == "yes"),
    )  # fmt: skip
    return RedirectResponse(f"/my-advocate?show={invite.id}#code", status_code=303)


@pages.post("/my-advocate/invites/{invite_id}/cancel")
def my_advocate_cancel(
    invite_id: uuid.UUID, user: PageUser, db: DbSession, services: ServicesDep
) -> Response:
    advocates.cancel_invite(db, services.vault, user.actor, user.vault, invite_id)
    return RedirectResponse("/my-advocate?done=cancelled", status_code=303)


@pages.get("/my-advocate/{link_id}/remove")
def my_advocate_remove_page(
    request: Request, link_id: uuid.UUID, user: PageUser, db: DbSession
) -> HTMLResponse:
    link = advocates.get_link(db, user.vault, link_id)
    return _render(request, "my_advocate_remove.html", user, link=link)


@pages.post("/my-advocate/{link_id}/remove")
def my_advocate_remove(
    link_id: uuid.UUID, user: PageUser, db: DbSession, services: ServicesDep
) -> Response:
    advocates.remove_link(db, services.vault, user.actor, user.vault, link_id)
    return RedirectResponse("/my-advocate?done=removed", status_code=303)


# == the advocate's side ==========================================================================
@pages.get("/advocate/signup")
def advocate_signup_page(request: Request, services: ServicesDep) -> HTMLResponse:
    return _presession_form(request, services, "advocate/signup.html", name="", email="")


@pages.post("/advocate/signup")
def advocate_signup(
    request: Request,
    db: DbSession,
    services: ServicesDep,
    form_csrf: FormCsrf,
    name: Annotated[str, Form(max_length=200)],
    email: Annotated[str, Form(max_length=300)],
    password: Annotated[str, Form(max_length=1024)],
    code: Annotated[str, Form(max_length=40)],
) -> Response:
    _check_presession(request, services, form_csrf)
    try:
        signed_in = advocates.sign_up(
            db, services.settings, services.grants, services.vault, name, email, password, code
        )
    except (InvalidInput, Conflict) as exc:
        # Checked before anything is written, so nothing was made. The form comes back
        # with what they typed (never the password). Other errors roll back as usual.
        return _presession_form(
            request, services, "advocate/signup.html", 422, error=exc.message,
            name=name[:100], email=email[:254],
        )  # fmt: skip
    return _signed_in(services, signed_in, "/advocate")


@pages.get("/advocate/signin")
def advocate_signin_page(request: Request, services: ServicesDep) -> HTMLResponse:
    return _presession_form(request, services, "advocate/signin.html", email="")


@pages.post("/advocate/signin")
def advocate_signin(
    request: Request,
    db: DbSession,
    services: ServicesDep,
    form_csrf: FormCsrf,
    email: Annotated[str, Form(max_length=300)],
    password: Annotated[str, Form(max_length=1024)],
) -> Response:
    _check_presession(request, services, form_csrf)
    try:
        signed_in = advocates.sign_in(
            db, services.settings, email, password, client_address(request)
        )
    except (staff.StaffSignInFailed, RateLimited) as exc:
        # Returned, not raised, so the failure count is committed (the throttle holds).
        return _presession_form(
            request, services, "advocate/signin.html",
            429 if isinstance(exc, RateLimited) else 401, error=exc.message, email=email[:254],
        )  # fmt: skip
    return _signed_in(services, signed_in, "/advocate")


@pages.post("/advocate/signout")
def advocate_signout(who: AdvocatePage, db: DbSession) -> Response:
    advocates.sign_out(db, who.staff_session)
    response = RedirectResponse("/advocate/signin", status_code=303)
    clear_staff_cookie(response)
    return response


@pages.get("/advocate")
def advocate_home(
    request: Request, who: AdvocatePage, db: DbSession, done: Done = None
) -> HTMLResponse:
    people = advocates.people_of(db, who.advocate)
    return _staff_render(
        request, "advocate/home.html", who, people=people, notice=DONE.get(done or "")
    )


@pages.get("/advocate/accept")
def advocate_accept_page(request: Request, who: AdvocatePage) -> HTMLResponse:
    return _staff_render(request, "advocate/accept.html", who)


@pages.post("/advocate/accept")
def advocate_accept(
    request: Request,
    who: AdvocatePage,
    db: DbSession,
    services: ServicesDep,
    code: Annotated[str, Form(max_length=40)],
) -> Response:
    try:
        advocates.accept_invite(db, services.grants, services.vault, who.advocate, code)
    except (InvalidInput, Conflict) as exc:  # checked before any write: nothing changed
        return _staff_render(request, "advocate/accept.html", who, 422, error=exc.message)
    return RedirectResponse("/advocate?done=added", status_code=303)


@pages.get("/advocate/people/{link_id}")
def advocate_person(
    request: Request,
    link_id: uuid.UUID,
    who: AdvocatePage,
    db: DbSession,
    services: ServicesDep,
    before: AuditCursor = None,
    done: Done = None,
) -> HTMLResponse:
    view = advocates.overview(db, services.vault, who.advocate, link_id, before, LOCAL_TZ)
    return _staff_render(
        request, "advocate/person.html", who, view=view, notice=DONE.get(done or "")
    )


@pages.get("/advocate/people/{link_id}/grants/{grant_id}/stop")
def advocate_stop_page(
    request: Request, link_id: uuid.UUID, grant_id: uuid.UUID, who: AdvocatePage, db: DbSession
) -> HTMLResponse:
    person, grant = advocates.grant_to_stop(db, who.advocate, link_id, grant_id)
    return _staff_render(request, "advocate/stop.html", who, person=person, grant=grant)


@pages.post("/advocate/people/{link_id}/grants/{grant_id}/stop")
def advocate_stop(
    link_id: uuid.UUID, grant_id: uuid.UUID, who: AdvocatePage, db: DbSession,
    services: ServicesDep,
) -> Response:  # fmt: skip
    advocates.stop_grant(
        db, services.vault, who.advocate, link_id, grant_id, notifier=notifier_for(services)
    )
    return RedirectResponse(f"/advocate/people/{link_id}?done=stopped", status_code=303)


router = APIRouter()
router.include_router(api)
router.include_router(pages)
