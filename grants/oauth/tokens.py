"""Issuing opaque tokens (RFC 6749 section 5.1), stored only as keyed hashes.

Access tokens carry 256 bits of entropy and a readable prefix (``skat_``; refresh tokens
``skrt_``), live at most ``access_token_seconds`` (10 minutes) and never past the grant.
A refresh token lives exactly as long as its grant.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from typing import Any

from sqlmodel import Session

from grants import repository as repo
from grants.config import GrantsConfig
from grants.emergency import EMERGENCY_PURPOSE, EMERGENCY_TYPE
from grants.models import Grant, OAuthToken
from grants.oauth.rfc9396 import RECORDS_TYPE
from vault.db_types import utcnow

ACCESS_PREFIX = "skat_"
REFRESH_PREFIX = "skrt_"


def hash_token(config: GrantsConfig, token: str) -> str:
    return config.hash("oauth-token", token)


def granted_details(grant: Any) -> list[dict[str, Any]]:
    """What was actually granted, in the same RFC 9396 shape as the request. Takes a
    Grant or any row with its actions, categories, purpose, expires_at and record_ids."""
    if grant.purpose == EMERGENCY_PURPOSE:  # answered in the type that was asked for
        return [
            {
                "type": EMERGENCY_TYPE,
                "actions": grant.actions,
                "categories": grant.categories,
                "expires_at": grant.expires_at.isoformat(),
            }
        ]
    item: dict[str, Any] = {
        "type": RECORDS_TYPE,
        "actions": grant.actions,
        "categories": grant.categories,
        "purpose": grant.purpose,
        "expires_at": grant.expires_at.isoformat(),
    }
    if grant.record_ids:
        item["record_ids"] = grant.record_ids
    return [item]


def issue(
    session: Session, config: GrantsConfig, grant: Grant, family_id: uuid.UUID
) -> dict[str, Any]:
    now = utcnow()
    access_expires = min(now + timedelta(seconds=config.access_token_seconds), grant.expires_at)
    access = ACCESS_PREFIX + secrets.token_urlsafe(32)
    refresh = REFRESH_PREFIX + secrets.token_urlsafe(32)
    session.add_all(
        [
            OAuthToken(
                token_hash=hash_token(config, value),
                kind=kind,
                expires_at=expires,
                issued_at=now,
                grant_id=grant.id,
                client_id=grant.client_id,
                family_id=family_id,
            )
            for value, kind, expires in (
                (access, "access", access_expires),
                (refresh, "refresh", grant.expires_at),
            )
        ]
    )
    session.flush()
    handle = repo.handle_for(session, grant.agency_id, grant.vault_id)
    return {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": max(1, int((access_expires - now).total_seconds())),
        "refresh_token": refresh,
        "authorization_details": granted_details(grant),
        "grant_id": grant.id.hex,
        "vault_handle": handle.handle if handle else None,
    }
