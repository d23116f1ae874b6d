"""RFC 7523 private_key_jwt: every refusal SECURITY.md lists, through the real endpoint."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import OctKey
from sqlmodel import select

from app.auth.models import SignInThrottle
from app.container import Services
from app.db import transaction
from tests.conftest import run_sql
from tests.grants.kit import ASSERTION_TYPE, AgencyClient, agency_client, connection_code


@pytest.fixture
def agency(client: TestClient, services: Services) -> AgencyClient:
    return agency_client(client, services)


def introspect_with(agency: AgencyClient, assertion: str) -> tuple[int, dict[str, str]]:
    response = agency.post("/oauth/introspect", {"token": "whatever"}, assertion)
    return response.status_code, response.json()


def unsigned(claims: dict[str, object], alg: str = "none") -> str:
    def b64(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims)}."


DEEP_CLAIMS = ".".join(
    base64.urlsafe_b64encode(part).rstrip(b"=").decode()
    for part in (b'{"alg":"ES256"}', b"[" * 3000, b"s" * 64)
)


class TestPrivateKeyJwt:
    def test_good_assertion_is_accepted(self, agency: AgencyClient) -> None:
        assert introspect_with(agency, agency.assertion()) == (200, {"active": False})

    def test_alg_none_is_refused(self, agency: AgencyClient) -> None:
        now = int(time.time())
        claims = {
            "iss": agency.client_id,
            "sub": agency.client_id,
            "aud": agency.issuer,
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
        }
        status, body = introspect_with(agency, unsigned(claims))
        assert status == 401 and body["error"] == "invalid_client"
        assert "none" in body["error_description"]

    def test_hmac_is_refused(self, agency: AgencyClient) -> None:
        now = int(time.time())
        claims = {
            "iss": agency.client_id,
            "sub": agency.client_id,
            "aud": agency.issuer,
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
        }
        key = OctKey.import_key(b"a-shared-secret-anyone-could-guess-1234")
        forged = jwt.encode({"alg": "HS256"}, claims, key, algorithms=["HS256"])
        status, body = introspect_with(agency, forged)
        assert status == 401 and "HS256" in body["error_description"]

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"aud": "https://someone-else.example"}, "aud"),
            # RFC 7519: a string or an array of strings; anything else is no audience.
            ({"aud": -5}, "aud"),
            ({"aud": True}, "aud"),
            ({"aud": {"iss": "x"}}, "aud"),
            ({"aud": [{"iss": "x"}, ["x"]]}, "aud"),
            ({"exp": int(time.time()) - 5}, "expired"),
            ({"exp": None}, "expired"),
            ({"iat": int(time.time()) + 3600, "exp": int(time.time()) + 3700}, ""),
            ({"exp": int(time.time()) + 3600}, "at most"),
            ({"sub": "someone-else"}, "sub"),
            ({"jti": None}, "jti"),
        ],
    )
    def test_bad_claims_are_refused(
        self, agency: AgencyClient, overrides: dict[str, object], message: str
    ) -> None:
        status, body = introspect_with(agency, agency.assertion(**overrides))
        assert status == 401 and body["error"] == "invalid_client"
        assert message in body["error_description"]

    def test_iat_far_in_future_is_refused(self, agency: AgencyClient) -> None:
        now = int(time.time())
        status, body = introspect_with(agency, agency.assertion(iat=now + 300, exp=now + 400))
        assert status == 401 and "future" in body["error_description"]

    def test_endpoint_url_is_an_accepted_audience(self, agency: AgencyClient) -> None:
        url = agency.issuer.rstrip("/") + "/oauth/introspect"
        assert introspect_with(agency, agency.assertion(aud=url))[0] == 200
        other_endpoint = agency.issuer.rstrip("/") + "/oauth/token"
        assert introspect_with(agency, agency.assertion(aud=other_endpoint))[0] == 401

    def test_replayed_jti_is_refused(self, agency: AgencyClient, services: Services) -> None:
        assertion = agency.assertion()
        assert introspect_with(agency, assertion)[0] == 200
        status, body = introspect_with(agency, assertion)
        assert status == 401 and "used before" in body["error_description"]
        # Remembered in the database (shared by all workers) until it expires.
        assert run_sql(services, "SELECT count(*) FROM used_assertion")[0][0] == 1

    def test_jti_stays_used_even_when_the_call_fails(self, agency: AgencyClient) -> None:
        assertion = agency.assertion()
        failed = agency.post("/oauth/token", {"grant_type": "password"}, assertion)
        assert failed.status_code == 400 and failed.json()["error"] == "unsupported_grant_type"
        assert introspect_with(agency, assertion)[0] == 401

    def test_signed_by_another_clients_key(
        self, agency: AgencyClient, client: TestClient, services: Services
    ) -> None:
        other = agency_client(client, services, name="Example Health Board")
        forged = other.assertion(iss=agency.client_id, sub=agency.client_id)
        assert introspect_with(agency, forged)[0] == 401

    def test_unknown_client_is_refused_and_counted(
        self, agency: AgencyClient, services: Services
    ) -> None:
        """A well-formed, well-signed assertion naming no registered client."""
        nobody = "sk_" + "0" * 24
        status, body = introspect_with(agency, agency.assertion(iss=nobody, sub=nobody))
        assert status == 401 and body["error_description"] == "unknown client"
        # Counted against the address only: a made-up client_id gets no counter, so
        # guessing ids fills no table and locks no one out.
        assert run_sql(services, "SELECT failures FROM sign_in_throttle") == [(1,)]

    def test_disabled_client_is_refused(self, agency: AgencyClient, services: Services) -> None:
        assert introspect_with(agency, agency.assertion())[0] == 200
        run_sql(
            services,
            "UPDATE oauth_client SET disabled_at = :now WHERE client_id = :id",
            now=datetime.now(UTC),
            id=agency.client_id,
        )
        status, body = introspect_with(agency, agency.assertion())
        assert status == 401 and body["error_description"] == "unknown client"

    @pytest.mark.parametrize("token", ["", "skat_" + "x" * 300])
    def test_no_token_or_an_overlong_one_is_inactive(
        self, agency: AgencyClient, services: Services, token: str
    ) -> None:
        """Nothing to look up, but the client is still authenticated: its jti is spent."""
        assertion = agency.assertion()
        answered = agency.post("/oauth/introspect", {"token": token}, assertion)
        assert answered.status_code == 200 and answered.json() == {"active": False}
        assert introspect_with(agency, assertion)[0] == 401  # used before

    @pytest.mark.parametrize(
        "form",
        [
            {},
            {"client_assertion_type": "urn:wrong", "client_assertion": "x"},
            {"client_assertion_type": ASSERTION_TYPE, "client_assertion": "not.a.jwt"},
            {"client_assertion_type": ASSERTION_TYPE, "client_assertion": "x" * 9000},
            # Claims nested too deeply for Python's decoder, which is read before any
            # signature check: RecursionError must not become a 500 for anyone at all.
            {"client_assertion_type": ASSERTION_TYPE, "client_assertion": DEEP_CLAIMS},
        ],
    )
    def test_missing_or_malformed_client_auth(
        self, client: TestClient, form: dict[str, str]
    ) -> None:
        response = client.post("/oauth/introspect", data={"token": "t", **form})
        assert response.status_code == 401 and response.json()["error"] == "invalid_client"

    def test_basic_auth_refused_without_allow_secret(
        self, agency: AgencyClient, client: TestClient
    ) -> None:
        basic = base64.b64encode(f"{agency.client_id}:guess".encode()).decode()
        response = client.post(
            "/oauth/introspect", data={"token": "t"}, headers={"Authorization": f"Basic {basic}"}
        )
        assert response.status_code == 401

    def test_form_must_be_urlencoded_and_single_valued(
        self, agency: AgencyClient, client: TestClient
    ) -> None:
        as_json = client.post("/oauth/introspect", json={"token": "t"})
        assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
        doubled = client.post(
            "/oauth/introspect",
            content=f"token=a&token=b&client_assertion_type={ASSERTION_TYPE}&client_assertion={agency.assertion()}",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert doubled.status_code == 400 and "once" in doubled.json()["error_description"]


def test_failed_client_authentication_is_throttled_per_address(
    agency: AgencyClient, services: Services
) -> None:
    services.settings.oauth_max_failures_per_address = 3
    for _ in range(3):
        assert introspect_with(agency, agency.assertion(aud="https://wrong.example"))[0] == 401
    blocked = agency.post("/oauth/introspect", {"token": "t"})
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    # An RFC 6749 section 5.2 body, not cached, as every OAuth error is.
    assert blocked.json()["error"] == "rate_limited" and "error_description" in blocked.json()
    assert blocked.headers["cache-control"] == "no-store"


def test_failures_from_one_ipv6_network_count_together(
    agency: AgencyClient, services: Services,
    from_address: Callable[[AgencyClient, str], AgencyClient],
) -> None:  # fmt: skip
    """Failed client authentications from fresh addresses in one /64 (a host may use any
    of them, RFC 7934) share one counter; the next /64 has its own."""
    services.settings.oauth_max_failures_per_address = 3
    for n in range(1, 4):
        caller = from_address(agency, f"2001:db8:7::{n:x}")
        assert introspect_with(caller, caller.assertion(aud="https://wrong.example"))[0] == 401
    same_network = from_address(agency, "2001:db8:7:0:abcd::1")
    assert introspect_with(same_network, same_network.assertion())[0] == 429
    next_network = from_address(agency, "2001:db8:7:1::1")
    assert introspect_with(next_network, next_network.assertion()) == (200, {"active": False})


def test_a_throttled_address_hears_429_before_anything_is_checked(
    agency: AgencyClient, client: TestClient, services: Services
) -> None:
    """Once throttled, even malformed credentials, or none, are answered 429 (and a good
    assertion is refused too, so guessing gains nothing)."""
    services.settings.oauth_max_failures_per_address = 2
    for _ in range(2):
        assert introspect_with(agency, "not.a.jwt")[0] == 401  # malformed: counted too
    assert introspect_with(agency, "not.a.jwt")[0] == 429
    assert client.post("/oauth/introspect", data={"token": "t"}).status_code == 429
    assert introspect_with(agency, agency.assertion())[0] == 429
    assert agency.post("/oauth/token", {"grant_type": "refresh_token"}).status_code == 429


def test_agency_auth_failures_do_not_lock_out_young_people(
    agency: AgencyClient, client: TestClient, services: Services
) -> None:
    services.settings.oauth_max_failures_per_address = 3
    for _ in range(4):
        introspect_with(agency, agency.assertion(aud="https://wrong.example"))
    made = client.post("/api/v1/accounts", json={"username": "robin", "password": "x" * 12})
    assert made.status_code == 201
    signed = client.post("/api/v1/me/session", json={"username": "robin", "password": "x" * 12})
    assert signed.status_code == 200


# -- per client: the client is the account (SECURITY.md, "People and sessions") ------------
@pytest.fixture
def from_address(app: Any) -> Iterator[Callable[[AgencyClient, str], AgencyClient]]:
    """The same agency client, calling from another address. ``client_address()`` reads
    the ASGI client address, which uvicorn sets from X-Forwarded-For when the proxy is
    trusted (README: FORWARDED_ALLOW_IPS); the test client sets it directly."""
    opened: list[TestClient] = []

    def make(agency: AgencyClient, address: str) -> AgencyClient:
        http = TestClient(app, base_url="https://testserver", client=(address, 50000))
        opened.append(http)
        return dataclasses.replace(agency, http=http)

    yield make
    for http in opened:
        http.close()


def failed_attempts(agency: AgencyClient, other: AgencyClient) -> list[str]:
    """Client authentications for ``agency``'s client_id that must fail, each in a way
    only someone who knows that client_id can make it fail."""
    replayed = agency.assertion()
    assert introspect_with(agency, replayed)[0] == 200
    return [
        other.assertion(iss=agency.client_id, sub=agency.client_id),  # not its signature
        replayed,  # a jti used before
        agency.assertion(aud="https://someone-else.example"),  # another audience
        agency.assertion(exp=int(time.time()) - 5),  # expired
    ]


def age_throttle_windows(services: Services, by: timedelta) -> None:
    """As if ``by`` had passed since every failure counter's window started."""
    with transaction(services.engine) as session:
        for row in session.exec(select(SignInThrottle)).all():
            row.window_started_at -= by


class TestPerClientThrottle:
    def test_one_client_failing_from_many_addresses_is_throttled(
        self, agency: AgencyClient, client: TestClient, services: Services,
        from_address: Callable[[AgencyClient, str], AgencyClient],
    ) -> None:  # fmt: skip
        """Four failures, each from its own address (each far under the address limit),
        throttle the client: from a fifth address, even its good assertion is refused."""
        services.settings.oauth_max_failures_per_client = 4
        other = agency_client(client, services, name="Example Health Board")
        for i, assertion in enumerate(failed_attempts(agency, other)):
            caller = from_address(agency, f"203.0.113.{i + 1}")
            assert introspect_with(caller, assertion)[0] == 401
        blocked = from_address(agency, "198.51.100.9").post("/oauth/introspect", {"token": "t"})
        assert blocked.status_code == 429 and blocked.json()["error"] == "rate_limited"
        window = services.settings.login_window_minutes * 60
        assert 0 < int(blocked.headers["retry-after"]) <= window
        # Every endpoint, since the throttle comes before anything else is checked.
        refresh = {"grant_type": "refresh_token", "refresh_token": "skrt_x"}
        assert agency.post("/oauth/token", refresh).status_code == 429
        assert agency.post("/oauth/revoke", {"token": "t"}).status_code == 429

    def test_another_client_from_the_same_addresses_is_unaffected(
        self, agency: AgencyClient, client: TestClient, services: Services,
        from_address: Callable[[AgencyClient, str], AgencyClient],
    ) -> None:  # fmt: skip
        services.settings.oauth_max_failures_per_client = 4
        other = agency_client(client, services, name="Example Health Board")
        for i, assertion in enumerate(failed_attempts(agency, other)):
            assert introspect_with(from_address(agency, f"203.0.113.{i + 1}"), assertion)[0] == 401
        assert introspect_with(agency, agency.assertion())[0] == 429
        for i in range(4):
            caller = from_address(other, f"203.0.113.{i + 1}")
            assert introspect_with(caller, caller.assertion()) == (200, {"active": False})

    def test_a_throttled_client_works_again_after_the_window(
        self, agency: AgencyClient, client: TestClient, services: Services,
        from_address: Callable[[AgencyClient, str], AgencyClient],
    ) -> None:  # fmt: skip
        services.settings.oauth_max_failures_per_client = 4
        other = agency_client(client, services, name="Example Health Board")
        for i, assertion in enumerate(failed_attempts(agency, other)):
            assert introspect_with(from_address(agency, f"203.0.113.{i + 1}"), assertion)[0] == 401
        assert introspect_with(agency, agency.assertion())[0] == 429
        window = timedelta(minutes=services.settings.login_window_minutes)
        age_throttle_windows(services, window - timedelta(seconds=5))
        assert introspect_with(agency, agency.assertion())[0] == 429  # not yet
        age_throttle_windows(services, timedelta(seconds=5))
        assert introspect_with(agency, agency.assertion()) == (200, {"active": False})
        # A new window: one more failure is counted from nought, not on top of the old four.
        bad = other.assertion(iss=agency.client_id, sub=agency.client_id)
        assert introspect_with(from_address(agency, "203.0.113.1"), bad)[0] == 401
        assert introspect_with(agency, agency.assertion())[0] == 200

    def test_successful_calls_are_not_counted(
        self, agency: AgencyClient, services: Services
    ) -> None:
        """The hot path writes no counter: many good calls leave the table empty."""
        services.settings.oauth_max_failures_per_client = 2
        for _ in range(5):
            assert introspect_with(agency, agency.assertion())[0] == 200
        assert run_sql(services, "SELECT count(*) FROM sign_in_throttle") == [(0,)]

    def test_guessed_auth_req_ids_and_refresh_tokens_do_not_count(
        self, agency: AgencyClient, client: TestClient, services: Services, csrf: str
    ) -> None:
        """Only a client that has proven itself gets this far, and the values are 256
        random bits: no number of guesses finds one, so they are not counted, and a
        genuine client retrying stale values cannot lock itself out (client_auth.py)."""
        services.settings.oauth_max_failures_per_client = 2
        services.settings.oauth_max_failures_per_address = 2
        other = agency_client(client, services, name="Example Health Board")
        asked = other.ask(connection_code(client, csrf))
        assert asked.status_code == 200, asked.text
        someone_elses = asked.json()["auth_req_id"]
        for _ in range(3):
            for auth_req_id in (uuid.uuid4().hex, someone_elses):
                polled = agency.poll(auth_req_id)
                assert polled.status_code == 400 and polled.json()["error"] == "invalid_grant"
            refreshed = agency.refresh("skrt_" + uuid.uuid4().hex)
            assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
        assert introspect_with(agency, agency.assertion()) == (200, {"active": False})
        assert run_sql(services, "SELECT count(*) FROM sign_in_throttle") == [(0,)]
