"""A tiny OpenID Connect provider the tests start themselves, on 127.0.0.1 over real HTTP.

Just enough of OpenID Connect Core 1.0 and Discovery 1.0 for an authorization code flow
with PKCE: a discovery document, ``/authorize`` (no login screen: it signs in the one
configured user at once and redirects back with a code), ``/token``
(``client_secret_basic``, PKCE S256 checked, one use per code) returning an RS256 ID
token, and ``/jwks``. Tests change ``user`` and ``tamper`` to make it misbehave.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = "storykeep-test-client"
CLIENT_SECRET = "idp-client-secret-for-tests"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class TestIdentityProvider:
    """The provider's state. ``user`` is who /authorize signs in; ``tamper`` overrides
    claims in the next ID tokens, or (key ``sign_with_other_key``) signs them with a key
    the JWKS does not hold."""

    __test__ = False  # not a pytest test class

    issuer: str = ""
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1"}))
    other_key: RSAKey = field(
        default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1"})
    )
    user: dict[str, Any] = field(default_factory=dict)
    tamper: dict[str, Any] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_calls: int = 0
    discovery_body: bytes | None = None  # when set, /.well-known/… answers these bytes

    def reset(self) -> None:
        self.user = {"sub": "idp-user-1", "email": "jo.bloggs@example.org", "email_verified": True}
        self.tamper = {}
        self.codes.clear()
        self.token_calls = 0
        self.discovery_body = None

    # -- endpoints ------------------------------------------------------------------------------
    async def discovery(self, _request: Request) -> Response:
        if self.discovery_body is not None:
            return Response(self.discovery_body, media_type="application/json")
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "scopes_supported": ["openid", "email"],
            }
        )

    async def jwks(self, _request: Request) -> Response:
        return JSONResponse(KeySet([self.key]).as_dict(private=False))

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if q.get("client_id") != CLIENT_ID or q.get("response_type") != "code":
            return JSONResponse({"error": "unauthorized_client"}, status_code=400)
        if (
            "openid" not in (q.get("scope") or "").split()
            or q.get("code_challenge_method") != "S256"
        ):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "redirect_uri": q["redirect_uri"],
            "nonce": q.get("nonce"),
            "challenge": q.get("code_challenge"),
            "user": dict(self.user),
        }
        return RedirectResponse(
            q["redirect_uri"] + "?" + urlencode({"code": code, "state": q.get("state", "")}),
            status_code=302,
        )

    async def token(self, request: Request) -> Response:
        self.token_calls += 1
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if not hmac.compare_digest(request.headers.get("authorization", ""), f"Basic {expected}"):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        form = await request.form()
        grant = self.codes.pop(str(form.get("code")), None)  # one use per code
        if form.get("grant_type") != "authorization_code" or grant is None:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        verifier = str(form.get("code_verifier", ""))
        digest = hashlib.sha256(verifier.encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        if not verifier or challenge != grant["challenge"]:
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, 400)
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
            **grant["user"],
        }
        tamper = dict(self.tamper)
        key = self.other_key if tamper.pop("sign_with_other_key", False) else self.key
        claims.update(tamper)
        claims = {k: v for k, v in claims.items() if v is not None}
        id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)
        return JSONResponse(
            {
                "access_token": secrets.token_urlsafe(16),
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
            },
            headers={"Cache-Control": "no-store"},
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/jwks", self.jwks),
            ]
        )


def serve() -> Iterator[TestIdentityProvider]:
    """Run the provider with uvicorn in a background thread until the generator closes."""
    port = free_port()
    idp = TestIdentityProvider(issuer=f"http://127.0.0.1:{port}")
    idp.reset()
    config = uvicorn.Config(
        idp.app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws="none"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test identity provider did not start")
        time.sleep(0.02)
    try:
        yield idp
    finally:
        server.should_exit = True
        thread.join(timeout=10)
