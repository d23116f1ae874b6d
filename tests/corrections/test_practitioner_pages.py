"""The practitioner pages for corrections: practitioners of the agency that wrote the
record see the request, open it (a logged read) and answer it; a practitioner at another
agency sees nothing (404); forms need their CSRF token; a refused answer changes nothing."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from app.container import Services
from tests.conftest import run_sql
from tests.corrections.conftest import ASKED, BODY, SCHOOL, TITLE
from tests.corrections.kit import actions, assert_no_content_in_outbox, outbox, snapshot
from tests.practitioner.kit import csrf_of, staff_sign_in

HOME = "/practitioner/corrections"
REASON = "REASON-MARKER: we checked the register."


class TestTheInbox:
    def test_list_and_open_a_request(
        self, worker: TestClient, services: Services, jo: str, alex: dict[str, Any]
    ) -> None:
        staff_sign_in(worker, services, jo)
        assert f'href="{HOME}">Corrections</a>' in worker.get("/practitioner").text
        listed = worker.get(HOME)
        assert listed.status_code == 200
        link = f'href="{HOME}/{alex["correction_id"]}"'
        assert link in listed.text and "Waiting for an answer" in listed.text
        for secret in (ASKED, TITLE, BODY):  # the list is metadata only
            assert secret not in listed.text
        assert "correction:read" not in actions(services)
        assert link not in worker.get(f"{HOME}?status=declined").text
        assert link in worker.get(f"{HOME}?status=all").text
        assert worker.get(f"{HOME}?status=nonsense").status_code == 422

        opened = worker.get(f"{HOME}/{alex['correction_id']}")
        assert opened.status_code == 200
        assert "Alexandra MARKER-ASKED" in opened.text and "MARKER-BODY" in opened.text
        assert "Accept and correct the record" in opened.text
        assert "Decline the correction" in opened.text
        [row] = run_sql(
            services,
            "SELECT actor_type, actor_id, agency FROM audit_event WHERE action = 'correction:read'",
        )
        assert row == ("practitioner", "jo.bloggs@example.org", SCHOOL)

    def test_another_agencys_practitioner_sees_nothing(
        self, worker: TestClient, services: Services, sam: str, alex: dict[str, Any]
    ) -> None:
        csrf = staff_sign_in(worker, services, sam, email="sam@other.example.org")
        before = snapshot(services)
        assert alex["correction_id"] not in worker.get(f"{HOME}?status=all").text
        url = f"{HOME}/{alex['correction_id']}"
        assert worker.get(url).status_code == 404
        accepted = worker.post(f"{url}/accept", data={"csrf_token": csrf, "title": "Mine now"})
        declined = worker.post(f"{url}/decline", data={"csrf_token": csrf, "reason": "No"})
        no_reason = worker.post(f"{url}/decline", data={"csrf_token": csrf, "reason": ""})
        assert (accepted.status_code, declined.status_code) == (404, 404)
        assert no_reason.status_code == 404  # nothing says the request exists
        assert "MARKER" not in accepted.text + declined.text + no_reason.text
        assert snapshot(services) == before

    def test_signed_out_and_young_people_are_sent_away(
        self, client: TestClient, worker: TestClient, alex: dict[str, Any]
    ) -> None:
        page = worker.get(HOME, follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/practitioner/signin"
        as_young = client.get(HOME, follow_redirects=False)
        assert as_young.status_code == 303


class TestAnswering:
    def test_accept_from_the_page(
        self,
        client: TestClient,
        worker: TestClient,
        services: Services,
        jo: str,
        alex: dict[str, Any],
    ) -> None:
        staff_sign_in(worker, services, jo)
        url = f"{HOME}/{alex['correction_id']}"
        page = worker.get(url)
        assert f'value="{TITLE}"' in page.text and f">{BODY}</textarea>" in page.text
        done = worker.post(
            f"{url}/accept",
            data={"csrf_token": csrf_of(page.text), "title": TITLE, "body": "Fixed MARKER-NEW"},
            follow_redirects=False,
        )
        assert done.status_code == 303 and done.headers["location"] == f"{url}?done=accepted"
        shown = worker.get(done.headers["location"])
        assert "You accepted the correction." in shown.text and "Accepted on" in shown.text
        assert "jo.bloggs@example.org" in shown.text and "Accept and correct" not in shown.text
        assert run_sql(services, "SELECT version FROM agency_record") == [(2,)]
        assert run_sql(services, "SELECT version FROM agency_record_version") == [(1,)]
        [decided] = run_sql(services, "SELECT status, decided_by FROM correction_request")
        assert decided == ("accepted", "jo.bloggs@example.org")
        history = client.get(f"/api/v1/me/records/{alex['record_id']}/history").json()
        assert [v["body"] for v in history["versions"]] == ["Fixed MARKER-NEW", BODY]
        assert outbox(services)[0][1] == "correction_accepted"
        assert_no_content_in_outbox(services, "Fixed")
        again = worker.post(
            f"{url}/decline", data={"csrf_token": csrf_of(page.text), "reason": "Oops"}
        )
        assert again.status_code == 409
        assert run_sql(services, "SELECT status FROM correction_request") == [("accepted",)]

    def test_unchanged_text_is_refused_and_shown_again(
        self, worker: TestClient, services: Services, jo: str, alex: dict[str, Any]
    ) -> None:
        csrf = staff_sign_in(worker, services, jo)
        url = f"{HOME}/{alex['correction_id']}"
        before = snapshot(services)
        same = worker.post(f"{url}/accept", data={"csrf_token": csrf, "title": TITLE, "body": BODY})
        assert same.status_code == 422
        assert 'role="alert"' in same.text and "the same as the record now" in same.text
        after = snapshot(services)
        # Showing the form again is one more (logged) read; nothing else changed.
        assert after["audit"][0][0] == before["audit"][0][0] + 1
        assert {k: v for k, v in after.items() if k != "audit"} == {
            k: v for k, v in before.items() if k != "audit"
        }

    def test_decline_needs_a_reason(
        self,
        client: TestClient,
        worker: TestClient,
        services: Services,
        jo: str,
        alex: dict[str, Any],
    ) -> None:
        csrf = staff_sign_in(worker, services, jo)
        url = f"{HOME}/{alex['correction_id']}"
        for reason in ("", "   "):
            refused = worker.post(f"{url}/decline", data={"csrf_token": csrf, "reason": reason})
            assert refused.status_code == 422
            assert "Give a reason" in refused.text
        assert run_sql(services, "SELECT status FROM correction_request") == [("open",)]
        assert "correction:declined" not in actions(services) and outbox(services) == []

        done = worker.post(f"{url}/decline", data={"csrf_token": csrf, "reason": REASON})
        assert done.status_code == 200 and "You declined the correction." in done.text
        assert REASON in done.text
        [asked] = client.get(f"/api/v1/me/records/{alex['record_id']}/corrections").json()
        assert asked["status"] == "declined" and asked["decline_reason"] == REASON
        assert outbox(services)[0][1] == "correction_declined"
        assert_no_content_in_outbox(services, REASON)
        twice = worker.post(f"{url}/decline", data={"csrf_token": csrf, "reason": "Again"})
        assert twice.status_code == 409

    def test_forms_need_their_csrf_token(
        self, worker: TestClient, services: Services, jo: str, alex: dict[str, Any]
    ) -> None:
        staff_sign_in(worker, services, jo)
        url = f"{HOME}/{alex['correction_id']}"
        before = snapshot(services)
        for path, data in (
            (f"{url}/accept", {"title": "Changed"}),
            (f"{url}/decline", {"reason": "No"}),
            (f"{url}/accept", {"title": "Changed", "csrf_token": "forged"}),
        ):
            assert worker.post(path, data=data).status_code == 403, (path, data)
        assert snapshot(services) == before


def test_pages_pass_the_self_check(
    worker: TestClient, services: Services, jo: str, alex: dict[str, Any]
) -> None:
    """One h1, a label on every field, a CSRF token in every form, no inline script or
    style, under 30 KB (tests/app/test_pages_young_person.py's check)."""
    from tests.app.test_pages_young_person import check_page

    staff_sign_in(worker, services, jo)
    for path in (HOME, f"{HOME}?status=all", f"{HOME}/{alex['correction_id']}"):
        check_page(worker, path)
