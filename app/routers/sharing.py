"""The young person's side of sharing: connection codes, requests, grants."""

from __future__ import annotations

import io
import uuid

import segno
from fastapi import APIRouter, Response, status

from app.auth import service as auth
from app.deps import ApiUser, DbSession, ServicesDep
from app.jobs import notifier_for
from grants import service as grants_service
from grants.schemas import (
    ApproveBody,
    ConnectionCodePublic,
    DeclineBody,
    GrantPublic,
    RequestPublic,
)

router = APIRouter(prefix="/api/v1/me", tags=["sharing"])


@router.post("/connection-codes", status_code=status.HTTP_201_CREATED)
def make_code(user: ApiUser, db: DbSession, services: ServicesDep) -> ConnectionCodePublic:
    """A one-time code to give a worker. It works once, for 24 hours."""
    return grants_service.make_code(db, services.grants, services.vault, user.actor, user.vault)


@router.get("/connection-codes")
def list_codes(user: ApiUser, db: DbSession, services: ServicesDep) -> list[ConnectionCodePublic]:
    return grants_service.list_codes(db, services.vault, user.vault)


@router.get("/connection-codes/{code_id}/qr.svg", response_class=Response)
def code_qr(code_id: uuid.UUID, user: ApiUser, db: DbSession, services: ServicesDep) -> Response:
    """The code as a QR image (SVG), to show large on the phone."""
    code = grants_service.get_code(db, services.vault, user.vault, code_id)
    buffer = io.BytesIO()
    segno.make(code.code, error="m").save(
        buffer, kind="svg", scale=8, border=2, title="Connection code", xmldecl=False
    )
    return Response(content=buffer.getvalue(), media_type="image/svg+xml")


@router.delete("/connection-codes/{code_id}", status_code=status.HTTP_204_NO_CONTENT)
def cancel_code(code_id: uuid.UUID, user: ApiUser, db: DbSession, services: ServicesDep) -> None:
    grants_service.cancel_code(db, services.vault, user.actor, user.vault, code_id)


@router.get("/requests")
def list_requests(user: ApiUser, db: DbSession) -> list[RequestPublic]:
    return grants_service.list_requests(db, user.vault)


@router.post("/requests/{request_id}/approve")
def approve(
    request_id: uuid.UUID, body: ApproveBody, user: ApiUser, db: DbSession, services: ServicesDep
) -> GrantPublic:
    """Say yes, or yes to less. Needs a recent sign-in (step-up)."""
    auth.require_recent_sign_in(services.settings, user.web_session)
    return grants_service.approve(
        db, services.vault, user.actor, user.vault, request_id, body,
        notifier=notifier_for(services),
    )  # fmt: skip


@router.post("/requests/{request_id}/decline")
def decline(
    request_id: uuid.UUID, body: DeclineBody, user: ApiUser, db: DbSession, services: ServicesDep
) -> RequestPublic:
    return grants_service.decline(
        db, services.vault, user.actor, user.vault, request_id, body,
        notifier=notifier_for(services),
    )  # fmt: skip


@router.get("/grants")
def list_grants(user: ApiUser, db: DbSession) -> list[GrantPublic]:
    """Who can see what, why, until when, and when they last looked."""
    return grants_service.list_grants(db, user.vault)


@router.post("/grants/{grant_id}/revoke")
def revoke(grant_id: uuid.UUID, user: ApiUser, db: DbSession, services: ServicesDep) -> GrantPublic:
    """Stop sharing. The very next call from the agency fails."""
    return grants_service.revoke_by_young_person(
        db, services.vault, user.actor, user.vault, grant_id, notifier=notifier_for(services)
    )
