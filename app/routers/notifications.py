"""A young person's notification choices: the page ``/account/notifications`` and the JSON
``/api/v1/me/notifications``. Both call grants/notify/preferences.py; the address is
never shown back in full."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from app.deps import ApiUser, DbSession, PageUser, ServicesDep, SignedInPerson
from grants.notify import preferences
from grants.notify.preferences import NotificationSettingsPublic, NotificationSettingsUpdate
from vault.errors import InvalidInput

api = APIRouter(prefix="/api/v1/me", tags=["young person"])
pages = APIRouter(include_in_schema=False)

# Fixed messages after a change, picked by key (?done=...), so no input is reflected.
DONE = {
    "saved": "We saved your choices.",
    "removed": "We took your email away. We will not send you emails now.",
}


def _render(
    request: Request, user: SignedInPerson, current: NotificationSettingsPublic,
    status_code: int = 200, **ctx: Any,
) -> HTMLResponse:  # fmt: skip
    context: dict[str, Any] = {"user": user.person, "csrf_token": user.csrf_token,
                               "current": current}  # fmt: skip
    context.update(ctx)
    response: HTMLResponse = request.app.state.templates.TemplateResponse(
        request, "notifications.html", context, status_code=status_code
    )
    return response


# -- JSON ------------
@api.get("/notifications")
def get_notifications(
    user: ApiUser, db: DbSession, services: ServicesDep
) -> NotificationSettingsPublic:
    """Your choices. The email address comes back masked, e.g. ``s***@example.org``."""
    return preferences.get_settings(db, services.grants.secret, user.person)


@api.put("/notifications")
def put_notifications(
    body: NotificationSettingsUpdate, user: ApiUser, db: DbSession, services: ServicesDep
) -> NotificationSettingsPublic:
    """Set how you hear about looks (``immediate`` or ``daily``) and, optionally, an email
    address. Leave ``email`` out to keep the one you gave; send null or "" to remove it."""
    return preferences.update_settings(
        db, services.grants.secret, services.keys, user.actor, user.person, user.vault,
        access_mode=body.access_mode, email=body.email,
        keep_email="email" not in body.model_fields_set,
    )  # fmt: skip


# -- pages ------------
@pages.get("/account/notifications")
def notifications_page(
    request: Request, user: PageUser, db: DbSession, services: ServicesDep,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:  # fmt: skip
    current = preferences.get_settings(db, services.grants.secret, user.person)
    return _render(request, user, current, notice=DONE.get(done or ""))


@pages.post("/account/notifications")
def notifications_save(
    request: Request, user: PageUser, db: DbSession, services: ServicesDep,
    access_mode: Annotated[str, Form(max_length=16)] = "",
    email: Annotated[str, Form(max_length=300)] = "",
) -> Response:  # fmt: skip
    """An empty address box keeps the address (it is never shown, so never pre-filled)."""
    try:
        preferences.update_settings(
            db, services.grants.secret, services.keys, user.actor, user.person, user.vault,
            access_mode=access_mode, email=email, keep_email=not email.strip(),
        )  # fmt: skip
    except InvalidInput as exc:  # nothing was written: checks come first
        current = preferences.get_settings(db, services.grants.secret, user.person)
        return _render(request, user, current, 422, error=exc.message)
    return RedirectResponse("/account/notifications?done=saved", status_code=303)


@pages.post("/account/notifications/email/remove")
def notifications_remove_email(user: PageUser, db: DbSession, services: ServicesDep) -> Response:
    preferences.update_settings(
        db, services.grants.secret, services.keys, user.actor, user.person, user.vault,
        access_mode=None, email=None, keep_email=False,
    )  # fmt: skip
    return RedirectResponse("/account/notifications?done=removed", status_code=303)
