"""Client authentication with ``private_key_jwt`` (RFC 7523 section 2.2 and 3; OpenID
Connect Core section 9), hardened per RFC 9700 and FAPI 2.0:

* only asymmetric algorithms: ``alg=none`` and HMAC (HS*) are refused outright;
* ``iss`` and ``sub`` are the client_id; ``aud`` is this issuer or the endpoint's URL;
* ``exp`` is required and not passed; ``iat`` is not in the future beyond a small
  leeway; an assertion may live at most ``max_assertion_seconds``;
* each ``jti`` is remembered in the database until the assertion expires, so a replay
  fails on any worker.

``client_secret_basic`` (RFC 6749 section 2.3.1) works only for a client the operator
registered with ``--allow-secret``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlmodel import Session

from grants import repository as repo
from grants.config import GrantsConfig
from grants.oauth.errors import InvalidClientError, invalid_client
from vault.schemas import parse_json

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ACCEPTED_ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")


@dataclass(frozen=True)
class AuthenticatedClient:
    client_id: str
    agency_id: uuid.UUID
    agency_name: str


@dataclass(frozen=True)
class PresentedClient:
    """Who a call says it is, read from the request alone: the ``client_id``, and either
    the parsed (not yet verified) assertion or the Basic secret. Nothing here is trusted
    until ``verify`` has checked it against the registered client."""

    client_id: str
    compact: jws.CompactSignature | None = None
    claims: dict[str, Any] = field(default_factory=dict)
    secret: str | None = field(default=None, repr=False)


def presented_client(form: Mapping[str, str], authorization: str | None) -> PresentedClient:
    """Parse the client's credentials (InvalidClientError if they are missing or
    malformed). The caller then looks up the client named and calls ``verify``
    (``client_auth.authenticate_call`` does both, for every OAuth endpoint)."""
    if form.get("client_assertion") is not None:
        return _presented_assertion(form)
    if authorization and authorization.lower().startswith("basic "):
        return _presented_secret(authorization)
    raise invalid_client("client authentication is required (private_key_jwt)")


def verify(
    session: Session,
    config: GrantsConfig,
    presented: PresentedClient,
    client: Any,
    endpoint_url: str,
) -> AuthenticatedClient:
    """Check ``presented`` against ``client``, the registered client it names and its
    agency (a row with ``client_id`` None, or None, when there is no such client). For an
    assertion this also remembers its ``jti``, so it can never be used again."""
    if client is not None and client.client_id != presented.client_id:
        client = None  # no such client (or, defensively, a row for another one)
    if presented.compact is None:
        return _by_secret(config, presented, client)
    return _by_assertion(session, config, presented, client, endpoint_url)


# Built once: only the asymmetric algorithms, so "none" and HS* can never verify.
_REGISTRY = jws.construct_registry(list(ACCEPTED_ALGORITHMS))


def _peek(assertion: str) -> tuple[jws.CompactSignature, dict[str, Any], dict[str, Any]]:
    """Parse the compact JWS once: its header and its (not yet trusted) claims."""
    try:
        compact = jws.extract_compact(assertion.encode(), registry=_REGISTRY)
        claims = parse_json(compact.payload)
    except (JoseError, ValueError, TypeError):
        raise invalid_client("client_assertion is not a signed JWT") from None
    if not isinstance(claims, dict):
        raise invalid_client("client_assertion claims must be a JSON object")
    return compact, dict(compact.headers()), claims


def _presented_assertion(form: Mapping[str, str]) -> PresentedClient:
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise invalid_client(f"client_assertion_type must be {ASSERTION_TYPE}")
    assertion = form["client_assertion"]
    if len(assertion) > 8_000:
        raise invalid_client("client_assertion is too long")
    compact, header, claims = _peek(assertion)
    alg = header.get("alg")
    if alg not in ACCEPTED_ALGORITHMS:
        raise invalid_client(
            f"alg {alg!r} is not accepted; use one of {', '.join(ACCEPTED_ALGORITHMS)}"
        )
    client_id = claims.get("iss")
    if not isinstance(client_id, str):
        raise invalid_client("client_assertion needs iss")
    if form.get("client_id") not in (None, client_id):
        raise invalid_client("client_id does not match the assertion")
    return PresentedClient(client_id=client_id, compact=compact, claims=claims)


def _by_assertion(
    session: Session,
    config: GrantsConfig,
    presented: PresentedClient,
    client: Any,
    endpoint_url: str,
) -> AuthenticatedClient:
    if client is None or client.disabled_at is not None:
        # Every client has its JWKS: --allow-secret adds Basic, it never removes the key.
        raise invalid_client("unknown client")
    assert presented.compact is not None  # noqa: S101 - verify() sends only assertions here
    try:
        verified = jws.validate_compact(
            presented.compact, _key_set(client.jwks), registry=_REGISTRY
        )
    except (JoseError, ValueError):
        verified = False
    if not verified:
        raise invalid_client("client_assertion signature does not verify")
    # The claims parsed earlier are the signed payload: trusted from here on.
    claims, client_id = presented.claims, presented.client_id
    _check_claims(config, claims, client_id, endpoint_url)
    _remember_jti(session, client_id, claims["jti"], claims["exp"])
    return AuthenticatedClient(
        client_id=client_id, agency_id=client.agency_id, agency_name=client.agency_name
    )


@functools.lru_cache(maxsize=256)
def _key_set_of(jwks: str) -> KeySet:
    return KeySet.import_key_set(json.loads(jwks))


def _key_set(jwks: str | dict[str, Any]) -> KeySet:
    """The client's public keys, parsed once per distinct JWKS (validated when the client
    was registered). Keyed by the JWKS text itself, so a changed key set is never served
    from the cache, and a disabled client is still refused by the lookup before this."""
    return _key_set_of(jwks if isinstance(jwks, str) else json.dumps(jwks, sort_keys=True))


def _check_claims(
    config: GrantsConfig, claims: dict[str, Any], client_id: str, endpoint_url: str
) -> None:
    now = int(time.time())
    # RFC 7519 section 4.1.3: one string or an array of strings. Anything else (a number,
    # an object, an array of objects) names no audience, rather than breaking set().
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not any(isinstance(a, str) and a in (config.issuer, endpoint_url) for a in audiences):
        raise invalid_client("client_assertion aud must be this issuer or this endpoint")
    if claims.get("sub") != client_id:
        raise invalid_client("client_assertion sub must equal iss (the client_id)")
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= now:
        raise invalid_client("client_assertion has expired or has no exp")
    if exp - now > config.max_assertion_seconds:
        raise invalid_client(f"client_assertion may live at most {config.max_assertion_seconds}s")
    iat = claims.get("iat")
    if iat is not None and (
        not isinstance(iat, int) or iat > now + config.assertion_leeway_seconds
    ):
        raise invalid_client("client_assertion iat is in the future")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 1 <= len(jti) <= 200:
        raise invalid_client("client_assertion needs a jti")


def _remember_jti(session: Session, client_id: str, jti: str, exp: int) -> None:
    if secrets.randbelow(64) == 0:  # tidy the jti store now and then, not on every call
        repo.forget_expired_assertions(session)
    if not repo.remember_assertion(session, client_id, jti, datetime.fromtimestamp(exp, UTC)):
        raise invalid_client("client_assertion jti has been used before")


def _presented_secret(authorization: str) -> PresentedClient:
    try:
        decoded = base64.b64decode(authorization.split(" ", 1)[1], validate=True).decode()
        client_id, secret = decoded.split(":", 1)
    except (binascii.Error, UnicodeDecodeError, ValueError, IndexError):
        raise invalid_client("malformed Basic credentials") from None
    return PresentedClient(client_id=client_id, secret=secret)


def _by_secret(
    config: GrantsConfig, presented: PresentedClient, client: Any
) -> AuthenticatedClient:
    secret = presented.secret or ""
    if (
        client is None
        or client.disabled_at is not None
        or client.auth_method != "client_secret_basic"
        or client.secret_hash is None
        or not hmac.compare_digest(client.secret_hash, config.hash("client-secret", secret))
    ):
        raise invalid_client("client authentication failed")
    return AuthenticatedClient(
        client_id=presented.client_id, agency_id=client.agency_id, agency_name=client.agency_name
    )


__all__ = [
    "ASSERTION_TYPE",
    "AuthenticatedClient",
    "InvalidClientError",
    "PresentedClient",
    "presented_client",
    "verify",
]
