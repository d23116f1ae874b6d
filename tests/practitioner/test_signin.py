"""Practitioners sign in with a password and a TOTP code (RFC 6238), through their own
form and their own cookie. Every failure says the same thing and counts toward the
throttle; a code is never accepted twice; a young person's cookie opens no worker page,
and a worker's cookie opens no young person's page."""

from __future__ import annotations

import time

import pyotp
import pytest
from fastapi.testclient import TestClient

from app.container import Services
from tests.conftest import PASSWORD, run_sql, sign_up
from tests.practitioner.kit import (
    add_practitioner,
    csrf_of,
    forget_last_code,
    post_signin,
    staff_sign_in,
    totp_now,
)

EMAIL = "jo.bloggs@example.org"
ONE_MESSAGE = "That did not match. Check your email, password and code."


def test_the_form_has_clear_labels(worker: TestClient, jo: str) -> None:
    page = worker.get("/practitioner/signin")
    assert page.status_code == 200
    for label in ("Email", "Password", "Code from your authenticator app"):
        assert f">{label}</label>" in page.text
    assert ">Sign in</button>" in page.text
    assert "Sign in with your organisation" not in page.text  # no provider configured


def test_password_and_code_sign_in(worker: TestClient, services: Services, jo: str) -> None:
    response = post_signin(worker, EMAIL, PASSWORD, totp_now(jo))
    assert response.status_code == 303 and response.headers["location"] == "/practitioner"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("storykeep_staff=")
    assert "HttpOnly" in cookie and "Secure" in cookie and "samesite=lax" in cookie.lower()
    home = worker.get("/practitioner")
    assert home.status_code == 200 and "My requests" in home.text
    assert "Jo Bloggs, guidance teacher at Example High School" in home.text
    token = response.cookies["storykeep_staff"]
    stored = str(run_sql(services, "SELECT * FROM staff_session"))
    assert token not in stored  # only its HMAC


def test_upper_case_email_and_spaced_code_work(
    worker: TestClient, services: Services, jo: str
) -> None:
    code = totp_now(jo)
    response = post_signin(worker, " Jo.Bloggs@Example.ORG ", PASSWORD, f"{code[:3]} {code[3:]}")
    assert response.status_code == 303


@pytest.mark.parametrize(
    ("email", "password", "code"),
    [
        (EMAIL, "wrong password", None),
        (EMAIL, PASSWORD, "000000"),
        (EMAIL, PASSWORD, ""),
        (EMAIL, PASSWORD, "abcdef"),
        # Digits to str.isdigit but not ASCII: compare_digest refuses to compare them.
        (EMAIL, PASSWORD, "\u0661\u0662\u0663\u0664\u0665\u0666"),
        (EMAIL, PASSWORD, "\u00b2" * 6),
        ("nobody@example.org", PASSWORD, None),
    ],
)
def test_every_failure_says_the_same(
    worker: TestClient,
    services: Services,
    jo: str,
    email: str,
    password: str,
    code: str | None,
) -> None:
    right = totp_now(jo)
    if code == "000000" and right == "000000":
        code = "111111"
    response = post_signin(worker, email, password, right if code is None else code)
    assert response.status_code == 401
    assert ONE_MESSAGE in response.text and "storykeep_staff" not in worker.cookies
    assert worker.get("/practitioner", follow_redirects=False).headers["location"] == (
        "/practitioner/signin"
    )
    assert run_sql(services, "SELECT count(*) FROM staff_session")[0][0] == 0


def test_a_wrong_password_does_not_use_up_the_code(
    worker: TestClient, services: Services, jo: str
) -> None:
    code = totp_now(jo)
    assert post_signin(worker, EMAIL, "wrong password", code).status_code == 401
    assert post_signin(worker, EMAIL, PASSWORD, code).status_code == 303


def test_a_code_is_never_accepted_twice(worker: TestClient, services: Services, jo: str) -> None:
    code = totp_now(jo)
    assert post_signin(worker, EMAIL, PASSWORD, code).status_code == 303
    worker.cookies.clear()
    replayed = post_signin(worker, EMAIL, PASSWORD, code)
    assert replayed.status_code == 401 and ONE_MESSAGE in replayed.text


def test_an_older_code_after_a_newer_one_is_refused(
    worker: TestClient, services: Services, jo: str
) -> None:
    totp = pyotp.TOTP(jo)
    step = int(time.time()) // 30
    assert post_signin(worker, EMAIL, PASSWORD, totp.generate_otp(step + 1)).status_code == 303
    worker.cookies.clear()
    older = post_signin(worker, EMAIL, PASSWORD, totp.generate_otp(step))
    assert older.status_code == 401


def test_sign_in_is_throttled(worker: TestClient, services: Services, jo: str) -> None:
    limit = services.settings.login_max_failures_per_account
    for _ in range(limit):
        assert post_signin(worker, EMAIL, "wrong password", "123456").status_code == 401
    blocked = post_signin(worker, EMAIL, PASSWORD, totp_now(jo))
    assert blocked.status_code == 429 and "Too many tries" in blocked.text
    assert int(blocked.headers["retry-after"]) > 0
    assert run_sql(services, "SELECT count(*) FROM staff_session")[0][0] == 0


def test_an_oidc_only_account_has_no_password(
    worker: TestClient, services: Services, jo: str
) -> None:
    assert add_practitioner(services, "sam@example.org", password=None) is None
    for password in ("", PASSWORD):
        assert post_signin(worker, "sam@example.org", password, "123456").status_code == 401


def test_a_disabled_account_cannot_sign_in(worker: TestClient, services: Services, jo: str) -> None:
    run_sql(services, "UPDATE practitioner SET disabled_at = created_at")
    assert post_signin(worker, EMAIL, PASSWORD, totp_now(jo)).status_code == 401


def test_signed_in_pages_stop_when_the_account_is_disabled(
    worker: TestClient, services: Services, jo: str
) -> None:
    staff_sign_in(worker, services, jo)
    run_sql(services, "UPDATE practitioner SET disabled_at = created_at")
    response = worker.get("/practitioner", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/practitioner/signin"


class TestCsrf:
    def test_sign_in_needs_the_form_token(self, worker: TestClient, jo: str) -> None:
        worker.get("/practitioner/signin")
        data = {"email": EMAIL, "password": PASSWORD, "code": totp_now(jo)}
        assert worker.post("/practitioner/signin", data=data).status_code == 403
        wrong = {**data, "csrf_token": "made-up"}
        assert worker.post("/practitioner/signin", data=wrong).status_code == 403
        assert "storykeep_staff" not in worker.cookies

    def test_a_token_from_another_browser_does_not_work(
        self, worker: TestClient, client: TestClient, jo: str
    ) -> None:
        theirs = csrf_of(client.get("/practitioner/signin").text)
        worker.get("/practitioner/signin")
        data = {"csrf_token": theirs, "email": EMAIL, "password": PASSWORD, "code": totp_now(jo)}
        assert worker.post("/practitioner/signin", data=data).status_code == 403

    def test_sign_out_needs_the_token_and_ends_the_session(
        self, worker: TestClient, services: Services, jo: str
    ) -> None:
        csrf = staff_sign_in(worker, services, jo)
        assert worker.post("/practitioner/signout").status_code == 403
        assert worker.get("/practitioner").status_code == 200
        out = worker.post(
            "/practitioner/signout", data={"csrf_token": csrf}, follow_redirects=False
        )
        assert out.status_code == 303 and out.headers["location"] == "/practitioner/signin"
        assert run_sql(services, "SELECT count(*) FROM staff_session WHERE revoked_at IS NULL") == [
            (0,)
        ]
        again = worker.get("/practitioner", follow_redirects=False)
        assert again.headers["location"] == "/practitioner/signin"


class TestOneKindOfSessionPerPage:
    def test_a_young_persons_cookie_opens_no_practitioner_page(
        self, client: TestClient, jo: str
    ) -> None:
        sign_up(client, "alex")
        for path in ("/practitioner", "/practitioner/request"):
            response = client.get(path, follow_redirects=False)
            assert response.status_code == 303
            assert response.headers["location"] == "/practitioner/signin"

    def test_a_practitioners_cookie_opens_no_young_persons_page(
        self, worker: TestClient, services: Services, jo: str
    ) -> None:
        staff_sign_in(worker, services, jo)
        page = worker.get("/story", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/signin")
        assert worker.get("/api/v1/me").status_code == 401

    def test_a_young_persons_token_in_the_staff_cookie_is_refused(
        self, client: TestClient, services: Services, jo: str
    ) -> None:
        sign_up(client, "alex")
        token = client.cookies["storykeep_session"]
        client.cookies.clear()
        client.cookies.set("storykeep_staff", token)
        response = client.get("/practitioner", follow_redirects=False)
        assert response.headers["location"] == "/practitioner/signin"

    def test_an_advocates_session_opens_no_practitioner_page(
        self, worker: TestClient, services: Services, jo: str
    ) -> None:
        staff_sign_in(worker, services, jo)
        run_sql(services, "UPDATE staff_session SET kind = 'advocate'")
        response = worker.get("/practitioner", follow_redirects=False)
        assert response.headers["location"] == "/practitioner/signin"


def test_forget_last_code_lets_a_test_sign_in_twice(
    worker: TestClient, services: Services, jo: str
) -> None:
    """The kit's helper, checked: without it the second sign-in in a step is refused."""
    staff_sign_in(worker, services, jo)
    worker.cookies.clear()
    forget_last_code(services)
    assert post_signin(worker, EMAIL, PASSWORD, totp_now(jo)).status_code == 303
