"""A young person's notification choices, on the page and in the JSON API: the address is
optional, checked, sealed at rest and only ever shown masked; bad input and a missing
CSRF token change nothing; every change is in their audit log."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.container import Services
from tests.app.test_pages import form_token, page_sign_up
from tests.app.test_pages_young_person import check_page, grade
from tests.conftest import run_sql, sign_up

URL = "/api/v1/me/notifications"
ADDRESS = "sam.private@example.org"


def _state(services: Services) -> list[tuple[object, ...]]:
    return [tuple(r) for r in run_sql(services, "SELECT * FROM notification_preference")]


class TestJson:
    def test_defaults_then_set_and_read_back_masked(
        self, client: TestClient, services: Services
    ) -> None:
        csrf = sign_up(client, "sam")
        assert client.get(URL).json() == {"email": None, "access_mode": "daily"}
        put = client.put(URL, json={"email": ADDRESS, "access_mode": "immediate"},
                         headers={"X-CSRF-Token": csrf})  # fmt: skip
        assert put.status_code == 200, put.text
        assert put.json() == {"email": "s***@example.org", "access_mode": "immediate"}
        assert client.get(URL).json() == put.json()
        assert ADDRESS not in client.get(URL).text
        [row] = run_sql(services, "SELECT email_sealed, access_mode FROM notification_preference")
        assert row[1] == "immediate" and b"sam.private" not in bytes(row[0])  # sealed

        # Leaving email out keeps it; null removes it.
        kept = client.put(URL, json={"access_mode": "daily"}, headers={"X-CSRF-Token": csrf})
        assert kept.json() == {"email": "s***@example.org", "access_mode": "daily"}
        gone = client.put(URL, json={"email": None, "access_mode": "daily"},
                          headers={"X-CSRF-Token": csrf})  # fmt: skip
        assert gone.json() == {"email": None, "access_mode": "daily"}
        actions = [e["action"] for e in client.get("/api/v1/me/audit").json()["events"]]
        assert actions.count("notifications:changed") == 3
        # The log names the change, never the address.
        assert not run_sql(services, "SELECT 1 FROM audit_event WHERE object_id LIKE '%example%'")

    @pytest.mark.parametrize(
        "body",
        [
            {"email": "not an email", "access_mode": "daily"},
            {"email": "a@b", "access_mode": "daily"},
            {"email": "sam@example.org\r\nBcc: x@evil.example", "access_mode": "daily"},
            {"email": "sam@example.org, x@evil.example", "access_mode": "daily"},
            {"email": "x" * 250 + "@example.org", "access_mode": "daily"},
            {"email": ADDRESS, "access_mode": "hourly"},
            {"email": ADDRESS},
        ],
    )
    def test_bad_input_is_refused_and_changes_nothing(
        self, client: TestClient, services: Services, body: dict[str, str]
    ) -> None:
        csrf = sign_up(client, "sam")
        client.put(URL, json={"email": "first@example.org", "access_mode": "immediate"},
                   headers={"X-CSRF-Token": csrf})  # fmt: skip
        before = _state(services)
        events = run_sql(services, "SELECT count(*) FROM audit_event")[0][0]
        bad = client.put(URL, json=body, headers={"X-CSRF-Token": csrf})
        assert bad.status_code == 422, bad.text
        assert _state(services) == before
        assert run_sql(services, "SELECT count(*) FROM audit_event")[0][0] == events
        assert client.get(URL).json() == {"email": "f***@example.org", "access_mode": "immediate"}

    def test_needs_csrf_and_a_session(self, client: TestClient, services: Services) -> None:
        sign_up(client, "sam")
        refused = client.put(URL, json={"email": ADDRESS, "access_mode": "immediate"})
        assert refused.status_code == 403
        assert _state(services) == []
        client.cookies.clear()
        assert client.get(URL).status_code == 401


class TestPage:
    def test_choose_on_the_page(self, client: TestClient, services: Services) -> None:
        token = form_token(page_sign_up(client, "sam"))
        account = client.get("/account")
        assert 'href="/account/notifications"' in account.text
        page = client.get("/account/notifications")
        assert page.status_code == 200 and "You have not given us an email." in page.text
        saved = client.post("/account/notifications", data={
            "csrf_token": token, "email": ADDRESS, "access_mode": "immediate"})  # fmt: skip
        assert saved.status_code == 200 and "/account/notifications?done=saved" in str(saved.url)
        assert "s***@example.org" in saved.text and ADDRESS not in saved.text
        assert 'value="immediate" checked' in saved.text
        # An empty box keeps the address.
        again = client.post("/account/notifications", data={
            "csrf_token": token, "email": "", "access_mode": "daily"})  # fmt: skip
        assert "s***@example.org" in again.text and 'value="daily" checked' in again.text
        removed = client.post("/account/notifications/email/remove", data={"csrf_token": token})
        assert "We took your email away." in removed.text
        assert "You have not given us an email." in removed.text
        [row] = run_sql(services, "SELECT email_sealed, access_mode FROM notification_preference")
        assert row[0] is None and row[1] == "daily"

    def test_bad_email_shows_the_form_again_and_changes_nothing(
        self, client: TestClient, services: Services
    ) -> None:
        token = form_token(page_sign_up(client, "sam"))
        client.post("/account/notifications", data={
            "csrf_token": token, "email": ADDRESS, "access_mode": "immediate"})  # fmt: skip
        before = _state(services)
        bad = client.post("/account/notifications", data={
            "csrf_token": token, "email": "sam@@example", "access_mode": "daily"})  # fmt: skip
        assert bad.status_code == 422
        assert "does not look like an email address" in bad.text
        assert "Nothing was changed." in bad.text
        assert "sam@@example" not in bad.text  # nothing reflected
        no_mode = client.post("/account/notifications", data={"csrf_token": token})
        assert no_mode.status_code == 422
        assert _state(services) == before

    def test_forms_without_csrf_change_nothing(
        self, client: TestClient, services: Services
    ) -> None:
        token = form_token(page_sign_up(client, "sam"))
        client.post("/account/notifications", data={
            "csrf_token": token, "email": ADDRESS, "access_mode": "immediate"})  # fmt: skip
        before = _state(services)
        for path, data in (
            ("/account/notifications", {"email": "x@example.org", "access_mode": "daily"}),
            ("/account/notifications", {"csrf_token": "forged", "access_mode": "daily"}),
            ("/account/notifications/email/remove", {}),
        ):
            assert client.post(path, data=data).status_code == 403, path
        assert _state(services) == before

    def test_page_passes_the_self_check_in_plain_words(
        self, client: TestClient, services: Services
    ) -> None:
        token = form_token(page_sign_up(client, "sam"))
        for _ in range(2):  # without, then with an address
            parser = check_page(client, "/account/notifications")
            assert grade(parser) <= 5, parser.main_text
            client.post("/account/notifications", data={
                "csrf_token": token, "email": ADDRESS, "access_mode": "daily"})  # fmt: skip
