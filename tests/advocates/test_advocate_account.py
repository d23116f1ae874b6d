"""The advocate's account: sign up with an invite code, sign in (throttled), sign out,
accept another young person's code. Bad codes and bad input change nothing."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from app.container import Services
from tests.advocates.helpers import (
    ADVOCATE_EMAIL,
    advocate_sign_in,
    advocate_sign_up,
    count,
    form_token,
    invite,
    link_ids,
)
from tests.conftest import PASSWORD, run_sql, sign_up
from vault.db_types import utcnow

REFUSED_CODE = "That code does not work."
SIGN_IN_FAILED = "That did not match. Check your email and password."


def db_time(services: Services, when: datetime) -> datetime:
    return when.replace(tzinfo=None) if services.settings.is_sqlite else when


class TestSignUp:
    def test_sign_up_links_and_signs_in(
        self, client: TestClient, adv: TestClient, services: Services, young: str
    ) -> None:
        made = invite(client, young, can_stop_sharing=True)
        created = advocate_sign_up(adv, made["code"].lower(), email="  Sam.Lee@Example.ORG ")
        assert created.status_code == 303 and created.headers["location"] == "/advocate"
        cookie = created.headers["set-cookie"]
        assert "storykeep_staff=" in cookie and "Secure" in cookie and "HttpOnly" in cookie
        home = adv.get("/advocate")
        assert home.status_code == 200 and "alex" in home.text
        [(email, name, password_hash)] = run_sql(
            services, "SELECT email, name, password_hash FROM advocate"
        )
        assert email == ADVOCATE_EMAIL and name == "Sam Lee"
        assert password_hash.startswith("$argon2id$") and PASSWORD not in password_hash
        [(used_at,)] = run_sql(services, "SELECT used_at FROM advocate_invite")
        assert used_at is not None
        [(can_stop,)] = run_sql(services, "SELECT can_stop_sharing FROM advocate_link")
        assert can_stop
        joined = run_sql(
            services,
            "SELECT actor_type, actor_label FROM audit_event WHERE action = 'advocate:joined'",
        )
        assert [tuple(r) for r in joined] == [("advocate", "Sam Lee")]
        assert client.get("/api/v1/me/advocate-invites").json() == []

    @pytest.mark.parametrize("problem", ["wrong", "used", "cancelled", "expired", "short"])
    def test_bad_codes_are_refused_and_nothing_is_made(
        self, client: TestClient, adv: TestClient, services: Services, young: str, problem: str
    ) -> None:
        made = invite(client, young)
        code = made["code"]
        advocates_before = 0
        if problem == "wrong":
            code = "ABCD-EFGH-JKMN-PQRS"
        elif problem == "short":
            code = code[:9]
        elif problem == "used":
            assert advocate_sign_up(adv, code, email="first@example.org").status_code == 303
            adv.cookies.clear()
            advocates_before = 1
        elif problem == "cancelled":
            client.delete(
                f"/api/v1/me/advocate-invites/{made['id']}", headers={"X-CSRF-Token": young}
            )
        else:
            run_sql(
                services,
                "UPDATE advocate_invite SET expires_at = :past",
                past=db_time(services, utcnow() - timedelta(seconds=1)),
            )
        refused = advocate_sign_up(adv, code)
        assert refused.status_code == 422 and REFUSED_CODE in refused.text
        assert 'name="code"' in refused.text and "Sam Lee" in refused.text
        assert count(services, "advocate") == advocates_before
        assert count(services, "advocate_link") == advocates_before
        assert "storykeep_staff" not in adv.cookies

    @pytest.mark.parametrize(
        ("field", "value", "says"),
        [
            ("email", "not-an-email", "Please give an email address"),
            ("password", "short", "at least 8 characters"),
            ("name", "   ", "Your name needs"),
        ],
    )
    def test_bad_input_is_refused(
        self, client: TestClient, adv: TestClient, services: Services, young: str,
        field: str, value: str, says: str,
    ) -> None:  # fmt: skip
        code = invite(client, young)["code"]
        refused = advocate_sign_up(adv, code, **{field: value})
        assert refused.status_code == 422 and says in refused.text
        assert count(services, "advocate") == 0
        assert count(services, "advocate_invite WHERE used_at IS NULL") == 1

    def test_email_already_used(
        self, client: TestClient, adv: TestClient, services: Services, young: str
    ) -> None:
        advocate_sign_up(adv, invite(client, young)["code"])
        adv.cookies.clear()
        second = invite(client, young)["code"]
        refused = advocate_sign_up(adv, second, email=ADVOCATE_EMAIL.upper())
        assert refused.status_code == 422 and "already an account" in refused.text
        assert count(services, "advocate") == 1
        assert count(services, "advocate_invite WHERE used_at IS NULL") == 1

    def test_csrf_needed(
        self, client: TestClient, adv: TestClient, services: Services, young: str
    ) -> None:
        code = invite(client, young)["code"]
        adv.get("/advocate/signup")
        refused = adv.post(
            "/advocate/signup",
            data={"name": "Sam", "email": ADVOCATE_EMAIL, "password": PASSWORD, "code": code},
        )
        assert refused.status_code == 403
        wrong = adv.post(
            "/advocate/signup",
            data={
                "name": "Sam", "email": ADVOCATE_EMAIL, "password": PASSWORD, "code": code,
                "csrf_token": "forged",
            },
        )  # fmt: skip
        assert wrong.status_code == 403
        assert count(services, "advocate") == 0

    def test_form_labels(self, adv: TestClient) -> None:
        page = adv.get("/advocate/signup")
        for label in ("Your name", "Email", "Password", "Invite code", "Create account"):
            assert f">{label}<" in page.text


class TestSignIn:
    def test_sign_out_and_in(self, client: TestClient, adv: TestClient, young: str) -> None:
        advocate_sign_up(adv, invite(client, young)["code"])
        home = adv.get("/advocate")
        assert adv.post("/advocate/signout", data={}).status_code == 403
        out = adv.post(
            "/advocate/signout", data={"csrf_token": form_token(home)}, follow_redirects=False
        )
        assert out.status_code == 303 and out.headers["location"] == "/advocate/signin"
        gone = adv.get("/advocate", follow_redirects=False)
        assert gone.status_code == 303 and gone.headers["location"] == "/advocate/signin"
        page = adv.get("/advocate/signin")
        for label in ("Email", "Password", "Sign in"):
            assert f">{label}<" in page.text
        back = advocate_sign_in(adv, "SAM.LEE@example.org", PASSWORD)
        assert back.status_code == 303 and back.headers["location"] == "/advocate"
        assert "alex" in adv.get("/advocate").text

    def test_one_message_for_every_failure(
        self, client: TestClient, adv: TestClient, young: str
    ) -> None:
        advocate_sign_up(adv, invite(client, young)["code"])
        adv.cookies.clear()
        wrong_password = advocate_sign_in(adv, ADVOCATE_EMAIL, "not the password")
        unknown = advocate_sign_in(adv, "nobody@example.org", PASSWORD)
        for failed in (wrong_password, unknown):
            assert failed.status_code == 401 and SIGN_IN_FAILED in failed.text
            assert "storykeep_staff" not in failed.headers.get("set-cookie", "")

    def test_throttled_per_account(
        self, client: TestClient, adv: TestClient, services: Services, young: str
    ) -> None:
        advocate_sign_up(adv, invite(client, young)["code"])
        adv.cookies.clear()
        for _ in range(services.settings.login_max_failures_per_account):
            assert advocate_sign_in(adv, ADVOCATE_EMAIL, "guess-guess").status_code == 401
        blocked = advocate_sign_in(adv, ADVOCATE_EMAIL, PASSWORD)
        assert blocked.status_code == 429 and "Too many tries" in blocked.text
        assert "storykeep_staff" not in adv.cookies

    def test_csrf_needed(self, client: TestClient, adv: TestClient, young: str) -> None:
        advocate_sign_up(adv, invite(client, young)["code"])
        adv.cookies.clear()
        adv.get("/advocate/signin")
        refused = adv.post("/advocate/signin", data={"email": ADVOCATE_EMAIL, "password": PASSWORD})
        assert refused.status_code == 403 and "storykeep_staff" not in adv.cookies

    def test_a_disabled_advocate_is_signed_out(
        self, client: TestClient, adv: TestClient, services: Services, young: str
    ) -> None:
        advocate_sign_up(adv, invite(client, young)["code"])
        run_sql(services, "UPDATE advocate SET disabled_at = created_at")
        assert adv.get("/advocate", follow_redirects=False).status_code == 303
        adv.cookies.clear()
        assert advocate_sign_in(adv, ADVOCATE_EMAIL, PASSWORD).status_code == 401


class TestAccept:
    def test_a_second_young_person(
        self, client: TestClient, adv: TestClient, services: Services, young: str
    ) -> None:
        advocate_sign_up(adv, invite(client, young)["code"])
        other = sign_up(client, "robin")
        code = invite(client, other, can_stop_sharing=True)["code"]
        page = adv.get("/advocate/accept")
        assert adv.post("/advocate/accept", data={"code": code}).status_code == 403
        added = adv.post(
            "/advocate/accept", data={"code": code, "csrf_token": form_token(page)},
            follow_redirects=False,
        )  # fmt: skip
        assert added.status_code == 303
        assert len(link_ids(adv)) == 2
        home = adv.get("/advocate").text
        assert "alex" in home and "robin" in home
        reused = adv.post("/advocate/accept", data={"code": code, "csrf_token": form_token(page)})
        assert reused.status_code == 422 and REFUSED_CODE in reused.text
        assert count(services, "advocate_link") == 2

    def test_same_young_person_twice(
        self, client: TestClient, adv: TestClient, services: Services, young: str
    ) -> None:
        advocate_sign_up(adv, invite(client, young)["code"])
        second = invite(client, young, can_stop_sharing=True)["code"]
        page = adv.get("/advocate/accept")
        token = form_token(page)
        refused = adv.post("/advocate/accept", data={"code": second, "csrf_token": token})
        assert refused.status_code == 422 and "already help" in refused.text
        assert count(services, "advocate_link") == 1
        assert count(services, "advocate_invite WHERE used_at IS NULL") == 1


class TestKeptApart:
    def test_young_persons_cookie_cannot_open_advocate_pages(
        self, client: TestClient, young: str
    ) -> None:
        for path in ("/advocate", "/advocate/accept", f"/advocate/people/{'0' * 32}"):
            page = client.get(path, follow_redirects=False)
            assert page.status_code == 303 and page.headers["location"] == "/advocate/signin"

    def test_advocate_cookie_cannot_open_young_persons_pages(
        self, client: TestClient, adv: TestClient, young: str
    ) -> None:
        advocate_sign_up(adv, invite(client, young)["code"])
        for path in ("/my-advocate", "/story", "/records"):
            page = adv.get(path, follow_redirects=False)
            assert page.status_code == 303 and page.headers["location"].startswith("/signin")
        for path in ("/api/v1/me/advocates", "/api/v1/me/advocate-invites", "/api/v1/me"):
            assert adv.get(path).status_code == 401
