"""The token endpoint (RFC 6749 section 3.2) and the refresh_token grant (section 6),
with refresh token rotation and reuse detection (RFC 9700 section 4.14.2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlmodel import Session

from grants import repository as repo
from grants.config import GrantsConfig
from grants.oauth import ciba
from grants.oauth.errors import InvalidGrantError, InvalidRequestError, UnsupportedGrantTypeError
from grants.oauth.rfc7523 import AuthenticatedClient
from grants.oauth.tokens import REFRESH_PREFIX, hash_token, issue
from vault.db_types import utcnow

REFRESH = "refresh_token"
GRANT_TYPES = (ciba.GRANT_TYPE, REFRESH)


class RefreshReuse(InvalidGrantError):
    """A rotated refresh token came back: someone copied it. The family is revoked, and
    that revocation must commit although the request fails."""

    keeps_changes = True


def token(
    session: Session, config: GrantsConfig, client: AuthenticatedClient, form: Mapping[str, str]
) -> dict[str, Any]:
    grant_type = form.get("grant_type")
    if grant_type == ciba.GRANT_TYPE:
        return ciba.token_grant(session, config, client, form)
    if grant_type == REFRESH:
        return refresh(session, config, client, form)
    error = UnsupportedGrantTypeError(str(grant_type)[:60])
    error.description = f"grant_type must be one of {', '.join(GRANT_TYPES)}"
    raise error


def refresh(
    session: Session, config: GrantsConfig, client: AuthenticatedClient, form: Mapping[str, str]
) -> dict[str, Any]:
    """Re-checks the grant: a refresh after revocation or expiry gets invalid_grant."""
    presented = form.get("refresh_token")
    if not presented or not presented.startswith(REFRESH_PREFIX) or len(presented) > 200:
        raise InvalidRequestError(description="refresh_token is required")
    row = repo.lock_token_by_hash(session, hash_token(config, presented))
    if row is None or row.kind != "refresh" or row.client_id != client.client_id:
        raise InvalidGrantError(description="unknown refresh_token")
    now = utcnow()
    if row.rotated_at is not None:
        repo.revoke_token_family(session, row.family_id, now)
        raise RefreshReuse(description="refresh_token was already used; its tokens are revoked")
    if not row.is_active(now):
        raise InvalidGrantError(description="refresh_token has expired or been revoked")
    grant = repo.lock_grant(session, row.grant_id)
    if grant is None or not grant.is_active(now):
        raise InvalidGrantError(description="the grant has been revoked or has ended")
    row.rotated_at = now
    session.add(row)
    return issue(session, config, grant, family_id=row.family_id)
