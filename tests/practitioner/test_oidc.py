"""Signing in with the agency's OpenID Connect provider (Core 1.0, code flow with PKCE),
against a real provider the tests run on 127.0.0.1 (tests/practitioner/idp.py).

Storykeep is driven through its TestClient; the provider over real HTTP with httpx,
following its redirect back by hand, as a browser would. Every failure shows a clear
page and signs nobody in."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from app.auth import oidc, practitioners
from app.container import Services
from app.db import transaction
from app.settings import Settings
from tests.conftest import run_sql
from tests.practitioner.idp import CLIENT_ID, CLIENT_SECRET, TestIdentityProvider, free_port
from tests.practitioner.kit import add_agency, add_practitioner
from vault.actors import Actor

SCHOOL = "Example High School"


def configure(services: Services, issuer: str, agency: str = SCHOOL) -> None:
    with transaction(services.engine) as session:
        practitioners.configure_oidc(
            session, services.settings, services.keys, Actor.operator(), agency_name=agency,
            issuer=issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
        )  # fmt: skip


def agency_choice(http: TestClient, name: str = SCHOOL) -> str:
    page = http.get("/practitioner/signin").text
    assert "Sign in with your organisation" in page
    match = re.search(
        r'href="/practitioner/oidc/start\?agency=([0-9a-f]{32})">Sign in with ' + re.escape(name),
        page,
    )
    assert match, page
    return match.group(1)


def start(http: TestClient, agency_id: str) -> str:
    """Leg one: Storykeep sends the browser to the provider. Returns the provider URL."""
    response = http.get(f"/practitioner/oidc/start?agency={agency_id}", follow_redirects=False)
    assert response.status_code == 303, response.text
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{oidc.STATE_COOKIE}=") and "HttpOnly" in cookie
    assert "Secure" in cookie and "Path=/practitioner/oidc" in cookie
    return response.headers["location"]


def at_provider(url: str) -> str:
    """The provider signs the user in at once and redirects back. Returns the path and
    query to deliver to Storykeep."""
    back = httpx.get(url, follow_redirects=False, timeout=10)
    assert back.status_code == 302, back.text
    parts = urlsplit(back.headers["location"])
    assert parts.path == oidc.CALLBACK_PATH
    return f"{parts.path}?{parts.query}"


def sign_in(http: TestClient, agency_id: str) -> Any:
    return http.get(at_provider(start(http, agency_id)), follow_redirects=False)


def assert_refused(response: Any, services: Services, message: str) -> None:
    assert response.status_code == 401, response.text
    assert message in response.text and 'role="alert"' in response.text
    assert "storykeep_staff=" not in response.headers.get("set-cookie", "")
    assert run_sql(services, "SELECT count(*) FROM staff_session")[0][0] == 0


@pytest.fixture
def school(services: Services, idp: TestIdentityProvider) -> str:
    """The school, Jo (password account) and the school's provider. Returns its id."""
    add_agency(services)
    add_practitioner(services)
    configure(services, idp.issuer)
    return str(run_sql(services, "SELECT id FROM agency")[0][0]).replace("-", "")


class TestSigningIn:
    def test_the_whole_round_trip(
        self, worker: TestClient, services: Services, idp: TestIdentityProvider, school: str
    ) -> None:
        assert agency_choice(worker) == school
        url = start(worker, school)
        assert url.startswith(f"{idp.issuer}/authorize?")
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        assert query["response_type"] == "code" and query["client_id"] == CLIENT_ID
        assert query["redirect_uri"] == services.settings.issuer + "/practitioner/oidc/callback"
        assert "openid" in query["scope"].split() and "email" in query["scope"].split()
        assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
        assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32
        # None of the flow's secrets is readable in the cookie.
        flow_cookie = worker.cookies[oidc.STATE_COOKIE]
        assert query["state"] not in flow_cookie and query["nonce"] not in flow_cookie

        done = worker.get(at_provider(url), follow_redirects=False)
        assert done.status_code == 303 and done.headers["location"] == "/practitioner"
        assert "storykeep_staff=" in done.headers["set-cookie"]
        assert idp.token_calls == 1
        assert "Jo Bloggs" in worker.get("/practitioner").text
        assert run_sql(services, "SELECT oidc_subject FROM practitioner") == [("idp-user-1",)]
        actions = run_sql(services, "SELECT action FROM audit_event WHERE chain = 'operator'")
        assert ("practitioner:oidc_linked",) in actions

        worker.cookies.clear()
        again = sign_in(worker, school)  # same subject: fine, and nothing new is linked
        assert again.status_code == 303
        assert run_sql(
            services, "SELECT count(*) FROM audit_event WHERE action = 'practitioner:oidc_linked'"
        ) == [(1,)]

    def test_an_oidc_only_account_signs_in(
        self, worker: TestClient, services: Services, idp: TestIdentityProvider, school: str
    ) -> None:
        add_practitioner(services, "sam@example.org", name="Sam Only", password=None)
        idp.user.update(sub="idp-sam", email="Sam@Example.org")
        assert sign_in(worker, school).status_code == 303
        assert "Sam Only" in worker.get("/practitioner").text


class TestRefusals:
    def test_a_changed_state_is_refused_before_the_code_is_used(
        self, worker: TestClient, services: Services, idp: TestIdentityProvider, school: str
    ) -> None:
        callback = at_provider(start(worker, school))
        forged = re.sub(r"state=[^&]+", "state=forged", callback)
        assert_refused(worker.get(forged), services, "did not start here")
        assert idp.token_calls == 0

    def test_a_callback_in_another_browser_is_refused(
        self,
        worker: TestClient,
        client: TestClient,
        services: Services,
        idp: TestIdentityProvider,
        school: str,
    ) -> None:
        """Login CSRF / code injection: a callback only works in the browser that
        started that flow (its state and PKCE verifier are in that browser's cookie)."""
        mine = at_provider(start(worker, school))
        start(client, school)  # the other browser has a flow of its own
        assert_refused(client.get(mine), services, "did not start here")
        client.cookies.clear()
        assert_refused(client.get(mine), services, "did not start here")

    def test_a_callback_works_once(
        self, worker: TestClient, services: Services, idp: TestIdentityProvider, school: str
    ) -> None:
        callback = at_provider(start(worker, school))
        assert worker.get(callback, follow_redirects=False).status_code == 303
        run_sql(services, "UPDATE staff_session SET revoked_at = created_at")
        worker.cookies.clear()
        replay = worker.get(callback)
        assert replay.status_code == 401
        assert run_sql(services, "SELECT count(*) FROM staff_session")[0][0] == 1

    def test_a_tampered_flow_cookie_is_refused(
        self, worker: TestClient, services: Services, idp: TestIdentityProvider, school: str
    ) -> None:
        callback = at_provider(start(worker, school))
        sealed = worker.cookies[oidc.STATE_COOKIE]
        flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
        worker.cookies.clear()
        worker.cookies.set(oidc.STATE_COOKIE, flipped)
        assert_refused(worker.get(callback), services, "did not start here")
        worker.cookies.clear()
        worker.cookies.set(oidc.STATE_COOKIE, sealed)  # the untouched cookie still works
        assert worker.get(callback, follow_redirects=False).status_code == 303

    @pytest.mark.parametrize(
        "tamper",
        [
            {"nonce": "a-nonce-from-another-flow"},
            {"nonce": None},
            {"sign_with_other_key": True},
            {"aud": "another-client"},
            {"aud": [CLIENT_ID, "another-client"]},  # several audiences need azp
            {"iss": "http://127.0.0.1:1"},
            {"exp": int(time.time()) - 3600},
            {"iat": int(time.time()) + 3600},
            {"sub": None},
        ],
    )
    def test_a_bad_id_token_is_refused(
        self,
        worker: TestClient,
        services: Services,
        idp: TestIdentityProvider,
        school: str,
        tamper: dict[str, Any],
    ) -> None:
        idp.tamper = tamper
        assert_refused(sign_in(worker, school), services, "could not be checked")
        assert run_sql(services, "SELECT oidc_subject FROM practitioner") == [(None,)]

    def test_several_audiences_with_azp_are_fine(
        self, worker: TestClient, services: Services, idp: TestIdentityProvider, school: str
    ) -> None:
        idp.tamper = {"aud": [CLIENT_ID, "another-client"], "azp": CLIENT_ID}
        assert sign_in(worker, school).status_code == 303

    def test_a_practitioner_of_another_agency_is_refused(
        self, worker: TestClient, services: Services, idp: TestIdentityProvider, school: str
    ) -> None:
        """The school's provider vouches for the nurse's email: but the nurse works for
        the health board, so the school's provider cannot sign them in."""
        add_agency(services, "Example Health Board", purposes=("health_care",))
        add_practitioner(services, "nurse@example.org", agency="Example Health Board")
        idp.user.update(sub="idp-nurse", email="nurse@example.org")
        assert_refused(sign_in(worker, school), services, "no Storykeep account for you")
        assert run_sql(
            services, "SELECT oidc_subject FROM practitioner WHERE email = 'nurse@example.org'"
        ) == [(None,)]

    def test_an_unknown_email_is_refused(
        self, worker: TestClient, services: Services, idp: TestIdentityProvider, school: str
    ) -> None:
        idp.user.update(email="stranger@example.org")
        assert_refused(sign_in(worker, school), services, "no Storykeep account for you")

    @pytest.mark.parametrize("verified", [False, "true", None])
    def test_an_unverified_email_is_refused(
        self,
        worker: TestClient,
        services: Services,
        idp: TestIdentityProvider,
        school: str,
        verified: Any,
    ) -> None:
        idp.user["email_verified"] = verified
        assert_refused(sign_in(worker, school), services, "not confirmed your email")

    def test_a_changed_subject_after_binding_is_refused(
        self, worker: TestClient, services: Services, idp: TestIdentityProvider, school: str
    ) -> None:
        assert sign_in(worker, school).status_code == 303
        run_sql(services, "DELETE FROM staff_session")
        worker.cookies.clear()
        idp.user["sub"] = "someone-else-with-jos-email"
        assert_refused(sign_in(worker, school), services, "linked to a different account")
        assert run_sql(services, "SELECT oidc_subject FROM practitioner") == [("idp-user-1",)]

    def test_the_provider_saying_no(
        self, worker: TestClient, services: Services, idp: TestIdentityProvider, school: str
    ) -> None:
        start(worker, school)
        state_free = "/practitioner/oidc/callback?error=access_denied&state=x"
        assert_refused(worker.get(state_free), services, "did not sign you in")


class TestStarting:
    def test_an_agency_without_a_provider(
        self, worker: TestClient, services: Services, idp: TestIdentityProvider, school: str
    ) -> None:
        add_agency(services, "Example Health Board", purposes=("health_care",))
        other = str(
            run_sql(services, "SELECT id FROM agency WHERE name = 'Example Health Board'")[0][0]
        )
        response = worker.get(f"/practitioner/oidc/start?agency={other.replace('-', '')}")
        assert response.status_code == 400 and "does not have a sign-in service" in response.text
        assert oidc.STATE_COOKIE not in worker.cookies
        nonsense = worker.get("/practitioner/oidc/start?agency=not-an-id")
        assert nonsense.status_code == 422 and "Choose your organisation" in nonsense.text

    def test_an_unreachable_provider(
        self, worker: TestClient, services: Services, idp: TestIdentityProvider
    ) -> None:
        add_agency(services)
        configure(services, f"http://127.0.0.1:{free_port()}")
        response = worker.get(f"/practitioner/oidc/start?agency={agency_choice(worker)}")
        assert response.status_code == 400 and "could not reach" in response.text

    def test_a_provider_answering_json_nested_too_deeply(
        self, worker: TestClient, services: Services, idp: TestIdentityProvider
    ) -> None:
        """Python's JSON decoder recurses per level, so this is a RecursionError, not a
        ValueError: it must still be "could not reach", not a server error."""
        add_agency(services)
        configure(services, idp.issuer)
        idp.discovery_body = b"[" * 5000
        response = worker.get(f"/practitioner/oidc/start?agency={agency_choice(worker)}")
        assert response.status_code == 400 and "could not reach" in response.text

    def test_a_provider_naming_another_issuer(
        self, worker: TestClient, services: Services, idp: TestIdentityProvider
    ) -> None:
        add_agency(services)
        configure(services, idp.issuer.replace("127.0.0.1", "localhost"))
        response = worker.get(f"/practitioner/oidc/start?agency={agency_choice(worker)}")
        assert response.status_code == 400 and "could not reach" in response.text


def test_plain_http_is_for_this_machine_and_never_production(tmp_path: Path) -> None:
    dev = Settings(environment="test", data_dir=tmp_path)
    prod = Settings(
        environment="production",
        data_dir=tmp_path,
        issuer="https://storykeep.example.org",
        secret_key="a-production-secret-that-is-long-enough",
    )
    assert oidc.url_allowed(dev, "http://127.0.0.1:5000/") and oidc.url_allowed(
        dev, "http://localhost"
    )
    assert not oidc.url_allowed(dev, "http://login.example.org")
    assert not oidc.url_allowed(prod, "http://127.0.0.1:5000/")
    assert oidc.url_allowed(prod, "https://login.example.org")
    for bad in ("https://user:pw@login.example.org", "https://login.example.org/#x", "ftp://x", ""):
        assert not oidc.url_allowed(dev, bad)
