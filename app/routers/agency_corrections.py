"""The agencies' corrections API (UK GDPR Article 16): the agency that wrote a record
reads the young person's request to correct it, then accepts or declines it.

Style: these calls are about the agency, not about one grant, so there is no bearer
token. Every call is a ``POST`` with an ``application/x-www-form-urlencoded`` body that
authenticates the agency's client exactly as the token endpoint does (RFC 7523
``private_key_jwt``: ``client_assertion_type`` and ``client_assertion``, a fresh ``jti``
each time), reads included, so the assertion never travels in a URL. Failed client
authentication gets the RFC 6749 ``invalid_client`` body (401) and is throttled per
client and per address (429, ``rate_limited``). Other errors are ``{"error", "detail"}``.

* ``POST /api/v1/agency/corrections/list``: ``status`` = open (default), accepted,
  declined or all. Metadata only.
* ``POST /api/v1/agency/corrections/{id}/read``: the record as it is now and the young
  person's words (a logged read).
* ``POST /api/v1/agency/corrections/{id}/accept``: ``title`` and/or ``body``, the
  corrected text; makes a new version of the record.
* ``POST /api/v1/agency/corrections/{id}/decline``: ``reason`` (required).

Deciding calls may name the practitioner deciding with ``practitioner`` (the same JSON
object as the backchannel request). A request about another agency's record is 404.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response

from app.deps import DbSession, ServicesDep
from app.jobs import notifier_for
from app.routers.oauth import Client, OAuthForm
from grants import corrections
from grants.corrections import CorrectionsDesk
from vault.schemas import AgencyCorrectionSummary, AgencyCorrectionView

router = APIRouter(prefix="/api/v1/agency/corrections", tags=["agencies"])


def client_desk(client: Client, form: OAuthForm) -> CorrectionsDesk:
    return corrections.desk_for_client(
        client.agency_id, client.agency_name, client.client_id, form.get("practitioner")
    )


Desk = Annotated[CorrectionsDesk, Depends(client_desk)]


@router.post("/list")
def list_corrections(
    desk: Desk, form: OAuthForm, db: DbSession, response: Response
) -> list[AgencyCorrectionSummary]:
    """Requests about records this agency wrote, oldest first."""
    response.headers["Cache-Control"] = "no-store"
    return corrections.inbox(db, desk, corrections.parse_status(form.get("status")))


@router.post("/{correction_id}/read")
def read_correction(
    correction_id: uuid.UUID, desk: Desk, db: DbSession, services: ServicesDep, response: Response
) -> AgencyCorrectionView:
    response.headers["Cache-Control"] = "no-store"
    return corrections.open_correction(db, services.vault, desk, correction_id)


@router.post("/{correction_id}/accept")
def accept_correction(
    correction_id: uuid.UUID,
    desk: Desk,
    form: OAuthForm,
    db: DbSession,
    services: ServicesDep,
    response: Response,
) -> AgencyCorrectionView:
    data = corrections.accept_form(form.get("title"), form.get("body"))
    response.headers["Cache-Control"] = "no-store"
    return corrections.accept(db, services.vault, notifier_for(services), desk, correction_id, data)


@router.post("/{correction_id}/decline")
def decline_correction(
    correction_id: uuid.UUID,
    desk: Desk,
    form: OAuthForm,
    db: DbSession,
    services: ServicesDep,
    response: Response,
) -> AgencyCorrectionView:
    data = corrections.decline_form(form.get("reason"))
    response.headers["Cache-Control"] = "no-store"
    return corrections.decline(
        db, services.vault, notifier_for(services), desk, correction_id, data
    )
