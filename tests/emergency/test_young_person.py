"""What the young person and their advocate see of emergency access: labelled "Emergency
access" with what it means, never "you said yes", in plain words (grade 5 or below), and
in "who has looked" as plain sentences."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.container import Services
from tests.advocates.helpers import advocate_sign_up, invite, link_ids
from tests.app.test_pages_young_person import check_page, grade
from tests.emergency.kit import (
    COUNCIL,
    MARKER,
    REASON,
    Connected,
    bearer,
    connect,
    council_client,
    open_emergency,
)
from tests.grants.kit import AgencyClient

EXPLAINED = (
    "A worker opened some of your things without asking you first, because they were "
    "worried about your safety. This is allowed by law for a short time. Someone else will "
    "check it was right."
)


@pytest.fixture
def council(client: TestClient, services: Services) -> AgencyClient:
    return council_client(client, services)


@pytest.fixture
def alex(client: TestClient, services: Services, council: AgencyClient) -> Connected:
    return connect(client, services, council)


@pytest.fixture
def opened(client: TestClient, council: AgencyClient, alex: Connected) -> dict[str, Any]:
    tokens = open_emergency(council, alex, categories=["care_plan", "health"])
    read = client.get(f"/api/v1/vaults/{alex.handle}/records", headers=bearer(tokens))
    assert read.status_code == 200
    return tokens


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


class TestWhoCanSee:
    def test_labelled_emergency_access_with_what_it_means(
        self, client: TestClient, opened: dict[str, Any]
    ) -> None:
        page = client.get("/sharing")
        assert page.status_code == 200
        words = text_of(page.text)
        assert "Emergency access: Ali Khan from Example Council" in words
        assert EXPLAINED in words and "Childline" in words
        assert "Child protection" in words and "child_protection" not in words.lower()
        # The consented grant is still shown the ordinary way, with its stop button.
        assert words.count("Stop sharing") == 1
        assert f'href="/sharing/{opened["grant_id"]}' not in page.text.replace("-", "")

    def test_plain_words_and_page_rules(self, client: TestClient, opened: dict[str, Any]) -> None:
        for path in ("/sharing", "/requests", "/audit"):
            assert grade(check_page(client, path)) <= 5, path

    def test_requests_page_never_says_you_said_yes_to_it(
        self, client: TestClient, opened: dict[str, Any]
    ) -> None:
        words = text_of(client.get("/requests").text)
        assert "You said yes." in words  # the consented one
        assert words.count("You said yes.") == 1
        assert "Emergency access: Ali Khan (Example Council) opened some of your things" in words

    def test_who_has_looked_reads_plainly(self, client: TestClient, opened: dict[str, Any]) -> None:
        words = text_of(client.get("/audit").text)
        assert ("Ali Khan (Example Council) used Emergency access and did not ask you at") in words
        assert f"Ali Khan (Example Council) read your 'Plan {MARKER}'" in words
        assert "in an emergency, to keep you safe" in words
        assert REASON not in words

    def test_json_trail_carries_the_tag(self, client: TestClient, opened: dict[str, Any]) -> None:
        events = client.get("/api/v1/me/audit").json()["events"]
        tagged = [e for e in events if e["grant_id"] == opened["grant_id"]]
        assert {e["purpose"] for e in tagged} == {"emergency_child_protection"}
        assert {e["action"] for e in tagged} >= {"emergency:opened", "record:read"}
        [first] = [e for e in tagged if e["action"] == "emergency:opened"]
        assert "emergency access" in first["description"]


class TestAdvocate:
    def test_advocate_sees_it_labelled_and_cannot_stop_it(
        self, client: TestClient, services: Services, council: AgencyClient, alex: Connected
    ) -> None:
        code = invite(client, alex.csrf, can_stop_sharing=True)["code"]
        with TestClient(client.app, base_url="https://testserver") as adv:
            assert advocate_sign_up(adv, code).status_code == 303
            open_emergency(council, alex)
            [link] = link_ids(adv)
            page = adv.get(f"/advocate/people/{link}")
            assert page.status_code == 200
            words = text_of(page.text)
            assert "Emergency access. A worker opened some of alex's things without asking" in words
            assert "Emergency access, opened" in words
            assert "used emergency access and did not ask first" in words
            # One stop button: the consented grant's, never the emergency one's.
            assert words.count("Stop sharing") == 1
            assert MARKER not in page.text and REASON not in page.text
            assert COUNCIL in words


class TestCannotBeStoppedByConsent:
    """Emergency access does not rest on consent, so it cannot be withdrawn like
    consent: it ends at its time and is reviewed (UK GDPR Art. 6(1)(e), 7(3))."""

    def test_young_person_cannot_stop_it_and_it_keeps_working(
        self, client: TestClient, alex: Connected, opened: dict[str, Any]
    ) -> None:
        grants = client.get("/api/v1/me/grants").json()
        [emergency] = [g for g in grants if g["lawful_basis"] != "consent"]
        refused = client.post(
            f"/api/v1/me/grants/{emergency['id']}/revoke", headers={"X-CSRF-Token": alex.csrf}
        )
        assert refused.status_code == 403
        assert "Emergency access cannot be stopped here" in refused.json()["detail"]
        page = client.post(f"/sharing/{emergency['id']}/stop", data={"csrf_token": alex.csrf})
        assert page.status_code == 403
        still = client.get(f"/api/v1/vaults/{alex.handle}/records", headers=bearer(opened))
        assert still.status_code == 200

    def test_advocate_allowed_to_stop_sharing_still_cannot_stop_it(
        self, client: TestClient, council: AgencyClient, alex: Connected
    ) -> None:
        code = invite(client, alex.csrf, can_stop_sharing=True)["code"]
        with TestClient(client.app, base_url="https://testserver") as adv:
            assert advocate_sign_up(adv, code).status_code == 303
            tokens = open_emergency(council, alex)
            [link] = link_ids(adv)
            grants = client.get("/api/v1/me/grants").json()
            [emergency] = [g for g in grants if g["lawful_basis"] != "consent"]
            stop = f"/advocate/people/{link}/grants/{emergency['id']}/stop"
            assert adv.get(stop).status_code == 403
            token = re.search(r'name="csrf_token" value="([^"]+)"', adv.get("/advocate").text)
            assert token is not None
            assert adv.post(stop, data={"csrf_token": token.group(1)}).status_code == 403
            still = client.get(f"/api/v1/vaults/{alex.handle}/records", headers=bearer(tokens))
            assert still.status_code == 200
