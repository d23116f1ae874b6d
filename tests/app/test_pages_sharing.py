"""The young person's sharing pages, driven as a browser without JavaScript would: requests
(Yes, Change, No), who can see my story (stop sharing) and connection codes."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from app.container import Services
from tests.app.test_api import make_session_old
from tests.app.test_pages import form_token, page_sign_up
from tests.conftest import PASSWORD, add_record, run_sql
from tests.grants.kit import AgencyClient, agency_client, decline_reason
from tests.vault.test_storage import database_text
from vault.db_types import utcnow
from vault.errors import IntegrityFailure

# Words only the young person wrote, to look for in the database.
REASON = "Not now, my gran is in hospital qz7"


@pytest.fixture
def school(client: TestClient, services: Services) -> AgencyClient:
    return agency_client(client, services)


@pytest.fixture
def token(client: TestClient, services: Services) -> str:
    """alex, signed in through the pages, with an education and a health record."""
    page = page_sign_up(client, "alex")
    add_record(services, "alex", category="education", title="School report, June")
    add_record(services, "alex", category="health", title="Check-up")
    return form_token(page)


@pytest.fixture
def other(app: Any) -> Iterator[TestClient]:
    """A second browser, for sam."""
    with TestClient(app, base_url="https://testserver") as browser:
        page_sign_up(browser, "sam")
        yield browser


def code_from_page(client: TestClient, token: str) -> str:
    made = client.post("/connect", data={"csrf_token": token})
    assert made.status_code == 200
    match = re.search(r'<p class="big-code">([0-9A-Z-]+)</p>', made.text)
    assert match, "the new code is shown large"
    return match.group(1)


def ask(client: TestClient, school: AgencyClient, token: str, **details: Any) -> dict[str, Any]:
    """An agency asks, with a code made on the connect page. Returns the pending request."""
    asked = school.ask(code_from_page(client, token), **details)
    assert asked.status_code == 200, asked.text
    pending = [r for r in client.get("/api/v1/me/requests").json() if r["status"] == "pending"]
    assert len(pending) == 1
    return dict(pending[0], auth_req_id=asked.json()["auth_req_id"])


def request_status(client: TestClient, request_id: str) -> str:
    found = [r for r in client.get("/api/v1/me/requests").json() if r["id"] == request_id]
    return str(found[0]["status"])


def grants(client: TestClient) -> list[dict[str, Any]]:
    return list(client.get("/api/v1/me/grants").json())


def say_yes(client: TestClient, token: str, request_id: str) -> Response:
    return client.post(f"/requests/{request_id}/yes", data={"csrf_token": token})


def button_row(page: str) -> list[str]:
    row = re.search(r'<div class="button-row">(.*?)</div>', page, re.S)
    assert row, "the card has a row of buttons"
    return re.findall(r'<(?:button|a) [^>]*class="([^"]*)"', row.group(1))


class TestRequestCards:
    def test_card_says_who_what_why_and_how_long(
        self, client: TestClient, school: AgencyClient, token: str
    ) -> None:
        ask(client, school, token, categories=["education", "health"], days=30)
        page = client.get("/requests")
        assert page.status_code == 200
        text = page.text
        assert "Jo Bloggs from Example High School wants to see some of your things" in text
        assert "guidance teacher" in text
        assert "To plan support at school." in text
        assert "<li>School and learning</li>" in text and "<li>Health</li>" in text
        assert "30 days. That is until" in text
        assert "No. They could only look." in text

    def test_yes_change_and_no_are_equally_prominent(
        self, client: TestClient, school: AgencyClient, token: str
    ) -> None:
        ask(client, school, token)
        page = client.get("/requests").text
        assert button_row(page) == ["button", "button", "button"]
        labels = re.findall(r">(Yes|Change|No)<span", page)
        assert labels == ["Yes", "Change", "No"]

    def test_yes_approves_as_asked(
        self, client: TestClient, school: AgencyClient, token: str
    ) -> None:
        asked = ask(client, school, token, categories=["education", "health"])
        done = say_yes(client, token, asked["id"])
        assert done.status_code == 200 and str(done.url).endswith("/sharing?done=yes")
        assert "You said yes." in done.text
        assert request_status(client, asked["id"]) == "approved"
        [grant] = grants(client)
        assert grant["categories"] == ["education", "health"] and grant["active"]
        assert school.poll(asked["auth_req_id"]).status_code == 200
        past = client.get("/requests").text
        assert "No one is asking right now." in past and "You said yes." in past

    def test_yes_with_an_old_sign_in_asks_for_the_password_on_the_page(
        self, client: TestClient, services: Services, school: AgencyClient, token: str
    ) -> None:
        asked = ask(client, school, token)
        make_session_old(services)
        first = say_yes(client, token, asked["id"])
        assert first.status_code == 401 and 'name="password"' in first.text
        assert "type your password" in first.text
        wrong = client.post(
            f"/requests/{asked['id']}/yes", data={"csrf_token": token, "password": "nope-nope"}
        )
        assert wrong.status_code == 401 and "Nothing changed." in wrong.text
        assert request_status(client, asked["id"]) == "pending" and grants(client) == []
        right = client.post(
            f"/requests/{asked['id']}/yes", data={"csrf_token": token, "password": PASSWORD}
        )
        assert right.status_code == 200 and "You said yes." in right.text
        assert request_status(client, asked["id"]) == "approved"

    def test_answered_request_cannot_be_answered_again(
        self, client: TestClient, school: AgencyClient, token: str
    ) -> None:
        asked = ask(client, school, token)
        say_yes(client, token, asked["id"])
        again = client.post(f"/requests/{asked['id']}/no", data={"csrf_token": token})
        assert again.status_code == 409
        assert client.get(f"/requests/{asked['id']}/change").status_code == 409
        assert request_status(client, asked["id"]) == "approved"


class TestChange:
    def test_only_asked_categories_are_offered_and_ticked(
        self, client: TestClient, school: AgencyClient, token: str
    ) -> None:
        asked = ask(client, school, token, categories=["education", "health"], days=30)
        page = client.get(f"/requests/{asked['id']}/change").text
        boxes = re.findall(r'<input type="checkbox" name="categories" value="(\w+)" checked>', page)
        assert boxes == ["education", "health"]
        choices = re.findall(r'<option value="(\w+)"', page)
        assert choices == ["asked", "1", "7", "14"]  # never as long as, or longer than, asked
        assert 'name="password"' not in page  # signed in just now

    def test_narrow_categories_and_time(
        self, client: TestClient, school: AgencyClient, token: str
    ) -> None:
        asked = ask(client, school, token, categories=["education", "health"], days=30)
        done = client.post(
            f"/requests/{asked['id']}/change",
            data={"csrf_token": token, "categories": ["education"], "until": "7"},
        )
        assert done.status_code == 200 and "You said yes." in done.text
        [grant] = grants(client)
        assert grant["categories"] == ["education"]
        ends = datetime.fromisoformat(grant["expires_at"]) - utcnow()
        assert timedelta(days=6, hours=23) < ends <= timedelta(days=7)
        assert "Ends in 7 days" in done.text

    def test_adding_a_category_is_refused_and_changes_nothing(
        self, client: TestClient, school: AgencyClient, token: str
    ) -> None:
        asked = ask(client, school, token, categories=["education"])
        refused = client.post(
            f"/requests/{asked['id']}/change",
            data={"csrf_token": token, "categories": ["education", "health"], "until": "asked"},
        )
        assert refused.status_code == 422
        assert "You can only keep some of the things they asked for, not add more." in (
            refused.text
        )
        assert request_status(client, asked["id"]) == "pending" and grants(client) == []

    @pytest.mark.parametrize(
        ("form", "message"),
        [
            ({"until": "asked"}, "Tick at least one thing"),
            ({"categories": ["education"], "until": "365"}, "pick one of the choices"),
            ({"categories": ["education"], "until": "30"}, "pick one of the choices"),
        ],
    )
    def test_nothing_ticked_or_a_longer_time_is_refused(
        self,
        client: TestClient,
        school: AgencyClient,
        token: str,
        form: dict[str, Any],
        message: str,
    ) -> None:
        asked = ask(client, school, token, days=30)
        refused = client.post(f"/requests/{asked['id']}/change", data={"csrf_token": token, **form})
        assert refused.status_code == 422 and message in refused.text
        assert request_status(client, asked["id"]) == "pending" and grants(client) == []

    def test_old_sign_in_shows_a_password_box_on_the_change_page(
        self, client: TestClient, services: Services, school: AgencyClient, token: str
    ) -> None:
        asked = ask(client, school, token, categories=["education", "health"])
        make_session_old(services)
        url = f"/requests/{asked['id']}/change"
        assert 'name="password"' in client.get(url).text
        form = {"csrf_token": token, "categories": ["health"], "until": "asked"}
        without = client.post(url, data=form)
        assert without.status_code == 401 and request_status(client, asked["id"]) == "pending"
        assert re.search(r'value="education">', without.text)  # unticked stays unticked
        done = client.post(url, data={**form, "password": PASSWORD})
        assert done.status_code == 200
        assert grants(client)[0]["categories"] == ["health"]


class TestNo:
    def test_no_goes_through_a_confirm_page_with_an_optional_reason(
        self, client: TestClient, services: Services, school: AgencyClient, token: str
    ) -> None:
        asked = ask(client, school, token)
        confirm = client.get(f"/requests/{asked['id']}/no")
        assert confirm.status_code == 200 and "Say no to Jo Bloggs?" in confirm.text
        assert request_status(client, asked["id"]) == "pending"
        done = client.post(
            f"/requests/{asked['id']}/no", data={"csrf_token": token, "reason": REASON}
        )
        assert done.status_code == 200 and "You said no." in done.text
        assert request_status(client, asked["id"]) == "declined"
        assert school.poll(asked["auth_req_id"]).json()["error"] == "access_denied"

    def test_the_reason_is_sealed_and_goes_with_erasure(
        self, client: TestClient, services: Services, school: AgencyClient, token: str
    ) -> None:
        """SECURITY.md: no plaintext content in the database, and erasure leaves nothing
        readable. The reason is the young person's own words about their life."""
        asked = ask(client, school, token)
        client.post(f"/requests/{asked['id']}/no", data={"csrf_token": token, "reason": REASON})
        assert request_status(client, asked["id"]) == "declined"
        assert REASON not in database_text(services)
        assert decline_reason(services, asked["id"]) == REASON  # kept, not lost
        done = client.post("/account/delete", data={"password": PASSWORD, "csrf_token": token})
        assert done.url.path == "/signin"
        assert run_sql(services, "SELECT erased_at FROM vault")[0][0] is not None
        # The request stays (the agency's counts need it); its reason cannot be opened.
        assert run_sql(services, "SELECT decline_reason_sealed FROM access_request")[0][0]
        assert REASON not in database_text(services)
        with pytest.raises(IntegrityFailure):
            decline_reason(services, asked["id"])

    def test_no_without_a_reason(
        self, client: TestClient, services: Services, school: AgencyClient, token: str
    ) -> None:
        asked = ask(client, school, token)
        client.post(f"/requests/{asked['id']}/no", data={"csrf_token": token, "reason": ""})
        assert request_status(client, asked["id"]) == "declined"
        assert run_sql(services, "SELECT decline_reason_sealed FROM access_request")[0][0] is None
        assert decline_reason(services, asked["id"]) is None


def read_records(client: TestClient, school: AgencyClient, auth_req_id: str) -> Response:
    tokens = school.poll(auth_req_id).json()
    return client.get(
        f"/api/v1/vaults/{tokens['vault_handle']}/records",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )


class TestStopSharing:
    def test_countdown_last_looked_and_stop(
        self, client: TestClient, school: AgencyClient, token: str
    ) -> None:
        asked = ask(client, school, token, days=30)
        say_yes(client, token, asked["id"])
        page = client.get("/sharing").text
        assert "Ends in 30 days" in page and "Not used yet" in page
        tokens = school.poll(asked["auth_req_id"]).json()
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        url = f"/api/v1/vaults/{tokens['vault_handle']}/records"
        assert client.get(url, headers=headers).status_code == 200
        page = client.get("/sharing").text
        assert "Last looked: " in page and "Not used yet" not in page
        [grant] = grants(client)
        stop = re.search(r'href="(/sharing/[0-9a-f-]+/stop)"', page)
        assert stop and stop.group(1) == f"/sharing/{grant['id']}/stop"
        confirm = client.get(stop.group(1))
        assert "They will not be able to see your things from now on." in confirm.text
        assert "What they already saw, they may have kept." in confirm.text
        assert grants(client)[0]["active"]  # the confirm page changes nothing
        done = client.post(stop.group(1), data={"csrf_token": form_token(confirm)})
        assert done.status_code == 200 and "You stopped sharing." in done.text
        assert "Nobody can see your things right now." in done.text
        assert grants(client)[0]["active"] is False
        assert client.get(url, headers=headers).status_code == 401
        assert client.post(stop.group(1), data={"csrf_token": token}).status_code == 409


class TestConnect:
    def test_make_show_and_cancel_codes(self, client: TestClient, token: str) -> None:
        empty = client.get("/connect")
        assert empty.status_code == 200 and "You have no open codes." in empty.text
        code = code_from_page(client, token)
        page = client.get("/connect").text
        assert code in page and "Works until" in page
        shown = client.post("/connect", data={"csrf_token": token})
        qr = re.search(r'<img class="qr" src="([^"]+)" alt="QR code for your code">', shown.text)
        assert qr
        image = client.get(qr.group(1))
        assert image.status_code == 200 and image.headers["content-type"] == "image/svg+xml"
        codes = client.get("/api/v1/me/connection-codes").json()
        assert len(codes) == 2
        first = next(c for c in codes if c["code"] == code)
        done = client.post(f"/connect/{first['id']}/cancel", data={"csrf_token": token})
        assert done.status_code == 200 and "That code will not work now." in done.text
        left = [c["code"] for c in client.get("/api/v1/me/connection-codes").json()]
        assert len(left) == 1 and code not in left
        assert code not in done.text


class TestAttacks:
    def test_forms_without_csrf_change_nothing(
        self, client: TestClient, services: Services, school: AgencyClient, token: str
    ) -> None:
        asked = ask(client, school, token)
        for path, form in (
            (f"/requests/{asked['id']}/yes", {}),
            (f"/requests/{asked['id']}/change", {"categories": ["education"], "until": "asked"}),
            (f"/requests/{asked['id']}/no", {}),
            ("/connect", {}),
        ):
            assert client.post(path, data=form).status_code == 403, path
            assert client.post(path, data={**form, "csrf_token": "x" * 64}).status_code == 403
        assert request_status(client, asked["id"]) == "pending"
        assert client.get("/api/v1/me/connection-codes").json() == []  # ask() used its code
        say_yes(client, token, asked["id"])
        grant_id = grants(client)[0]["id"]
        assert client.post(f"/sharing/{grant_id}/stop").status_code == 403
        assert grants(client)[0]["active"]
        code_from_page(client, token)
        code_id = client.get("/api/v1/me/connection-codes").json()[0]["id"]
        assert client.post(f"/connect/{code_id}/cancel").status_code == 403
        assert len(client.get("/api/v1/me/connection-codes").json()) == 1

    def test_another_persons_ids_are_not_found_and_change_nothing(
        self, client: TestClient, other: TestClient, school: AgencyClient, token: str
    ) -> None:
        first = ask(client, school, token)
        say_yes(client, token, first["id"])
        grant_id = grants(client)[0]["id"]
        pending = ask(client, school, token)
        code_from_page(client, token)
        code_id = client.get("/api/v1/me/connection-codes").json()[0]["id"]
        sams = form_token(other.get("/story"))
        for path in (
            f"/requests/{pending['id']}/change",
            f"/requests/{pending['id']}/no",
            f"/sharing/{grant_id}/stop",
        ):
            assert other.get(path).status_code == 404, path
        for path, form in (
            (f"/requests/{pending['id']}/yes", {}),
            (f"/requests/{pending['id']}/change", {"categories": ["education"]}),
            (f"/requests/{pending['id']}/no", {}),
            (f"/sharing/{grant_id}/stop", {}),
            (f"/connect/{code_id}/cancel", {}),
        ):
            assert other.post(path, data={**form, "csrf_token": sams}).status_code == 404, path
        assert request_status(client, pending["id"]) == "pending"
        assert grants(client)[0]["active"]
        assert len(client.get("/api/v1/me/connection-codes").json()) == 1
        assert "Jo Bloggs" not in other.get("/requests").text
        assert "Jo Bloggs" not in other.get("/sharing").text

    def test_unknown_ids(self, client: TestClient, token: str) -> None:
        missing = uuid.uuid4()
        assert client.get(f"/requests/{missing}/change").status_code == 404
        assert client.get(f"/sharing/{missing}/stop").status_code == 404
        assert client.get("/requests/not-an-id/change").status_code == 422
