"""Who is calling: client authentication for every OAuth endpoint, throttled per address.

The order is SECURITY.md's: a caller whose address has failed too often is refused
(429) before anything else is checked, then RFC 7523 ``private_key_jwt`` (or, where
registered, ``client_secret_basic``) runs, and each failure is counted against the
address. The counters are the sign-in throttle's (``app.auth.service``), under a key
of their own, so a school's misconfigured client never locks its pupils out of
signing in from the same network.

The registered client, the caller's counters and, for introspection, the presented
token are read in one statement (``repository.client_call_row``): introspection runs
on every request a resource server serves, and each statement is a round trip on
PostgreSQL. The token is only read there, never acted on, until the client is proven.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlmodel import Session

from app.auth import service as people
from app.settings import Settings
from grants import repository as repo
from grants.config import GrantsConfig
from grants.oauth import rfc7523
from grants.oauth.errors import InvalidClientError
from grants.oauth.rfc7523 import AuthenticatedClient


def throttle_name(address: str) -> str:
    """The counters' name for agency systems calling from ``address``."""
    return f"oauth-client:{address}"


def authenticate_call(
    session: Session,
    settings: Settings,
    config: GrantsConfig,
    form: Mapping[str, str],
    authorization: str | None,
    endpoint_url: str,
    address: str,
    token_hash: str | None = None,
) -> tuple[AuthenticatedClient, Any]:
    """The authenticated client, and the row ``repository.client_call_row`` read for it
    (with the token's columns when ``token_hash`` is given).

    RateLimited if the address is throttled; InvalidClientError if authentication
    fails, with the failure counted in this same transaction and kept even though the
    call fails (``keeps_changes``), like a ``jti`` used by a call that then fails."""
    name = throttle_name(address)
    keys = people.throttle_keys(settings, name, name)
    key_names = [key for key, _limit in keys]
    try:
        presented = rfc7523.presented_client(form, authorization)
    except InvalidClientError as exc:
        people.check_throttle(session, settings, name, name)  # 429 first, as for any call
        _count(session, settings, name, exc)
        raise
    row = repo.client_call_row(session, presented.client_id, key_names, token_hash)
    people.refuse_if_throttled(settings, keys, repo.throttle_counts_of(row, key_names))
    try:
        return rfc7523.verify(session, config, presented, row, endpoint_url), row
    except InvalidClientError as exc:
        _count(session, settings, name, exc)
        raise


def _count(session: Session, settings: Settings, name: str, exc: InvalidClientError) -> None:
    people.record_failure(session, settings, name, name)
    exc.keeps_changes = True
