"""Corrections, the young person's side (UK GDPR Article 16, right to rectification):
ask for a record to be corrected, see the agency's answer, add a statement that goes
with the record wherever it is shared, and read the record's earlier versions.

``router`` is the JSON API (``/api/v1/me``, cookie session and X-CSRF-Token header);
``pages`` adds the statement form and the history page to the record page (plain HTML,
no JavaScript, a CSRF token in every form). The agency answers through
``app/routers/agency_corrections.py`` and the practitioner pages.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from app.deps import ApiUser, DbSession, PageUser, ServicesDep
from app.routers.pages import _render
from vault import service
from vault.errors import InvalidInput
from vault.schemas import (
    BODY_MAX,
    CorrectionCreate,
    CorrectionPublic,
    RecordHistory,
    StatementCreate,
)

router = APIRouter(prefix="/api/v1/me", tags=["young person"])
pages = APIRouter(include_in_schema=False)


@router.post("/records/{record_id}/corrections", status_code=status.HTTP_201_CREATED)
def request_correction(
    record_id: uuid.UUID,
    body: CorrectionCreate,
    user: ApiUser,
    db: DbSession,
    services: ServicesDep,
) -> CorrectionPublic:
    """Ask for a change to a record, in your own words. Stored encrypted; the agency
    that wrote the record sees it and answers."""
    return service.request_correction(db, services.vault, user.actor, user.vault, record_id, body)


@router.get("/records/{record_id}/corrections")
def list_corrections(
    record_id: uuid.UUID, user: ApiUser, db: DbSession, services: ServicesDep
) -> list[CorrectionPublic]:
    """Your requests to change this record, oldest first, with the agency's answer (and
    its reason, when it said no) and your statement."""
    return service.list_corrections(db, services.vault, user.actor, user.vault, record_id)


@router.put("/records/{record_id}/corrections/{correction_id}/statement")
def put_statement(
    record_id: uuid.UUID,
    correction_id: uuid.UUID,
    body: StatementCreate,
    user: ApiUser,
    db: DbSession,
    services: ServicesDep,
) -> CorrectionPublic:
    """Your own words about the record, once the agency has answered. They go with the
    record whenever it is shared (UK GDPR Art. 16, "supplementary statement"). Sending
    them again replaces them."""
    return service.add_statement(
        db, services.vault, user.actor, user.vault, record_id, correction_id, body
    )


@router.get("/records/{record_id}/history")
def record_history(
    record_id: uuid.UUID, user: ApiUser, db: DbSession, services: ServicesDep
) -> RecordHistory:
    """Every version of the record, newest first: the one in use now, then the ones
    accepted corrections replaced."""
    return service.record_history(db, services.vault, user.actor, user.vault, record_id)


# -- pages ---------------------------------------------------------------------------------
@pages.post("/records/{record_id}/corrections/{correction_id}/statement")
def statement_form(
    record_id: uuid.UUID,
    correction_id: uuid.UUID,
    user: PageUser,
    db: DbSession,
    services: ServicesDep,
    body: Annotated[str, Form(max_length=BODY_MAX)] = "",
) -> Response:
    try:
        data = StatementCreate(body=body)
    except ValidationError:
        raise InvalidInput("Please write something first.") from None
    service.add_statement(
        db, services.vault, user.actor, user.vault, record_id, correction_id, data
    )
    return RedirectResponse(f"/records/{record_id}#answer-{correction_id}", status_code=303)


@pages.get("/records/{record_id}/history")
def history_page(
    request: Request, record_id: uuid.UUID, user: PageUser, db: DbSession, services: ServicesDep
) -> HTMLResponse:
    history = service.record_history(db, services.vault, user.actor, user.vault, record_id)
    return _render(request, "record_history.html", user, history=history)
