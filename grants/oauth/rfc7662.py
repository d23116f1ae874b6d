"""Token introspection (RFC 7662). A client sees only its own tokens (section 2.2: an
unknown or foreign token is just ``{"active": false}``), and the grant behind the token
is re-checked, so a revoked grant's tokens are inactive at once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlmodel import Session

from grants import repository as repo
from grants.config import GrantsConfig
from grants.oauth.rfc7523 import AuthenticatedClient
from grants.oauth.tokens import granted_details, hash_token
from vault.db_types import utcnow

INACTIVE = {"active": False}


def introspect(
    session: Session, config: GrantsConfig, client: AuthenticatedClient, form: Mapping[str, str]
) -> dict[str, Any]:
    presented = form.get("token")
    if not presented or len(presented) > 200:
        return INACTIVE
    found = repo.token_with_grant(session, hash_token(config, presented))
    if found is None:
        return INACTIVE
    row, grant = found
    now = utcnow()
    if row.client_id != client.client_id or not row.is_active(now) or not grant.is_active(now):
        return INACTIVE
    handle = repo.handle_for(session, grant.agency_id, grant.vault_id)
    return {
        "active": True,
        "client_id": row.client_id,
        "token_type": "Bearer" if row.kind == "access" else "refresh_token",
        "exp": int(row.expires_at.timestamp()),
        "iat": int(row.issued_at.timestamp()),
        "iss": config.issuer,
        "grant_id": grant.id.hex,
        "vault_handle": handle.handle if handle else None,
        "authorization_details": granted_details(grant),
    }
