"""Practitioners signing in with their agency's OpenID Connect provider: Storykeep is the
relying party (OpenID Connect Core 1.0, section 3.1, the authorization code flow).

* Discovery (OpenID Connect Discovery 1.0, section 4): the provider's metadata is read
  from ``<issuer>/.well-known/openid-configuration``, and its ``issuer`` must be exactly
  the one the operator configured (section 4.3).
* The authorization request carries ``state`` (RFC 6749 section 10.12, against CSRF on
  the callback), ``nonce`` (Core section 3.1.2.1, against ID token replay) and a PKCE
  S256 challenge (RFC 7636; RFC 9700 section 2.1.1 asks for PKCE even for confidential
  clients). The three secrets live only in a short-lived, HttpOnly, Secure cookie,
  sealed (AES-GCM) with a key derived from the app secret, so nothing is stored
  server-side and a tampered cookie fails to open.
* The code is exchanged at the token endpoint with ``client_secret_basic`` (Core section
  9), through authlib's httpx client.
* The ID token is checked as Core section 3.1.3.7 says: signature against the provider's
  JWKS (asymmetric algorithms only, never ``none`` or HMAC), ``iss``, ``aud`` (and
  ``azp`` when there are several audiences), ``exp``, ``iat`` and ``nonce``.

Transport: every provider URL must be https. authlib's own check lets plain http through
for loopback addresses in any environment (RFC 8252 section 7.3, meant for native
apps); we are stricter and allow ``http://127.0.0.1`` or ``http://localhost`` only
outside production, because the tests' identity provider (and a developer's local one)
runs on this machine without TLS. In production, https only.

No HTTP call here runs inside a database transaction: on SQLite every transaction holds
the write lock, and a slow provider must not hold up everyone else.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.integrations.httpx_client import OAuth2Client, OAuthError
from cryptography.exceptions import InvalidTag
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlmodel import Session

from app.auth import staff
from app.settings import Environment, Settings
from grants import repository as grants_repo
from vault.errors import AuthenticationFailed
from vault.schemas import parse_json

STATE_COOKIE = "storykeep_oidc"
STATE_COOKIE_PATH = "/practitioner/oidc"
CALLBACK_PATH = "/practitioner/oidc/callback"
STATE_PURPOSE = "oidc-state"
SECRET_PURPOSE = "oidc-client-secret"  # noqa: S105 - an HKDF label, not a secret
FLOW_SECONDS = 600  # the whole round trip through the provider must finish in 10 minutes
HTTP_TIMEOUT_SECONDS = 10.0
MAX_DOCUMENT_BYTES = 256 * 1024
CLOCK_LEEWAY_SECONDS = 120
SCOPE = "openid email"
# Core section 3.1.3.7: RS256 is the default; other asymmetric ones are fine. Never none or HS*.
ID_TOKEN_ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

try:  # authlib's httpx client runs on httpx2 when it is installed, else on httpx
    import httpx2

    _HTTP_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, httpx2.HTTPError)
except ImportError:  # pragma: no cover - depends on the environment
    _HTTP_ERRORS = (httpx.HTTPError,)


class OidcSignInFailed(AuthenticationFailed):
    """Signing in through the agency's provider did not work. Nothing was signed in."""

    message = (
        "We could not sign you in with your organisation. Please try again, or sign in "
        "with your password and code."
    )


EXPIRED = "This sign-in ran out or did not start here. Please start again."
UNREACHABLE = (
    "We could not reach your organisation's sign-in service. Please try again later, or "
    "sign in with your password and code."
)
NOT_CHECKED = (
    "Your organisation's answer could not be checked, so you are not signed in. Please try "
    "again. If it keeps happening, tell the people who run Storykeep."
)


@dataclass(frozen=True)
class Provider:
    """An agency's provider as the operator configured it (``storykeep agency oidc``)."""

    agency_id: uuid.UUID
    issuer: str
    client_id: str
    client_secret: str

    def __repr__(self) -> str:
        return f"Provider(issuer={self.issuer!r}, client_id={self.client_id!r}, secret=<hidden>)"


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


@dataclass(frozen=True)
class Flow:
    """What the callback must match: sealed in the browser's cookie between the two legs."""

    agency_id: uuid.UUID
    state: str
    nonce: str
    code_verifier: str
    started_at: int

    def __repr__(self) -> str:
        return f"Flow(agency_id={self.agency_id}, secrets=<hidden>)"


def url_allowed(settings: Settings, url: str) -> bool:
    """https always; http only to this machine, and never in production (see above)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if not parts.hostname or parts.username or parts.password or parts.fragment:
        return False
    if parts.scheme == "https":
        return True
    return (
        parts.scheme == "http"
        and parts.hostname in LOOPBACK_HOSTS
        and settings.environment is not Environment.production
    )


def redirect_uri(settings: Settings) -> str:
    """Built from the configured public address, never from the request's Host header."""
    return settings.issuer.rstrip("/") + CALLBACK_PATH


def provider_for(session: Session, settings: Settings, agency_id: uuid.UUID) -> Provider:
    config = grants_repo.get_agency_oidc(session, agency_id)
    if config is None:
        raise OidcSignInFailed(
            "Your organisation does not have a sign-in service set up here. Please sign in "
            "with your password and code."
        )
    return Provider(
        agency_id=agency_id,
        issuer=config.issuer,
        client_id=config.client_id,
        client_secret=staff.open_secret(settings, SECRET_PURPOSE, config.client_secret_sealed),
    )


def _get_json(settings: Settings, url: str) -> dict[str, Any]:
    if not url_allowed(settings, url):
        raise OidcSignInFailed(UNREACHABLE)
    try:
        response = httpx.get(url, timeout=HTTP_TIMEOUT_SECONDS, follow_redirects=False)
    except httpx.HTTPError:
        raise OidcSignInFailed(UNREACHABLE) from None
    if response.status_code != 200 or len(response.content) > MAX_DOCUMENT_BYTES:
        raise OidcSignInFailed(UNREACHABLE)
    try:
        doc = parse_json(response.content)
    except ValueError:
        raise OidcSignInFailed(UNREACHABLE) from None
    if not isinstance(doc, dict):
        raise OidcSignInFailed(UNREACHABLE)
    return doc


def discover(settings: Settings, issuer: str) -> ProviderMetadata:
    """OpenID Connect Discovery 1.0, sections 4 and 4.3."""
    doc = _get_json(settings, issuer.rstrip("/") + "/.well-known/openid-configuration")
    if doc.get("issuer") != issuer:
        raise OidcSignInFailed(UNREACHABLE)  # section 4.3: MUST be identical
    endpoints = {}
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        value = doc.get(name)
        if not isinstance(value, str) or not url_allowed(settings, value):
            raise OidcSignInFailed(UNREACHABLE)
        endpoints[name] = value
    return ProviderMetadata(issuer=issuer, **endpoints)


def _client(settings: Settings, provider: Provider, with_secret: bool) -> OAuth2Client:
    return OAuth2Client(
        client_id=provider.client_id,
        client_secret=provider.client_secret if with_secret else None,
        token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method name
        scope=SCOPE,
        redirect_uri=redirect_uri(settings),
        code_challenge_method="S256",
        timeout=HTTP_TIMEOUT_SECONDS,
        follow_redirects=False,
    )


def begin(settings: Settings, provider: Provider) -> tuple[str, str]:
    """The authorization request (Core section 3.1.2.1). Returns the provider URL to
    send the browser to, and the sealed flow for the state cookie."""
    metadata = discover(settings, provider.issuer)
    flow = Flow(
        agency_id=provider.agency_id,
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        code_verifier=secrets.token_urlsafe(48),  # 64 characters (RFC 7636: 43 to 128)
        started_at=int(time.time()),
    )
    with _client(settings, provider, with_secret=False) as client:
        url, _state = client.create_authorization_url(
            metadata.authorization_endpoint,
            state=flow.state,
            code_verifier=flow.code_verifier,
            nonce=flow.nonce,
        )
    return str(url), _seal_flow(settings, flow)


def _seal_flow(settings: Settings, flow: Flow) -> str:
    data = {
        "a": flow.agency_id.hex,
        "s": flow.state,
        "n": flow.nonce,
        "v": flow.code_verifier,
        "t": flow.started_at,
    }
    sealed = staff.seal_secret(settings, STATE_PURPOSE, json.dumps(data))
    return base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def open_flow(settings: Settings, cookie: str | None) -> Flow:
    """The flow from the state cookie: missing, tampered or older than FLOW_SECONDS fails."""
    if not cookie or len(cookie) > 2000:
        raise OidcSignInFailed(EXPIRED)
    try:
        sealed = base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4))
        data = json.loads(staff.open_secret(settings, STATE_PURPOSE, sealed))
        flow = Flow(
            agency_id=uuid.UUID(hex=data["a"]),
            state=str(data["s"]),
            nonce=str(data["n"]),
            code_verifier=str(data["v"]),
            started_at=int(data["t"]),
        )
    except (InvalidTag, ValueError, KeyError, TypeError):
        raise OidcSignInFailed(EXPIRED) from None
    if not 0 <= time.time() - flow.started_at <= FLOW_SECONDS:
        raise OidcSignInFailed(EXPIRED)
    return flow


def finish(
    settings: Settings, provider: Provider, flow: Flow, params: dict[str, str]
) -> dict[str, Any]:
    """The callback (Core sections 3.1.2.5 to 3.1.3.7): check state, exchange the code
    with the PKCE verifier, and return the ID token's claims once they all check out."""
    if "error" in params:
        raise OidcSignInFailed("Your organisation did not sign you in. Please try again.")
    if not hmac.compare_digest(params.get("state", "").encode(), flow.state.encode()):
        raise OidcSignInFailed(EXPIRED)
    code = params.get("code", "")
    if not 1 <= len(code) <= 2000:
        raise OidcSignInFailed(NOT_CHECKED)
    metadata = discover(settings, provider.issuer)
    try:
        with _client(settings, provider, with_secret=True) as client:
            token = client.fetch_token(
                metadata.token_endpoint,
                grant_type="authorization_code",
                code=code,
                code_verifier=flow.code_verifier,
            )
    except (OAuthError, ValueError, *_HTTP_ERRORS):
        raise OidcSignInFailed(NOT_CHECKED) from None
    id_token = token.get("id_token")
    if not isinstance(id_token, str) or len(id_token) > 16_000:
        raise OidcSignInFailed(NOT_CHECKED)
    jwks = _get_json(settings, metadata.jwks_uri)
    return check_id_token(id_token, jwks, metadata.issuer, provider.client_id, flow.nonce)


def check_id_token(
    id_token: str, jwks: dict[str, Any], issuer: str, client_id: str, nonce: str
) -> dict[str, Any]:
    """OpenID Connect Core 1.0, section 3.1.3.7 (ID token validation)."""
    try:
        keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]  # checked by joserfc
        token = jwt.decode(id_token, keys, algorithms=list(ID_TOKEN_ALGORITHMS))
        jwt.JWTClaimsRegistry(
            leeway=CLOCK_LEEWAY_SECONDS,
            iss={"essential": True, "value": issuer},
            sub={"essential": True},
            aud={"essential": True, "value": client_id},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True},
        ).validate(token.claims)
    except (JoseError, ValueError, TypeError, KeyError):
        raise OidcSignInFailed(NOT_CHECKED) from None
    claims = dict(token.claims)
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != client_id:  # steps 4 and 5
        raise OidcSignInFailed(NOT_CHECKED)
    if not isinstance(claims["nonce"], str) or not hmac.compare_digest(
        claims["nonce"].encode(), nonce.encode()
    ):
        raise OidcSignInFailed(NOT_CHECKED)
    sub = claims["sub"]
    if not isinstance(sub, str) or not 1 <= len(sub) <= 255:
        raise OidcSignInFailed(NOT_CHECKED)
    return claims
