"""The agencies' resource API: bearer tokens (RFC 6750), checked against the grant on
every call. ``handle`` is the agency's pairwise handle for the young person."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, status

from app.deps import DbSession, ServicesDep
from app.jobs import notifier_for
from grants import access
from grants.access import AgencyAccess
from vault.schemas import EntryPublic, RecordPublic

router = APIRouter(prefix="/api/v1/vaults/{handle}", tags=["agencies"])


def agency_access(
    request: Request,
    db: DbSession,
    services: ServicesDep,
    handle: Annotated[str, Path(max_length=64)],
) -> AgencyAccess:
    return access.authorize(
        db, services.grants, request.headers.get("authorization"), handle, notifier_for(services)
    )


Access = Annotated[AgencyAccess, Depends(agency_access)]


@router.get("/records")
def list_records(
    grant: Access, db: DbSession, services: ServicesDep, category: str | None = None
) -> list[RecordPublic]:
    return access.list_records(db, services.vault, grant, category)


@router.get("/records/{record_id}")
def get_record(
    record_id: uuid.UUID, grant: Access, db: DbSession, services: ServicesDep
) -> RecordPublic:
    return access.get_record(db, services.vault, grant, record_id)


@router.get("/story")
def story(grant: Access, db: DbSession, services: ServicesDep) -> list[EntryPublic]:
    return access.list_story(db, services.vault, grant)


@router.post("/records", status_code=status.HTTP_201_CREATED)
def write_record(
    body: access.AgencyRecordWrite, grant: Access, db: DbSession, services: ServicesDep
) -> RecordPublic:
    return access.write_record(db, services.vault, grant, body.to_create())
