"""Helpers for OAuth tests: an agency with a registered client, its key, and signed
client assertions (good ones, and the bad ones SECURITY.md says must be refused)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from app.container import Services
from app.db import transaction
from grants import service as grants_service
from grants.models import AccessRequest
from vault.actors import Actor

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CIBA = "urn:openid:params:grant-type:ciba"
TEACHER = {"name": "Jo Bloggs", "role": "guidance teacher", "email": "jo.bloggs@example.org"}


@dataclass
class AgencyClient:
    """An agency's system as the tests drive it, through the real HTTP endpoints."""

    http: TestClient
    issuer: str
    client_id: str
    key: ECKey
    agency: str
    used: list[str] = field(default_factory=list)

    def assertion(self, **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.issuer,
            "iat": now,
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode({"alg": "ES256", "kid": self.key.kid}, claims, self.key)

    def post(self, path: str, data: dict[str, str], assertion: str | None = None) -> Any:
        form = {
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion or self.assertion(),
            **data,
        }
        return self.http.post(path, data=form)

    def ask(
        self,
        login_hint: str,
        *,
        categories: list[str] | None = None,
        actions: list[str] | None = None,
        days: int = 30,
        purpose: str = "education_support",
        **extra: Any,
    ) -> Any:
        details = [
            {
                "type": "storykeep_records",
                "actions": actions or ["read"],
                "categories": categories or ["education"],
                "purpose": purpose,
                "duration_days": days,
                **extra,
            }
        ]
        return self.post(
            "/oauth/backchannel",
            {
                "login_hint": login_hint,
                "authorization_details": json.dumps(details),
                "practitioner": json.dumps(TEACHER),
            },
        )

    def poll(self, auth_req_id: str) -> Any:
        return self.post("/oauth/token", {"grant_type": CIBA, "auth_req_id": auth_req_id})

    def refresh(self, refresh_token: str) -> Any:
        return self.post(
            "/oauth/token", {"grant_type": "refresh_token", "refresh_token": refresh_token}
        )

    def introspect(self, token: str) -> dict[str, Any]:
        response = self.post("/oauth/introspect", {"token": token})
        assert response.status_code == 200, response.text
        return dict(response.json())

    def revoke(self, token: str) -> Any:
        return self.post("/oauth/revoke", {"token": token})


def register_agency(
    services: Services,
    name: str = "Example High School",
    purposes: tuple[str, ...] = ("education_support", "child_plan"),
    statutory: bool = False,
) -> tuple[str, ECKey]:
    """Register an agency and a private_key_jwt client. Returns (client_id, private key)."""
    key = ECKey.generate_key("P-256")
    jwks = KeySet([key]).as_dict(private=False)
    with transaction(services.engine) as session:
        agency = grants_service.add_agency(
            session, Actor.operator(), services.keys, name, list(purposes), statutory, 90
        )
        client, _secret = grants_service.add_client(
            session,
            services.grants,
            Actor.operator(),
            services.keys,
            agency.name,
            json.dumps(jwks),
            allow_secret=False,
        )
    return client.client_id, key


def agency_client(
    http: TestClient, services: Services, name: str = "Example High School", **kwargs: Any
) -> AgencyClient:
    client_id, key = register_agency(services, name, **kwargs)
    return AgencyClient(http, services.settings.issuer, client_id, key, name)


def connection_code(http: TestClient, csrf: str) -> str:
    response = http.post("/api/v1/me/connection-codes", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 201, response.text
    return str(response.json()["code"])


def decline_reason(services: Services, request_id: str) -> str | None:
    """The young person's reason, as the service opens it (the database holds it sealed)."""
    with transaction(services.engine) as session:
        request = session.get(AccessRequest, uuid.UUID(str(request_id)))
        assert request is not None
        return grants_service.decline_reason(session, services.vault, request)
