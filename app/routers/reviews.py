"""Independent review of emergency (child protection) access, for reviewers the operator
registered (``storykeep reviewer add``): practitioner pages under
``/practitioner/reviews`` and JSON under ``/api/v1/reviews``.

A reviewer sees only other agencies' cases (their own agency's look absent: 404), and
anyone who is not a registered reviewer gets 403. The list carries no reasons; opening
one case shows them and is logged in the young person's audit log
(``emergency:case_read``), and a review is logged as ``emergency:reviewed``
(grants/emergency.py). Pages are plain HTML forms with a CSRF token; the JSON API uses
the same staff cookie, and its POST needs the ``X-CSRF-Token`` header (the token comes
with ``GET /api/v1/reviews``).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlmodel import Session

from app.auth import service as auth
from app.auth import staff
from app.auth.models import Practitioner
from app.deps import (
    CSRF_HEADER,
    SAFE_METHODS,
    STAFF_COOKIE,
    DbSession,
    PractitionerPage,
    ServicesDep,
    SignedInPractitioner,
)
from app.errors import CsrfFailed, NotSignedIn
from app.routers.practitioner import _render
from grants import emergency
from grants.models import Agency
from vault.actors import Actor
from vault.errors import InvalidInput

pages = APIRouter(prefix="/practitioner/reviews", include_in_schema=False)
api = APIRouter(prefix="/api/v1/reviews", tags=["emergency reviews"])
NOTES_MAX = 4000
OUTCOME_LABELS = {"justified": "Justified", "not_justified": "Not justified"}


def _actor(user: SignedInPractitioner) -> Actor:
    p = user.practitioner
    return Actor(type="practitioner", id=p.email, label=p.name, agency=user.agency.name)


def reviewer_api_user(
    request: Request, session: DbSession, services: ServicesDep
) -> SignedInPractitioner:
    """The practitioner's staff cookie, for JSON: unsafe methods need the X-CSRF-Token
    header (the pages' dependency reads a form field instead)."""
    token = request.cookies.get(STAFF_COOKIE)
    if not token:
        raise NotSignedIn()
    staff_session = staff.resolve(session, services.settings, token, "practitioner")
    csrf = staff.csrf_token(services.settings, staff_session)
    if request.method not in SAFE_METHODS and not auth.csrf_matches(
        csrf, request.headers.get(CSRF_HEADER)
    ):
        raise CsrfFailed("Missing or wrong X-CSRF-Token header.")
    practitioner = session.get(Practitioner, staff_session.account_id)
    agency = session.get(Agency, practitioner.agency_id) if practitioner else None
    if practitioner is None or agency is None or practitioner.disabled_at is not None:
        raise staff.StaffSessionExpired()
    return SignedInPractitioner(practitioner, agency, staff_session, csrf)


ReviewerApi = Annotated[SignedInPractitioner, Depends(reviewer_api_user)]


# -- pages ---------------------------------------------------------------------------------
def _case_page(
    request: Request, user: SignedInPractitioner, db: Session, services: Any,
    emergency_id: uuid.UUID, status_code: int = 200, **ctx: Any,
) -> HTMLResponse:  # fmt: skip
    case = emergency.case_for_reviewer(
        db, services.keyring, _actor(user), user.practitioner.id, user.agency.id, emergency_id
    )
    ctx.setdefault("error", None)
    ctx.setdefault("outcome", "")
    ctx.setdefault("notes", "")
    return _render(
        request, "practitioner/review.html", user, status_code, case=case, is_reviewer=True,
        reason_codes=emergency.REASON_CODES, outcomes=OUTCOME_LABELS, notes_max=NOTES_MAX,
        **ctx,
    )  # fmt: skip


@pages.get("")
def reviews_page(
    request: Request,
    user: PractitionerPage,
    db: DbSession,
    services: ServicesDep,
    done: Annotated[int, Query()] = 0,
) -> HTMLResponse:
    cases = emergency.cases_for_reviewer(db, services.keyring, user.practitioner.id, user.agency.id)
    return _render(
        request, "practitioner/reviews.html", user, cases=cases, is_reviewer=True,
        reason_codes=emergency.REASON_CODES, outcomes=OUTCOME_LABELS,
        notice="Your review was saved. Thank you." if done else None,
    )  # fmt: skip


@pages.get("/{emergency_id}")
def review_page(
    request: Request,
    emergency_id: uuid.UUID,
    user: PractitionerPage,
    db: DbSession,
    services: ServicesDep,
) -> HTMLResponse:
    return _case_page(request, user, db, services, emergency_id)


@pages.post("/{emergency_id}")
def review_submit(
    request: Request,
    emergency_id: uuid.UUID,
    user: PractitionerPage,
    db: DbSession,
    services: ServicesDep,
    outcome: Annotated[str, Form(max_length=20)] = "",
    notes: Annotated[str, Form(max_length=NOTES_MAX + 100)] = "",
) -> Response:
    try:
        emergency.review(
            db, services.keyring, _actor(user), user.practitioner.id, user.agency.id,
            emergency_id, outcome, notes,
        )  # fmt: skip
    except InvalidInput as exc:
        db.rollback()  # nothing of a refused review stays
        return _case_page(
            request, user, db, services, emergency_id, 422, error=exc.message,
            outcome=outcome, notes=notes,
        )  # fmt: skip
    return RedirectResponse("/practitioner/reviews?done=1", status_code=303)


# -- JSON ----------------------------------------------------------------------------------
class ReviewBody(BaseModel):
    outcome: str = Field(max_length=20, description="justified or not_justified")
    notes: str = Field(max_length=NOTES_MAX + 100)


@api.get("")
def list_reviews(user: ReviewerApi, db: DbSession, services: ServicesDep) -> dict[str, Any]:
    """Other agencies' emergency access, unreviewed first (no reasons: open one case to
    read them). Also the CSRF token for POST."""
    cases = emergency.cases_for_reviewer(db, services.keyring, user.practitioner.id, user.agency.id)
    return {"csrf_token": user.csrf_token, "cases": [c.as_dict() for c in cases]}


@api.get("/{emergency_id}")
def get_review(
    emergency_id: uuid.UUID, user: ReviewerApi, db: DbSession, services: ServicesDep
) -> dict[str, Any]:
    """One case with its reasons (the reading is logged for the young person)."""
    return emergency.case_for_reviewer(
        db, services.keyring, _actor(user), user.practitioner.id, user.agency.id, emergency_id
    ).as_dict()


@api.post("/{emergency_id}")
def post_review(
    emergency_id: uuid.UUID,
    body: ReviewBody,
    user: ReviewerApi,
    db: DbSession,
    services: ServicesDep,
) -> dict[str, Any]:
    """Record the review: 409 if it was already reviewed, 404 for one's own agency's."""
    return emergency.review(
        db, services.keyring, _actor(user), user.practitioner.id, user.agency.id,
        emergency_id, body.outcome, body.notes,
    ).as_dict()  # fmt: skip
