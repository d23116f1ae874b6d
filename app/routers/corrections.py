"""Asking for a record to be corrected (UK GDPR Article 16, right to rectification), for
the young person's JSON API. For now the request is recorded and shown back; routing it
to the agency that wrote the record is the safeguarding issue's work."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from app.deps import ApiUser, DbSession, ServicesDep
from vault import service
from vault.schemas import CorrectionCreate, CorrectionPublic

router = APIRouter(prefix="/api/v1/me", tags=["young person"])


@router.post("/records/{record_id}/corrections", status_code=status.HTTP_201_CREATED)
def request_correction(
    record_id: uuid.UUID,
    body: CorrectionCreate,
    user: ApiUser,
    db: DbSession,
    services: ServicesDep,
) -> CorrectionPublic:
    """Ask for a change to a record, in your own words. Stored encrypted."""
    return service.request_correction(db, services.vault, user.actor, user.vault, record_id, body)


@router.get("/records/{record_id}/corrections")
def list_corrections(
    record_id: uuid.UUID, user: ApiUser, db: DbSession, services: ServicesDep
) -> list[CorrectionPublic]:
    """Your requests to change this record, oldest first, with their status."""
    return service.list_corrections(db, services.vault, user.actor, user.vault, record_id)
