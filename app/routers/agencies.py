"""The agencies' resource API: bearer tokens (RFC 6750), checked against the grant on
every call. ``handle`` is the agency's pairwise handle for the young person.

These are the busiest routes, so each is ``async`` and hands its whole database work
(token and grant check, the read or write, the audit append) to the group committer as
one job (app/group_commit.py): no trips through the thread pool, and one durable commit
for all the requests that arrived together. The job is still one call into ``grants``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status
from pydantic import TypeAdapter
from sqlmodel import Session

from app.container import Services
from app.jobs import notifier_for
from grants import access
from grants.access import AgencyAccess
from vault.schemas import EntryPublic, RecordPublic

router = APIRouter(prefix="/api/v1/vaults/{handle}", tags=["agencies"])
Handle = Annotated[str, Path(max_length=64)]
Work = Callable[[Session, Services, AgencyAccess], bytes]
_RECORDS = TypeAdapter(list[RecordPublic])
_ENTRIES = TypeAdapter(list[EntryPublic])


async def _answer(
    request: Request, handle: str, work: Work, status_code: int = 200, notify: bool = True,
    record_id: uuid.UUID | None = None,
) -> Response:  # fmt: skip
    """Authorize the bearer token against the grant, then ``work``: one job, one batch.
    ``record_id``: the one record ``work`` reads, fetched with the token check."""
    services: Services = request.app.state.services
    authorization = request.headers.get("authorization")
    notifier = notifier_for(services) if notify else None

    def job(db: Session) -> bytes:
        grant = access.authorize(
            db, services.grants, services.keys, authorization, handle, notifier, record_id
        )
        body = work(db, services, grant)
        access.used(db, grant)  # once the work is done: a refused call is not a use
        return body

    body = await services.committer.run(job, key=handle)
    return Response(body, status_code=status_code, media_type="application/json")


def _json(model: RecordPublic) -> bytes:
    return model.model_dump_json().encode()


@router.get("/records", response_model=list[RecordPublic])
async def list_records(request: Request, handle: Handle, category: str | None = None) -> Response:
    def work(db: Session, services: Services, grant: AgencyAccess) -> bytes:
        return _RECORDS.dump_json(access.list_records(db, services.vault, grant, category))

    return await _answer(request, handle, work)


@router.get("/records/{record_id}", response_model=RecordPublic)
async def get_record(request: Request, handle: Handle, record_id: uuid.UUID) -> Response:
    def work(db: Session, services: Services, grant: AgencyAccess) -> bytes:
        return _json(access.get_record(db, services.vault, grant, record_id))

    return await _answer(request, handle, work, record_id=record_id)


@router.get("/story", response_model=list[EntryPublic])
async def story(request: Request, handle: Handle) -> Response:
    def work(db: Session, services: Services, grant: AgencyAccess) -> bytes:
        return _ENTRIES.dump_json(access.list_story(db, services.vault, grant))

    return await _answer(request, handle, work)


@router.post("/records", status_code=status.HTTP_201_CREATED, response_model=RecordPublic)
async def write_record(
    request: Request, handle: Handle, body: access.AgencyRecordWrite
) -> Response:
    data = body.to_create()

    def work(db: Session, services: Services, grant: AgencyAccess) -> bytes:
        return _json(access.write_record(db, services.vault, grant, data))

    return await _answer(request, handle, work, status.HTTP_201_CREATED, notify=False)
