"""Token revocation (RFC 7009). Revoking a refresh token ends the whole grant (section
2.1: the server SHOULD also invalidate the access tokens of the same grant); revoking an
access token ends that token. Unknown or foreign tokens are answered 200 all the same
(section 2.2)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlmodel import Session

from grants import repository as repo
from grants import service as grants_service
from grants.config import GrantsConfig
from grants.oauth.ciba import practitioner_actor
from grants.oauth.rfc7523 import AuthenticatedClient
from grants.oauth.tokens import hash_token
from vault.db_types import utcnow
from vault.keys import KeyProvider


def revoke(
    session: Session, config: GrantsConfig, keys: KeyProvider, client: AuthenticatedClient,
    form: Mapping[str, str],
) -> None:  # fmt: skip
    presented = form.get("token")
    if not presented or len(presented) > 200:
        return
    row = repo.lock_token_by_hash(session, hash_token(config, presented))
    if row is None or row.client_id != client.client_id:
        return
    if row.kind == "access":
        row.revoked_at = row.revoked_at or utcnow()
        session.add(row)
        return
    grant = repo.lock_grant(session, row.grant_id)
    if grant is not None:
        actor = practitioner_actor(
            grant.practitioner, client.agency_name, grant.purpose, grant.id.hex
        )
        grants_service.revoke_grant(session, keys, actor, grant, "client")
