"""Every query of the grants domain."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from grants.models import (
    AccessRequest,
    Agency,
    ConnectionCode,
    Grant,
    OAuthClient,
    OAuthToken,
    PairwiseHandle,
    UsedAssertion,
)
from vault.db_types import utcnow


# -- agencies and clients -----------------------------------------------------------------
def get_agency(session: Session, agency_id: uuid.UUID) -> Agency | None:
    return session.get(Agency, agency_id)


def get_agency_by_name(session: Session, name: str) -> Agency | None:
    return session.exec(select(Agency).where(Agency.name == name)).first()


def get_client(session: Session, client_id: str) -> OAuthClient | None:
    return session.exec(select(OAuthClient).where(OAuthClient.client_id == client_id)).first()


def forget_expired_assertions(session: Session, client_id: str) -> None:
    session.exec(
        delete(UsedAssertion).where(
            col(UsedAssertion.client_id) == client_id, col(UsedAssertion.expires_at) < utcnow()
        )
    )


# -- connection codes and handles ------------------------------------------------------------
def lock_code_by_hash(session: Session, code_hash: str) -> ConnectionCode | None:
    return session.exec(
        select(ConnectionCode).where(ConnectionCode.code_hash == code_hash).with_for_update()
    ).first()


def codes_of_vault(
    session: Session, vault_id: uuid.UUID, now: datetime
) -> Sequence[ConnectionCode]:
    return session.exec(
        select(ConnectionCode)
        .where(
            ConnectionCode.vault_id == vault_id,
            col(ConnectionCode.used_at).is_(None),
            col(ConnectionCode.cancelled_at).is_(None),
            ConnectionCode.expires_at > now,
        )
        .order_by(col(ConnectionCode.created_at).desc())
    ).all()


def get_code(session: Session, vault_id: uuid.UUID, code_id: uuid.UUID) -> ConnectionCode | None:
    return session.exec(
        select(ConnectionCode).where(
            ConnectionCode.vault_id == vault_id, ConnectionCode.id == code_id
        )
    ).first()


def handle_for(
    session: Session, agency_id: uuid.UUID, vault_id: uuid.UUID
) -> PairwiseHandle | None:
    return session.exec(
        select(PairwiseHandle).where(
            PairwiseHandle.agency_id == agency_id, PairwiseHandle.vault_id == vault_id
        )
    ).first()


def get_handle(session: Session, handle: str, agency_id: uuid.UUID) -> PairwiseHandle | None:
    """A handle only resolves for the agency it was made for."""
    return session.exec(
        select(PairwiseHandle).where(
            PairwiseHandle.handle == handle, PairwiseHandle.agency_id == agency_id
        )
    ).first()


# -- requests --------------------------------------------------------------------------------
def lock_request_by_auth_hash(session: Session, auth_req_hash: str) -> AccessRequest | None:
    return session.exec(
        select(AccessRequest).where(AccessRequest.auth_req_hash == auth_req_hash).with_for_update()
    ).first()


def requests_of_vault(session: Session, vault_id: uuid.UUID) -> Sequence[AccessRequest]:
    return session.exec(
        select(AccessRequest)
        .where(AccessRequest.vault_id == vault_id)
        .order_by(col(AccessRequest.created_at).desc())
        .limit(200)
    ).all()


def lock_request(
    session: Session, vault_id: uuid.UUID, request_id: uuid.UUID
) -> AccessRequest | None:
    return session.exec(
        select(AccessRequest)
        .where(AccessRequest.vault_id == vault_id, AccessRequest.id == request_id)
        .with_for_update()
    ).first()


# -- grants and tokens -------------------------------------------------------------------------
def grants_of_vault(session: Session, vault_id: uuid.UUID) -> Sequence[Grant]:
    return session.exec(
        select(Grant).where(Grant.vault_id == vault_id).order_by(col(Grant.created_at).desc())
    ).all()


def lock_grant(session: Session, grant_id: uuid.UUID) -> Grant | None:
    return session.exec(select(Grant).where(Grant.id == grant_id).with_for_update()).first()


def grant_for_request(session: Session, request_id: uuid.UUID) -> Grant | None:
    return session.exec(select(Grant).where(Grant.request_id == request_id)).first()


def lock_token_by_hash(session: Session, token_hash: str) -> OAuthToken | None:
    return session.exec(
        select(OAuthToken).where(OAuthToken.token_hash == token_hash).with_for_update()
    ).first()


def token_with_grant(session: Session, token_hash: str) -> tuple[OAuthToken, Grant] | None:
    row = session.exec(
        select(OAuthToken, Grant)
        .join(Grant, col(Grant.id) == col(OAuthToken.grant_id))
        .where(OAuthToken.token_hash == token_hash)
    ).first()
    return (row[0], row[1]) if row else None


def revoke_tokens_of_grant(session: Session, grant_id: uuid.UUID, now: datetime) -> None:
    session.exec(
        update(OAuthToken)
        .where(col(OAuthToken.grant_id) == grant_id, col(OAuthToken.revoked_at).is_(None))
        .values(revoked_at=now)
    )


def revoke_token_family(session: Session, family_id: uuid.UUID, now: datetime) -> None:
    session.exec(
        update(OAuthToken)
        .where(col(OAuthToken.family_id) == family_id, col(OAuthToken.revoked_at).is_(None))
        .values(revoked_at=now)
    )
