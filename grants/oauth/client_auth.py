"""Who is calling: client authentication for every OAuth endpoint, throttled per client
and per address (SECURITY.md: "rate-limited per account and per address"; for an
agency's system the account is its OAuth client).

The order: a caller is refused (429, ``TooManyFailuresError``, with ``Retry-After``)
before anything else is checked if its address, or the client_id it names, has failed
too often in the window; then RFC 7523 ``private_key_jwt`` (or, where registered,
``client_secret_basic``) runs. A failure is counted against the address always, and
against the client_id when it names a registered client: a bad signature, a replayed
``jti``, a wrong ``aud`` or an expired assertion for a real client_id all count towards
that client, from whichever address they come. Credentials too malformed to name a
client count against the address alone. The counters are the sign-in throttle's
(``app.auth.service``), under keys of their own, so a school's misconfigured client
never locks its pupils out of signing in from the same network.

The trade-off. A per-client limit lets anyone who knows a client_id spend that client's
failures and lock it out. So, as OWASP's Authentication Cheat Sheet ("Account Lockout")
advises, the lockout is bounded: the client limit (``oauth_max_failures_per_client``,
100) is ten times the address limit (``oauth_max_failures_per_address``, 10), so it
takes that many addresses in each window; it needs a registered client_id (96 random
bits), since a made-up one gets no counter; and it is a fixed window
(``login_window_minutes``), so it ends by itself, at most one window after the last
attack. Successful calls are neither counted nor reset anything: a success writes
nothing here.

Not counted: an unknown or another client's ``auth_req_id`` and an unknown refresh
token. Only a client that has just proven itself can present them, and they are 256
random bits (``secrets.token_urlsafe(32)``), so no number of guesses finds one; counting
them would add no protection, but would let a genuine client with a bug (retrying an
old refresh token) lock its own introspection out, which its resource servers need.

The registered client, the caller's two counters and, for introspection, the presented
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
from grants.oauth.errors import InvalidClientError, TooManyFailuresError
from grants.oauth.rfc7523 import AuthenticatedClient
from vault.errors import RateLimited


def address_counter(settings: Settings, address: str) -> tuple[str, int]:
    """The failure counter of agency systems calling from ``address`` (its /64 for IPv6,
    ``people.address_bucket``), and its limit."""
    bucket = people.address_bucket(address)
    key = people.throttle_key(settings, "throttle-address", f"oauth-client:{bucket}")
    return key, settings.oauth_max_failures_per_address


def client_counter(settings: Settings, client_id: str) -> tuple[str, int]:
    """The failure counter of the client ``client_id``, whatever address calls."""
    key = people.throttle_key(settings, "throttle-client", client_id)
    return key, settings.oauth_max_failures_per_client


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

    TooManyFailuresError if the address or the client is throttled; InvalidClientError
    if authentication fails, with the failure counted in this same transaction and kept
    even though the call fails (``keeps_changes``), like a ``jti`` used by a call that
    then fails."""
    by_address = address_counter(settings, address)
    try:
        presented = rfc7523.presented_client(form, authorization)
    except InvalidClientError as exc:
        try:
            people.check_counters(session, settings, [by_address])  # 429 first, as for any call
        except RateLimited as throttled:
            raise TooManyFailuresError(throttled.retry_after) from None
        _count(session, settings, [by_address[0]], exc)
        raise
    counters = [client_counter(settings, presented.client_id), by_address]
    keys = [key for key, _limit in counters]  # client, then address: the locking order
    row = repo.client_call_row(session, presented.client_id, keys, token_hash)
    try:
        people.refuse_if_throttled(settings, counters, repo.throttle_counts_of(row, keys))
    except RateLimited as exc:
        raise TooManyFailuresError(exc.retry_after) from None
    try:
        return rfc7523.verify(session, config, presented, row, endpoint_url), row
    except InvalidClientError as exc:
        registered = row is not None and row.client_id is not None
        _count(session, settings, keys if registered else [by_address[0]], exc)
        raise


def _count(session: Session, settings: Settings, keys: list[str], exc: InvalidClientError) -> None:
    people.count_failure(session, settings, keys)
    exc.keeps_changes = True
