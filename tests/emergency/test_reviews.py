"""Independent review, through the practitioner pages and the JSON API: only registered
reviewers (403 for others), never their own agency's cases (404), one review per case
(409), CSRF on every change, every reading of a case logged for the young person."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.container import Services
from tests.conftest import PASSWORD, run_sql
from tests.emergency.kit import (
    COUNCIL,
    REASON,
    Connected,
    ask_emergency,
    connect,
    council_client,
    db_time,
    emergency_id,
    open_emergency,
)
from tests.grants.kit import AgencyClient
from tests.practitioner.kit import add_agency, add_practitioner, csrf_of, staff_sign_in
from tests.test_cli import storykeep
from vault.db_types import utcnow

REVIEW_AGENCY = "Independent Review Service"
REVIEWER = "rev.iew@review.example.org"
NOTES = "Proportionate: the school's report met the threshold for sharing."


def add_reviewer(env: dict[str, str], email: str, agency: str) -> str:
    """The operator's command. Returns the new account's TOTP secret."""
    result = storykeep(env, "reviewer", "add", email, "--agency", agency, "--password-stdin",
                       stdin=PASSWORD + "\n")  # fmt: skip
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["totp_secret"])


@pytest.fixture
def council(client: TestClient, services: Services) -> AgencyClient:
    return council_client(client, services)


@pytest.fixture
def alex(client: TestClient, services: Services, council: AgencyClient) -> Connected:
    return connect(client, services, council)


@pytest.fixture
def case_id(services: Services, council: AgencyClient, alex: Connected) -> str:
    open_emergency(council, alex)
    return emergency_id(services)


@pytest.fixture
def worker(app: Any) -> Iterator[TestClient]:
    with TestClient(app, base_url="https://testserver") as browser:
        yield browser


@pytest.fixture
def reviewer(worker: TestClient, services: Services, env: dict[str, str]) -> str:
    """A reviewer from another agency, signed in on ``worker``. Returns the page CSRF."""
    add_agency(services, REVIEW_AGENCY, purposes=("oversight",))
    secret = add_reviewer(env, REVIEWER, REVIEW_AGENCY)
    return staff_sign_in(worker, services, secret, REVIEWER)


def review_actions(services: Services) -> list[str]:
    rows = run_sql(
        services, "SELECT action FROM audit_event WHERE action LIKE 'emergency:%' ORDER BY id"
    )
    return [r[0] for r in rows]


def reviewed(services: Services) -> list[Any]:
    return run_sql(services, "SELECT reviewed_at, review_outcome FROM emergency_access")


class TestPages:
    def test_reviewer_reads_the_case_and_reviews_it(
        self, client: TestClient, worker: TestClient, services: Services, council: AgencyClient,
        alex: Connected, case_id: str, reviewer: str,
    ) -> None:  # fmt: skip
        home = worker.get("/practitioner")
        assert 'href="/practitioner/reviews"' in home.text  # reviewers find their reviews
        listed = worker.get("/practitioner/reviews")
        assert listed.status_code == 200
        assert 'href="/practitioner/reviews"' in listed.text  # the nav link, for reviewers
        assert COUNCIL in listed.text and "Waiting" in listed.text
        assert "at risk of significant harm" in listed.text
        assert REASON not in listed.text  # no reasons in the list
        page = worker.get(f"/practitioner/reviews/{case_id}")
        assert page.status_code == 200
        assert REASON in page.text and "Ali Khan" in page.text and "Care plan" in page.text
        assert review_actions(services)[-1] == "emergency:case_read"  # the reading is logged
        saved = worker.post(
            f"/practitioner/reviews/{case_id}",
            data={"csrf_token": csrf_of(page.text), "outcome": "justified", "notes": NOTES},
            follow_redirects=False,
        )
        assert saved.status_code == 303, saved.text
        assert saved.headers["location"] == "/practitioner/reviews?done=1"
        after = worker.get("/practitioner/reviews?done=1")
        assert "Your review was saved" in after.text and "Justified" in after.text
        [(at, outcome)] = reviewed(services)
        assert at is not None and outcome == "justified"
        assert review_actions(services)[-1] == "emergency:reviewed"
        notes = json.dumps(run_sql(services, "SELECT * FROM emergency_access"), default=str)
        assert NOTES not in notes  # sealed
        # The young person sees it checked, in plain words, with who did it.
        trail = client.get("/audit").text
        assert f"({REVIEW_AGENCY}) checked if it was right" in trail
        # Reviewed: the agency may open emergency access again.
        assert ask_emergency(council, alex.handle).status_code == 200

    def test_missing_csrf_changes_nothing(
        self, worker: TestClient, services: Services, case_id: str, reviewer: str
    ) -> None:
        refused = worker.post(
            f"/practitioner/reviews/{case_id}", data={"outcome": "justified", "notes": NOTES}
        )
        assert refused.status_code == 403
        assert reviewed(services) == [(None, None)]

    @pytest.mark.parametrize(
        ("outcome", "notes", "says"),
        [
            ("justified", "too short", "10 to 4000"),
            ("maybe", NOTES, "outcome must be one of"),
            ("", NOTES, "outcome must be one of"),
        ],
    )
    def test_bad_review_is_shown_again_and_changes_nothing(
        self, worker: TestClient, services: Services, case_id: str, reviewer: str,
        outcome: str, notes: str, says: str,
    ) -> None:  # fmt: skip
        page = worker.get(f"/practitioner/reviews/{case_id}")
        refused = worker.post(
            f"/practitioner/reviews/{case_id}",
            data={"csrf_token": csrf_of(page.text), "outcome": outcome, "notes": notes},
        )
        assert refused.status_code == 422
        assert says in refused.text and 'role="alert"' in refused.text
        assert reviewed(services) == [(None, None)]
        assert "emergency:reviewed" not in review_actions(services)

    def test_double_review_is_409(
        self, worker: TestClient, services: Services, case_id: str, reviewer: str
    ) -> None:
        token = csrf_of(worker.get(f"/practitioner/reviews/{case_id}").text)
        form = {"csrf_token": token, "outcome": "not_justified", "notes": NOTES}
        first = worker.post(f"/practitioner/reviews/{case_id}", data=form, follow_redirects=False)
        assert first.status_code == 303
        again = worker.post(
            f"/practitioner/reviews/{case_id}", data={**form, "outcome": "justified"}
        )
        assert again.status_code == 409 and "already been reviewed" in again.text
        assert reviewed(services)[0][1] == "not_justified"

    def test_reviewer_from_the_same_agency_cannot_see_or_review(
        self, worker: TestClient, services: Services, env: dict[str, str], case_id: str
    ) -> None:
        secret = add_reviewer(env, "sam@council.example.org", COUNCIL)
        token = staff_sign_in(worker, services, secret, "sam@council.example.org")
        listed = worker.get("/practitioner/reviews")
        assert listed.status_code == 200 and "There is nothing to review" in listed.text
        assert worker.get(f"/practitioner/reviews/{case_id}").status_code == 404
        posted = worker.post(
            f"/practitioner/reviews/{case_id}",
            data={"csrf_token": token, "outcome": "justified", "notes": NOTES},
        )
        assert posted.status_code == 404
        assert reviewed(services) == [(None, None)]
        assert "emergency:case_read" not in review_actions(services)

    def test_a_practitioner_who_is_not_a_reviewer_gets_403(
        self, worker: TestClient, services: Services, case_id: str
    ) -> None:
        add_agency(services, REVIEW_AGENCY, purposes=("oversight",))
        secret = add_practitioner(services, "pat@review.example.org", REVIEW_AGENCY, "Pat Doe")
        assert secret is not None
        token = staff_sign_in(worker, services, secret, "pat@review.example.org")
        home = worker.get("/practitioner")
        assert 'href="/practitioner/reviews"' not in home.text
        assert worker.get("/practitioner/reviews").status_code == 403
        assert worker.get(f"/practitioner/reviews/{case_id}").status_code == 403
        posted = worker.post(
            f"/practitioner/reviews/{case_id}",
            data={"csrf_token": token, "outcome": "justified", "notes": NOTES},
        )
        assert posted.status_code == 403
        assert reviewed(services) == [(None, None)]

    def test_overdue_cases_are_flagged_to_the_reviewer(
        self, worker: TestClient, services: Services, case_id: str, reviewer: str
    ) -> None:
        assert "Overdue" not in worker.get("/practitioner/reviews").text
        old = db_time(services, utcnow() - timedelta(days=5, minutes=1))
        run_sql(services, "UPDATE emergency_access SET created_at = :t", t=old)
        assert "Overdue" in worker.get("/practitioner/reviews").text
        assert "This review is overdue" in worker.get(f"/practitioner/reviews/{case_id}").text
        assert worker.get("/api/v1/reviews").json()["cases"][0]["overdue"] is True

    def test_signed_out_goes_to_sign_in(self, worker: TestClient, case_id: str) -> None:
        response = worker.get("/practitioner/reviews", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/practitioner/signin"

    def test_page_rules(self, worker: TestClient, case_id: str, reviewer: str) -> None:
        from tests.app.test_pages_young_person import check_page

        for path in ("/practitioner/reviews", f"/practitioner/reviews/{case_id}"):
            check_page(worker, path)


class TestJson:
    def test_list_read_and_review(
        self, worker: TestClient, services: Services, council: AgencyClient, alex: Connected,
        case_id: str, reviewer: str,
    ) -> None:  # fmt: skip
        listed = worker.get("/api/v1/reviews")
        assert listed.status_code == 200
        body = listed.json()
        [case] = body["cases"]
        assert case["id"] == case_id and case["agency"] == COUNCIL
        assert case["reason"] is None and case["overdue"] is False
        assert case["categories"] == ["care_plan"] and case["reviewed_at"] is None
        one = worker.get(f"/api/v1/reviews/{case_id}")
        assert one.status_code == 200 and one.json()["reason"] == REASON
        url = f"/api/v1/reviews/{case_id}"
        review = {"outcome": "justified", "notes": NOTES}
        no_header = worker.post(url, json=review)
        assert no_header.status_code == 403 and no_header.json()["error"] == "csrf_failed"
        wrong = worker.post(url, json=review, headers={"X-CSRF-Token": "nope"})
        assert wrong.status_code == 403
        assert reviewed(services) == [(None, None)]
        headers = {"X-CSRF-Token": body["csrf_token"]}
        bad = worker.post(url, json={**review, "outcome": "fine"}, headers=headers)
        assert bad.status_code == 422
        done = worker.post(url, json=review, headers=headers)
        assert done.status_code == 200, done.text
        assert done.json()["outcome"] == "justified" and done.json()["reviewed_at"]
        again = worker.post(url, json=review, headers=headers)
        assert again.status_code == 409 and again.json()["error"] == "conflict"
        assert ask_emergency(council, alex.handle).status_code == 200

    def test_same_agency_404_and_non_reviewer_403(
        self, worker: TestClient, services: Services, env: dict[str, str], case_id: str
    ) -> None:
        secret = add_reviewer(env, "sam@council.example.org", COUNCIL)
        staff_sign_in(worker, services, secret, "sam@council.example.org")
        token = worker.get("/api/v1/reviews").json()["csrf_token"]
        assert worker.get("/api/v1/reviews").json()["cases"] == []
        assert worker.get(f"/api/v1/reviews/{case_id}").status_code == 404
        posted = worker.post(
            f"/api/v1/reviews/{case_id}",
            json={"outcome": "justified", "notes": NOTES},
            headers={"X-CSRF-Token": token},
        )
        assert posted.status_code == 404
        secret = add_practitioner(services, "pat@council.example.org", COUNCIL, "Pat Doe")
        assert secret is not None
        with TestClient(worker.app, base_url="https://testserver") as other:
            staff_sign_in(other, services, secret, "pat@council.example.org")
            assert other.get("/api/v1/reviews").status_code == 403
            assert other.get(f"/api/v1/reviews/{case_id}").status_code == 403
        assert reviewed(services) == [(None, None)]

    def test_not_signed_in_is_401(self, client: TestClient, case_id: str) -> None:
        anonymous = client.get("/api/v1/reviews")
        assert anonymous.status_code == 401
        # A young person's cookie is not a practitioner's.
        assert re.search("not_signed_in|authentication_failed", anonymous.text)
