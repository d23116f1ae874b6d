"""Token introspection (RFC 7662). A client sees only its own tokens (section 2.2: an
unknown or foreign token is just ``{"active": false}``), and the grant behind the token
is re-checked, so a revoked grant's tokens are inactive at once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from grants.config import GrantsConfig
from grants.oauth.rfc7523 import AuthenticatedClient
from grants.oauth.tokens import granted_details, hash_token
from vault.db_types import utcnow

INACTIVE = {"active": False}


def presented_token_hash(config: GrantsConfig, form: Mapping[str, str]) -> str | None:
    """The keyed hash the token is stored under, or None for no token or one too long to
    be ours (then nothing is looked up)."""
    presented = form.get("token")
    if not presented or len(presented) > 200:
        return None
    return hash_token(config, presented)


def introspect(config: GrantsConfig, client: AuthenticatedClient, row: Any) -> dict[str, Any]:
    """The answer for ``client`` about the token in ``row`` (the token, its grant and the
    agency's handle, read by ``client_auth.authenticate_call``; its token columns are
    None when no such token exists, and ``row`` is None when no token was presented)."""
    if row is None or row.token_expires_at is None:
        return INACTIVE
    now = utcnow()
    token_active = (
        row.token_revoked_at is None and row.token_rotated_at is None and now < row.token_expires_at
    )
    grant_active = row.revoked_at is None and now < row.expires_at  # as Grant.is_active
    if row.token_client_id != client.client_id or not token_active or not grant_active:
        return INACTIVE
    return {
        "active": True,
        "client_id": row.token_client_id,
        "token_type": "Bearer" if row.kind == "access" else "refresh_token",
        "exp": int(row.token_expires_at.timestamp()),
        "iat": int(row.issued_at.timestamp()),
        "iss": config.issuer,
        "grant_id": row.grant_id.hex,
        "vault_handle": row.handle,
        "authorization_details": granted_details(row),
    }
