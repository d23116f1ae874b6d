"""An agency's system talks to a real `storykeep serve` over 127.0.0.1, the way one would
in production: registered by the operator's CLI, authenticating with private_key_jwt
through authlib's own httpx OAuth client, asking by CIBA poll mode; the young person
answers over plain HTTP. Tokens must die with the grant, however the grant ends."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import OAuth2Auth, OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from joserfc.jwk import ECKey, KeySet

from app.container import Services
from tests.conftest import PASSWORD, add_record, run_sql
from tests.live import signed_in_headers, start_server
from vault.db_types import utcnow

pytestmark = pytest.mark.live

AGENCY = "Example High School"
PURPOSE = "education_support"
CIBA = "urn:openid:params:grant-type:ciba"
TEACHER = {"name": "Jo Bloggs", "role": "guidance teacher", "email": "jo.bloggs@example.org"}
POLL_SECONDS = 1


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):
    """authlib's PrivateKeyJWT, signing assertions that live two minutes.

    authlib's own ``PrivateKeyJWT.sign`` has no way to pass a lifetime and signs for an
    hour; Storykeep accepts at most ten minutes (see the test that shows it refused).
    Everything else (iss, sub, aud, iat, a fresh jti per request) is authlib's."""

    def sign(self, auth: Any, token_endpoint: str) -> str:
        return str(
            private_key_jwt_sign(
                auth.client_secret,
                client_id=auth.client_id,
                token_endpoint=token_endpoint,
                alg=self.alg,
                header=dict(self.headers or {}),
                expires_in=120,
            )
        )


@dataclass
class Agency:
    """The agency's side: an authlib client plus where the live server's endpoints are."""

    oauth: OAuth2Client
    base: str
    issuer: str
    client_id: str

    def url(self, path: str) -> str:
        return self.base + path

    def auth(self, audience: str | None = None) -> Any:
        """An httpx auth that adds a freshly signed client assertion to a form POST."""
        method = ShortLivedPrivateKeyJWT(audience or self.issuer, alg="ES256")
        return self.oauth.client_auth(method)

    def ask(self, login_hint: str, categories: list[str], days: int = 30) -> Any:
        details = [
            {
                "type": "storykeep_records",
                "actions": ["read"],
                "categories": categories,
                "purpose": PURPOSE,
                "duration_days": days,
            }
        ]
        form = {
            "login_hint": login_hint,
            "authorization_details": json.dumps(details),
            "practitioner": json.dumps(TEACHER),
        }
        return self.oauth.post(self.url("/oauth/backchannel"), data=form, auth=self.auth())

    def poll(self, auth_req_id: str) -> dict[str, Any]:
        token = self.oauth.fetch_token(
            self.url("/oauth/token"), grant_type=CIBA, auth_req_id=auth_req_id, auth=self.auth()
        )
        return dict(token)

    def poll_error(self, auth_req_id: str) -> str:
        with pytest.raises(OAuthError) as failed:
            self.poll(auth_req_id)
        return str(failed.value.error)

    def refresh(self, refresh_token: str, audience: str | None = None) -> dict[str, Any]:
        token = self.oauth.refresh_token(
            self.url("/oauth/token"), refresh_token=refresh_token, auth=self.auth(audience)
        )
        return dict(token)

    def refresh_error(self, refresh_token: str) -> str:
        with pytest.raises(OAuthError) as failed:
            self.refresh(refresh_token)
        return str(failed.value.error)

    def introspect(self, token: str, hint: str) -> dict[str, Any]:
        response = self.oauth.introspect_token(
            self.url("/oauth/introspect"), token=token, token_type_hint=hint, auth=self.auth()
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def revoke(self, token: str, hint: str) -> Any:
        return self.oauth.revoke_token(
            self.url("/oauth/revoke"), token=token, token_type_hint=hint, auth=self.auth()
        )

    def records(self, handle: str, access_token: str, suffix: str = "") -> Any:
        bearer = OAuth2Auth({"access_token": access_token, "token_type": "Bearer"})
        return self.oauth.get(self.url(f"/api/v1/vaults/{handle}/records{suffix}"), auth=bearer)


@dataclass
class YoungPerson:
    http: httpx.Client
    headers: dict[str, str]

    def get(self, path: str) -> Any:
        response = self.http.get(path, headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return self.http.post(path, json=body or {}, headers=self.headers)

    def code(self) -> str:
        made = self.post("/api/v1/me/connection-codes")
        assert made.status_code == 201, made.text
        return str(made.json()["code"])

    def pending_request(self) -> dict[str, Any]:
        pending = [r for r in self.get("/api/v1/me/requests") if r["status"] == "pending"]
        assert len(pending) == 1, pending
        return dict(pending[0])


def cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def db_time(services: Services, when: datetime) -> datetime:
    """SQLite stores naive UTC; PostgreSQL wants an aware datetime."""
    return when.replace(tzinfo=None) if services.settings.is_sqlite else when


@pytest.fixture
def key() -> ECKey:
    return ECKey.generate_key("P-256")


@pytest.fixture
def client_id(env: dict[str, str], services: Services, key: ECKey, tmp_path: Path) -> str:
    """The operator registers the agency and its system through the real CLI."""
    jwks = tmp_path / "agency-jwks.json"
    jwks.write_text(json.dumps(KeySet([key]).as_dict(private=False)), encoding="utf-8")
    cli(env, "agency", "add", AGENCY, "--purpose", PURPOSE, "--purpose", "child_plan")
    registered = cli(env, "client", "add", "--agency", AGENCY, "--jwks", str(jwks))
    assert registered["auth_method"] == "private_key_jwt"
    return str(registered["client_id"])


@pytest.fixture
def base(env: dict[str, str], services: Services, tmp_path: Path) -> Iterator[str]:
    server_env = {**env, "STORYKEEP_CIBA_POLL_INTERVAL_SECONDS": str(POLL_SECONDS)}
    log = tmp_path / "serve.log"
    process, url = start_server(server_env, log)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
    # No server error, and no token or record text, ever reaches the server's log.
    written = log.read_text()
    for secret in ("Traceback", "skat_", "skrt_", "Doing well in art."):
        assert secret not in written


@pytest.fixture
def agency(base: str, services: Services, client_id: str, key: ECKey) -> Iterator[Agency]:
    oauth = OAuth2Client(
        client_id=client_id,
        client_secret=key,
        token_endpoint_auth_method=ShortLivedPrivateKeyJWT(services.settings.issuer, alg="ES256"),
        timeout=10,
    )
    with oauth:
        yield Agency(oauth, base, services.settings.issuer, client_id)


@pytest.fixture
def robin(base: str, services: Services) -> Iterator[YoungPerson]:
    with httpx.Client(base_url=base, timeout=10) as http:
        made = http.post("/api/v1/accounts", json={"username": "robin", "password": PASSWORD})
        assert made.status_code == 201, made.text
        yield YoungPerson(http, signed_in_headers(http, "robin", PASSWORD))


@pytest.fixture
def records(robin: YoungPerson, services: Services) -> dict[str, uuid.UUID]:
    return {
        "education": add_record(services, "robin", category="education", title="School report"),
        "health": add_record(services, "robin", category="health", title="Dentist visit"),
    }


def connect(agency: Agency, robin: YoungPerson, **narrow: Any) -> dict[str, Any]:
    """Code, backchannel request, approval (perhaps narrowed), poll: the token response."""
    asked = agency.ask(robin.code(), ["education", "health"])
    assert asked.status_code == 200, asked.text
    request = robin.pending_request()
    approved = robin.post(f"/api/v1/me/requests/{request['id']}/approve", narrow)
    assert approved.status_code == 200, approved.text
    return agency.poll(asked.json()["auth_req_id"])


def assert_tokens_dead(agency: Agency, tokens: dict[str, Any]) -> None:
    """SECURITY.md: the next resource call is 401, introspection says inactive, and a
    refresh gets invalid_grant."""
    call = agency.records(tokens["vault_handle"], tokens["access_token"])
    assert call.status_code == 401, call.text
    assert call.json()["error"] == "invalid_token"
    assert call.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert agency.introspect(tokens["access_token"], "access_token") == {"active": False}
    assert agency.introspect(tokens["refresh_token"], "refresh_token") == {"active": False}
    assert agency.refresh_error(tokens["refresh_token"]) == "invalid_grant"


def test_discovery(base: str, services: Services) -> None:
    response = httpx.get(f"{base}/.well-known/oauth-authorization-server", timeout=10)
    assert response.status_code == 200
    meta = response.json()
    issuer = services.settings.issuer
    assert meta["issuer"] == issuer
    assert meta["token_endpoint"] == f"{issuer}/oauth/token"
    assert meta["backchannel_authentication_endpoint"] == f"{issuer}/oauth/backchannel"
    assert meta["introspection_endpoint"] == f"{issuer}/oauth/introspect"
    assert meta["revocation_endpoint"] == f"{issuer}/oauth/revoke"
    assert meta["backchannel_token_delivery_modes_supported"] == ["poll"]
    assert set(meta["grant_types_supported"]) == {CIBA, "refresh_token"}
    assert "private_key_jwt" in meta["token_endpoint_auth_methods_supported"]
    assert "ES256" in meta["token_endpoint_auth_signing_alg_values_supported"]
    assert not {"none", "HS256"} & set(meta["token_endpoint_auth_signing_alg_values_supported"])
    assert meta["authorization_details_types_supported"] == [
        "storykeep_records",
        "storykeep_emergency",
    ]


def test_whole_flow_with_narrowing_reads_audit_and_refresh(
    agency: Agency, robin: YoungPerson, records: dict[str, uuid.UUID]
) -> None:
    asked = agency.ask(robin.code(), ["education", "health"])
    assert asked.status_code == 200, asked.text
    assert asked.headers["cache-control"] == "no-store"
    started = asked.json()
    assert started["interval"] == POLL_SECONDS and started["expires_in"] == 7 * 24 * 3600
    assert agency.poll_error(started["auth_req_id"]) == "authorization_pending"

    request = robin.pending_request()
    assert request["agency"] == AGENCY and request["purpose"] == PURPOSE
    assert request["categories"] == ["education", "health"]
    assert request["practitioner"] == {"name": "Jo Bloggs", "role": "guidance teacher"}
    until = (utcnow() + timedelta(days=7)).replace(microsecond=0)
    approved = robin.post(
        f"/api/v1/me/requests/{request['id']}/approve",
        {"categories": ["education"], "expires_at": until.isoformat()},
    )
    assert approved.status_code == 200, approved.text
    grant = approved.json()
    assert grant["categories"] == ["education"] and grant["active"] is True

    time.sleep(POLL_SECONDS + 0.2)
    tokens = agency.poll(started["auth_req_id"])
    assert tokens["access_token"].startswith("skat_") and len(tokens["access_token"]) >= 40
    assert tokens["token_type"] == "Bearer"
    assert 0 < tokens["expires_in"] <= 600
    assert tokens["refresh_token"].startswith("skrt_")
    assert uuid.UUID(tokens["grant_id"]) == uuid.UUID(grant["id"])
    assert tokens["vault_handle"].startswith("vh_")
    [details] = tokens["authorization_details"]
    assert details["type"] == "storykeep_records"
    assert details["actions"] == ["read"] and details["categories"] == ["education"]
    assert details["purpose"] == PURPOSE
    assert datetime.fromisoformat(details["expires_at"]) == until
    # The auth_req_id is single use.
    time.sleep(POLL_SECONDS + 0.2)
    assert agency.poll_error(started["auth_req_id"]) == "invalid_grant"

    handle = tokens["vault_handle"]
    read = agency.records(handle, tokens["access_token"])
    assert read.status_code == 200, read.text
    assert [(r["category"], r["title"]) for r in read.json()] == [("education", "School report")]
    assert uuid.UUID(read.json()[0]["id"]) == records["education"]
    health = agency.records(handle, tokens["access_token"], f"/{records['health']}")
    assert health.status_code == 404
    assert agency.records(handle, tokens["access_token"], "?category=health").json() == []
    other = agency.records("vh_not-this-agencys-handle", tokens["access_token"])
    assert other.status_code == 404

    # The young person sees who read what, for what purpose, under which grant.
    events = robin.get("/api/v1/me/audit")["events"]
    reads = [e for e in events if e["action"] == "record:read"]
    assert reads, events
    assert {e["object_id"] for e in reads} == {records["education"].hex}
    for event in reads:
        assert event["actor_type"] == "practitioner"
        assert event["actor_label"] == "Jo Bloggs"
        assert event["agency"] == AGENCY and event["purpose"] == PURPOSE
        assert event["grant_id"] == uuid.UUID(grant["id"]).hex
    [listed] = robin.get("/api/v1/me/grants")
    assert listed["active"] is True and listed["last_used_at"] is not None

    looked = agency.introspect(tokens["access_token"], "access_token")
    assert looked["active"] is True and looked["client_id"] == agency.client_id
    assert looked["token_type"] == "Bearer" and looked["vault_handle"] == handle
    assert looked["grant_id"] == tokens["grant_id"]
    assert looked["authorization_details"][0]["categories"] == ["education"]

    # Refresh, this time with the token endpoint's own URL as the assertion's audience.
    renewed = agency.refresh(tokens["refresh_token"], audience=f"{agency.issuer}/oauth/token")
    assert renewed["grant_id"] == tokens["grant_id"]
    assert renewed["vault_handle"] == handle
    assert renewed["access_token"] != tokens["access_token"]
    assert renewed["refresh_token"] != tokens["refresh_token"]
    assert 0 < renewed["expires_in"] <= 600
    assert renewed["authorization_details"][0]["categories"] == ["education"]
    assert agency.records(handle, renewed["access_token"]).status_code == 200
    assert agency.introspect(tokens["refresh_token"], "refresh_token") == {"active": False}
    # Reusing the rotated refresh token revokes the whole family.
    assert agency.refresh_error(tokens["refresh_token"]) == "invalid_grant"
    assert agency.records(handle, renewed["access_token"]).status_code == 401
    assert agency.refresh_error(renewed["refresh_token"]) == "invalid_grant"


def test_decline_gets_access_denied(
    agency: Agency, robin: YoungPerson, records: dict[str, uuid.UUID]
) -> None:
    asked = agency.ask(robin.code(), ["health"])
    assert asked.status_code == 200, asked.text
    auth_req_id = asked.json()["auth_req_id"]
    assert agency.poll_error(auth_req_id) == "authorization_pending"
    # Polling again at once is too fast (CIBA section 11).
    assert agency.poll_error(auth_req_id) == "slow_down"

    request = robin.pending_request()
    declined = robin.post(f"/api/v1/me/requests/{request['id']}/decline", {"reason": "not now"})
    assert declined.status_code == 200, declined.text
    assert declined.json()["status"] == "declined"

    assert agency.poll_error(auth_req_id) == "access_denied"
    assert robin.get("/api/v1/me/grants") == []
    [listed] = robin.get("/api/v1/me/requests")
    assert listed["status"] == "declined"
    # Deciding again changes nothing.
    again = robin.post(f"/api/v1/me/requests/{request['id']}/approve")
    assert again.status_code == 409


def test_young_person_revokes(
    agency: Agency, robin: YoungPerson, records: dict[str, uuid.UUID]
) -> None:
    tokens = connect(agency, robin)
    assert agency.records(tokens["vault_handle"], tokens["access_token"]).status_code == 200
    [grant] = robin.get("/api/v1/me/grants")
    assert uuid.UUID(grant["id"]).hex == tokens["grant_id"]

    revoked = robin.post(f"/api/v1/me/grants/{grant['id']}/revoke")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["active"] is False and revoked.json()["revoked_at"] is not None

    assert_tokens_dead(agency, tokens)
    assert robin.post(f"/api/v1/me/grants/{grant['id']}/revoke").status_code == 409
    actions = [e["action"] for e in robin.get("/api/v1/me/audit")["events"]]
    assert "grant:revoked" in actions


def test_client_revokes_refresh_token(
    agency: Agency, robin: YoungPerson, records: dict[str, uuid.UUID]
) -> None:
    first = connect(agency, robin)
    handle = first["vault_handle"]
    assert agency.records(handle, first["access_token"]).status_code == 200

    # Revoking an access token ends that token only; the grant goes on.
    assert agency.revoke(first["access_token"], "access_token").status_code == 200
    assert agency.records(handle, first["access_token"]).status_code == 401
    assert agency.introspect(first["access_token"], "access_token") == {"active": False}
    tokens = agency.refresh(first["refresh_token"])
    assert agency.records(handle, tokens["access_token"]).status_code == 200

    # Revoking a refresh token ends the whole grant (RFC 7009 section 2.1).
    revoked = agency.revoke(tokens["refresh_token"], "refresh_token")
    assert revoked.status_code == 200, revoked.text
    assert revoked.headers["cache-control"] == "no-store"

    assert_tokens_dead(agency, tokens)
    [grant] = robin.get("/api/v1/me/grants")
    assert grant["active"] is False and grant["revoked_at"] is not None
    # Revoking again, or a token nobody issued, is still 200 (RFC 7009 section 2.2).
    assert agency.revoke(tokens["refresh_token"], "refresh_token").status_code == 200
    assert agency.revoke("skrt_made-up", "refresh_token").status_code == 200


def test_grant_expiry_ends_its_tokens(
    agency: Agency, robin: YoungPerson, records: dict[str, uuid.UUID], services: Services
) -> None:
    tokens = connect(agency, robin)
    assert agency.records(tokens["vault_handle"], tokens["access_token"]).status_code == 200
    assert agency.introspect(tokens["access_token"], "access_token")["active"] is True

    past = utcnow() - timedelta(minutes=1)
    run_sql(services, "UPDATE access_grant SET expires_at = :t", t=db_time(services, past))

    assert_tokens_dead(agency, tokens)
    [grant] = robin.get("/api/v1/me/grants")
    assert grant["active"] is False and grant["revoked_at"] is None


def test_client_assertions_authlib_signs_by_default_are_refused(
    agency: Agency, robin: YoungPerson
) -> None:
    """Two things an authlib user meets first: the default assertion lives an hour (the
    server allows ten minutes), and the default audience is the URL the client called,
    which is not this server's issuer here."""
    code = robin.code()
    form = {"login_hint": code, "authorization_details": "[]", "practitioner": "{}"}
    url = agency.url("/oauth/backchannel")

    hour_long = agency.oauth.client_auth(PrivateKeyJWT(agency.issuer, alg="ES256"))
    refused = agency.oauth.post(url, data=form, auth=hour_long)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"] == "invalid_client"
    assert "at most 600" in refused.json()["error_description"]

    wrong_audience = agency.oauth.client_auth(ShortLivedPrivateKeyJWT(alg="ES256"))
    refused = agency.oauth.post(url, data=form, auth=wrong_audience)
    assert refused.status_code == 401, refused.text
    assert "aud" in refused.json()["error_description"]

    # Neither used up the one-time code.
    asked = agency.ask(code, ["education"])
    assert asked.status_code == 200, asked.text


def test_undecided_request_lapses(agency: Agency, robin: YoungPerson, services: Services) -> None:
    asked = agency.ask(robin.code(), ["education"])
    assert asked.status_code == 200, asked.text
    past = utcnow() - timedelta(seconds=1)
    run_sql(services, "UPDATE access_request SET decide_by = :t", t=db_time(services, past))

    assert agency.poll_error(asked.json()["auth_req_id"]) == "expired_token"
    [listed] = robin.get("/api/v1/me/requests")
    assert listed["status"] == "lapsed"
    late = robin.post(f"/api/v1/me/requests/{listed['id']}/approve")
    assert late.status_code == 409, late.text
    assert robin.get("/api/v1/me/grants") == []
