"""Practitioners' pages for correction requests (UK GDPR Article 16): the requests young
people made about records this practitioner's agency wrote, one request with the record
as it is now and the young person's words, and the answer (accept with the corrected
text, or decline with a reason).

The same service as the agencies' corrections API (``grants.corrections``): opening a
request is a logged read, a request about another agency's record is 404, and a request
can be answered once. Plain HTML forms, no JavaScript; every posted form carries a CSRF
token.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from app.deps import DbSession, PractitionerPage, ServicesDep, SignedInPractitioner
from app.jobs import notifier_for
from app.routers.practitioner import _render
from grants import corrections
from grants.corrections import CorrectionsDesk
from vault.errors import InvalidInput
from vault.schemas import BODY_MAX, DECLINE_REASON_MAX, TITLE_MAX

router = APIRouter(prefix="/practitioner/corrections", include_in_schema=False)
HOME = "/practitioner/corrections"
STATUS_TABS = (
    ("open", "Waiting"),
    ("accepted", "Accepted"),
    ("declined", "Declined"),
    ("all", "All"),
)
STATUS_LABELS = {"open": "Waiting for an answer", "accepted": "Accepted", "declined": "Declined"}
# Messages after an answer, picked by a fixed key (?done=...), so no text is reflected.
DONE = {
    "accepted": "You accepted the correction. The record has a new version; the old one is "
    "kept in its history. The young person has been told.",
    "declined": "You declined the correction. The young person has been told, with your reason.",
}


def practitioner_desk(user: PractitionerPage) -> CorrectionsDesk:
    p = user.practitioner
    return corrections.desk_for_practitioner(
        user.agency.id, user.agency.name, p.name, p.role, p.email
    )


Desk = Annotated[CorrectionsDesk, Depends(practitioner_desk)]


@router.get("")
def inbox_page(
    request: Request,
    user: PractitionerPage,
    desk: Desk,
    db: DbSession,
    status: Annotated[str, Query(max_length=10)] = "open",
) -> HTMLResponse:
    found = corrections.inbox(db, desk, corrections.parse_status(status))
    return _render(
        request, "practitioner/corrections.html", user, items=found, status=status,
        tabs=STATUS_TABS, status_labels=STATUS_LABELS,
    )  # fmt: skip


def _correction_page(
    request: Request,
    user: SignedInPractitioner,
    desk: CorrectionsDesk,
    db: DbSession,
    services: ServicesDep,
    correction_id: uuid.UUID,
    status_code: int = 200,
    **ctx: object,
) -> HTMLResponse:
    view = corrections.open_correction(db, services.vault, desk, correction_id)
    ctx.setdefault("error", None)
    ctx.setdefault("title", view.record.title)
    ctx.setdefault("body", view.record.body)
    ctx.setdefault("reason", "")
    return _render(
        request, "practitioner/correction.html", user, status_code, view=view,
        status_labels=STATUS_LABELS, title_max=TITLE_MAX, body_max=BODY_MAX,
        reason_max=DECLINE_REASON_MAX, **ctx,
    )  # fmt: skip


@router.get("/{correction_id}")
def correction_page(
    request: Request,
    correction_id: uuid.UUID,
    user: PractitionerPage,
    desk: Desk,
    db: DbSession,
    services: ServicesDep,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:
    return _correction_page(
        request, user, desk, db, services, correction_id, notice=DONE.get(done or "")
    )


@router.post("/{correction_id}/accept")
def accept(
    request: Request,
    correction_id: uuid.UUID,
    user: PractitionerPage,
    desk: Desk,
    db: DbSession,
    services: ServicesDep,
    title: Annotated[str, Form(max_length=TITLE_MAX)] = "",
    body: Annotated[str, Form(max_length=BODY_MAX)] = "",
) -> Response:
    """Accept with the corrected title and text (prefilled with the record as it is)."""
    try:
        data = corrections.accept_form(title, body)
        corrections.accept(db, services.vault, notifier_for(services), desk, correction_id, data)
    except InvalidInput as exc:
        db.rollback()  # nothing of a refused answer may stay
        return _correction_page(
            request, user, desk, db, services, correction_id, 422,
            error=exc.message, title=title, body=body,
        )  # fmt: skip
    return RedirectResponse(f"{HOME}/{correction_id}?done=accepted", status_code=303)


@router.post("/{correction_id}/decline")
def decline(
    request: Request,
    correction_id: uuid.UUID,
    user: PractitionerPage,
    desk: Desk,
    db: DbSession,
    services: ServicesDep,
    reason: Annotated[str, Form(max_length=DECLINE_REASON_MAX)] = "",
) -> Response:
    """Decline, with the reason the young person will read."""
    try:
        data = corrections.decline_form(reason)
        corrections.decline(db, services.vault, notifier_for(services), desk, correction_id, data)
    except InvalidInput as exc:
        db.rollback()
        return _correction_page(
            request, user, desk, db, services, correction_id, 422,
            error=exc.message, reason=reason,
        )  # fmt: skip
    return RedirectResponse(f"{HOME}/{correction_id}?done=declined", status_code=303)
