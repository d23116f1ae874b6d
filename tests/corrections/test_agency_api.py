"""The agencies' corrections API over HTTP (UK GDPR Article 16): only the agency that
wrote the record sees the request; it accepts (a new version, the old one kept) or
declines (a reason is required); a request is answered once; the young person is told,
without content; and the client authenticates like the token endpoint (RFC 7523)."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from app.container import Services
from tests.conftest import run_sql
from tests.corrections.conftest import ASKED, BODY, SCHOOL, TITLE
from tests.corrections.kit import (
    API,
    accept,
    actions,
    assert_audit_verifies,
    assert_no_content_in_outbox,
    decline,
    inbox,
    outbox,
    read,
    snapshot,
)
from tests.grants.kit import AgencyClient

NEW_BODY = "Alexandra NEWTEXT-MARKER is doing well in art."
REASON = "REASON-MARKER: the register shows the spelling your school used at the time."


def audit_rows(services: Services, action: str) -> list[Any]:
    return run_sql(
        services,
        "SELECT actor_type, actor_id, agency, object_type, object_id FROM audit_event "
        "WHERE action = :action",
        action=action,
    )


class TestInbox:
    def test_the_writer_sees_open_requests_without_content(
        self, school: AgencyClient, services: Services, alex: dict[str, Any]
    ) -> None:
        listed = inbox(school)
        assert listed.status_code == 200, listed.text
        assert listed.headers["cache-control"] == "no-store"
        [item] = listed.json()
        assert item["id"] == alex["correction_id"] and item["record_id"] == alex["record_id"]
        assert item["status"] == "open" and item["record_version"] == 1
        assert item["record_category"] == "education" and item["record_author_name"] == "Jo Bloggs"
        for secret in (ASKED, TITLE, BODY):
            assert secret not in listed.text
        # The list is metadata: it is not a read of content, so nothing is logged.
        assert "correction:read" not in actions(services)
        assert inbox(school, status="accepted").json() == []
        assert [c["id"] for c in inbox(school, status="all").json()] == [alex["correction_id"]]
        bad = inbox(school, status="everything")
        assert bad.status_code == 422 and bad.json()["error"] == "invalid_input"

    def test_opening_a_request_shows_record_and_words_and_is_logged(
        self, client: TestClient, school: AgencyClient, services: Services, alex: dict[str, Any]
    ) -> None:
        opened = read(school, alex["correction_id"])
        assert opened.status_code == 200, opened.text
        view = opened.json()
        assert view["request"] == ASKED and view["status"] == "open"
        assert view["record"]["title"] == TITLE and view["record"]["body"] == BODY
        assert view["record"]["notes"] == [] and view["decided_by"] is None
        [row] = audit_rows(services, "correction:read")
        assert row[0] == "agency" and row[2] == SCHOOL
        assert (row[3], row[4]) == ("correction_request", alex["correction_id"].replace("-", ""))
        trail = client.get("/api/v1/me/audit").json()["events"]
        assert trail[0]["action"] == "correction:read" and trail[0]["agency"] == SCHOOL

    def test_another_agency_sees_and_decides_nothing(
        self, school: AgencyClient, other: AgencyClient, services: Services, alex: dict[str, Any]
    ) -> None:
        before = snapshot(services)
        assert inbox(other).json() == []
        assert inbox(other, status="all").json() == []
        cid = alex["correction_id"]
        for response in (
            read(other, cid),
            accept(other, cid, title="Taken over"),
            decline(other, cid, reason="Not yours"),
        ):
            assert response.status_code == 404, response.text
            assert response.json()["error"] == "not_found"
        assert snapshot(services) == before

    def test_client_authentication_is_the_token_endpoints(
        self, client: TestClient, school: AgencyClient, services: Services, alex: dict[str, Any]
    ) -> None:
        before = snapshot(services)
        cid = alex["correction_id"]
        bare = client.post(f"{API}/{cid}/decline", data={"reason": "x"})
        assert bare.status_code == 401 and bare.json()["error"] == "invalid_client"
        as_json = client.post(f"{API}/list", json={"client_assertion": school.assertion()})
        assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
        replayed = school.assertion()
        assert inbox(school).status_code == 200
        assert school.post(f"{API}/list", {}, assertion=replayed).status_code == 200
        again = school.post(f"{API}/{cid}/accept", {"title": "Replay"}, assertion=replayed)
        assert again.status_code == 401 and again.json()["error"] == "invalid_client"
        wrong_aud = school.assertion(aud="https://elsewhere.example")
        refused = school.post(f"{API}/{cid}/accept", {"title": "x"}, assertion=wrong_aud)
        assert refused.status_code == 401
        assert snapshot(services) == before


class TestAccept:
    def test_accept_makes_a_new_version_and_keeps_the_old_one(
        self, client: TestClient, school: AgencyClient, services: Services, alex: dict[str, Any]
    ) -> None:
        rid, cid = alex["record_id"], alex["correction_id"]
        [(title_v1, body_v1)] = run_sql(
            services, "SELECT title_sealed, body_sealed FROM agency_record"
        )
        done = accept(school, cid, body=NEW_BODY)
        assert done.status_code == 200, done.text
        view = done.json()
        assert view["status"] == "accepted" and view["decided_by"] == school.client_id
        assert view["record"]["version"] == 2 and view["record"]["body"] == NEW_BODY
        assert view["record"]["title"] == TITLE  # left out: kept

        # The database: the record is version 2; version 1 moved, ciphertext unchanged.
        [(version, title_v2, body_v2)] = run_sql(
            services, "SELECT version, title_sealed, body_sealed FROM agency_record"
        )
        assert version == 2 and bytes(body_v2) != bytes(body_v1)
        assert bytes(title_v2) != bytes(title_v1)  # re-sealed under the new version
        [kept] = run_sql(
            services,
            "SELECT record_id, version, title_sealed, body_sealed, correction_id "
            "FROM agency_record_version",
        )
        assert str(kept[0]).replace("-", "") == rid.replace("-", "") and kept[1] == 1
        assert bytes(kept[2]) == bytes(title_v1) and bytes(kept[3]) == bytes(body_v1)
        assert str(kept[4]).replace("-", "") == cid.replace("-", "")
        for sealed in (kept[2], kept[3], title_v2, body_v2):
            for plain in (TITLE, BODY, NEW_BODY, "Alexandra", "art"):
                assert plain.encode() not in bytes(sealed)
        [decided] = run_sql(
            services, "SELECT status, decided_at, decided_by FROM correction_request"
        )
        assert decided[0] == "accepted" and decided[1] is not None
        assert decided[2] == school.client_id

        # The young person still reads the original, in the record's history.
        history = client.get(f"/api/v1/me/records/{rid}/history").json()
        assert [(v["version"], v["body"]) for v in history["versions"]] == [
            (2, NEW_BODY),
            (1, BODY),
        ]
        assert history["versions"][0]["replaced_at"] is None
        assert history["versions"][1]["correction_id"] == cid
        record = client.get(f"/api/v1/me/records/{rid}").json()
        assert record["body"] == NEW_BODY and record["version"] == 2
        [asked] = client.get(f"/api/v1/me/records/{rid}/corrections").json()
        assert asked["status"] == "accepted" and asked["decided_at"] is not None

        assert actions(services)[-1] == "correction:accepted"
        [row] = audit_rows(services, "correction:accepted")
        assert row[0] == "agency" and row[2] == SCHOOL
        [message] = outbox(services)
        assert message[:2] == ("young_person", "correction_accepted")
        assert SCHOOL in message[3]
        assert_no_content_in_outbox(services, NEW_BODY)
        assert_audit_verifies(services)

    def test_a_second_correction_makes_version_three(
        self, client: TestClient, school: AgencyClient, services: Services, alex: dict[str, Any]
    ) -> None:
        rid = alex["record_id"]
        assert accept(school, alex["correction_id"], title="Report, June").status_code == 200
        again = client.post(
            f"/api/v1/me/records/{rid}/corrections",
            json={"body": "The date is wrong too"},
            headers={"X-CSRF-Token": alex["csrf"]},
        ).json()
        done = accept(school, again["id"], title="Report, July", body=NEW_BODY)
        assert done.status_code == 200 and done.json()["record"]["version"] == 3
        history = client.get(f"/api/v1/me/records/{rid}/history").json()["versions"]
        assert [(v["version"], v["title"], v["body"]) for v in history] == [
            (3, "Report, July", NEW_BODY),
            (2, "Report, June", BODY),
            (1, TITLE, BODY),
        ]
        # Each version's time span joins the next: written when the one before was replaced.
        assert history[1]["written_at"] == history[2]["replaced_at"]
        assert history[0]["written_at"] == history[1]["replaced_at"]

    def test_accept_needs_a_change_and_valid_text(
        self, school: AgencyClient, services: Services, alex: dict[str, Any]
    ) -> None:
        before = snapshot(services)
        cid = alex["correction_id"]
        for form in (
            {},
            {"title": "", "body": ""},
            {"title": TITLE},
            {"title": TITLE, "body": BODY},
            {"title": "   "},
            {"title": "x" * 201},
            {"body": "bad \x00 byte"},
            {"body": "x" * 20_001},
        ):
            refused = accept(school, cid, **form)
            assert refused.status_code == 422, (form, refused.text)
            assert refused.json()["error"] == "invalid_input"
        assert snapshot(services) == before

    def test_the_practitioner_deciding_can_be_named(
        self, school: AgencyClient, services: Services, alex: dict[str, Any]
    ) -> None:
        before = snapshot(services)
        cid = alex["correction_id"]
        nope = json.dumps({"name": "Jo", "role": "x", "email": "nope"})
        for bad in ("not json", "[]", nope, "[" * 5000):
            refused = accept(school, cid, title="New", practitioner=bad)
            assert refused.status_code == 422, bad
        assert snapshot(services) == before
        jo = {"name": "Jo Bloggs", "role": "guidance teacher", "email": "jo@example.org"}
        done = accept(school, cid, title="New", practitioner=json.dumps(jo))
        assert done.status_code == 200 and done.json()["decided_by"] == "jo@example.org"
        [row] = audit_rows(services, "correction:accepted")
        assert row[:3] == ("practitioner", "jo@example.org", SCHOOL)


class TestDecline:
    def test_declining_needs_a_reason_and_changes_nothing_without_one(
        self, school: AgencyClient, services: Services, alex: dict[str, Any]
    ) -> None:
        before = snapshot(services)
        for form in ({}, {"reason": ""}, {"reason": "   \n"}, {"reason": "x" * 5_001}):
            refused = decline(school, alex["correction_id"], **form)
            assert refused.status_code == 422, (form, refused.text)
        assert snapshot(services) == before
        assert run_sql(services, "SELECT status FROM correction_request") == [("open",)]

    def test_decline_with_a_reason(
        self, client: TestClient, school: AgencyClient, services: Services, alex: dict[str, Any]
    ) -> None:
        rid, cid = alex["record_id"], alex["correction_id"]
        records_before = snapshot(services)["records"]
        done = decline(school, cid, reason=REASON)
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "declined" and done.json()["decline_reason"] == REASON
        assert snapshot(services)["records"] == records_before  # the record stays as it was
        assert run_sql(services, "SELECT count(*) FROM agency_record_version") == [(0,)]
        [(status, sealed)] = run_sql(
            services, "SELECT status, decline_reason_sealed FROM correction_request"
        )
        assert status == "declined" and b"REASON-MARKER" not in bytes(sealed)
        [asked] = client.get(f"/api/v1/me/records/{rid}/corrections").json()
        assert asked["status"] == "declined" and asked["decline_reason"] == REASON
        assert actions(services)[-1] == "correction:declined"
        [message] = outbox(services)
        assert message[:2] == ("young_person", "correction_declined")
        assert "ICO" in message[3]
        assert_no_content_in_outbox(services, REASON)
        assert_audit_verifies(services)

    def test_a_request_is_answered_once(
        self, school: AgencyClient, services: Services, alex: dict[str, Any]
    ) -> None:
        cid = alex["correction_id"]
        assert decline(school, cid, reason=REASON).status_code == 200
        after = snapshot(services)
        for response in (
            decline(school, cid, reason="Again"),
            accept(school, cid, title="Changed my mind"),
        ):
            assert response.status_code == 409, response.text
            assert response.json()["error"] == "conflict"
        assert snapshot(services) == after
        assert [c["status"] for c in inbox(school, status="declined").json()] == ["declined"]
        assert inbox(school).json() == []  # no longer open
