"""The young person's side of a correction: the answer on their record page, their
statement (which then travels with the record to every agency read and practitioner
page), the record's earlier versions, erasure and export."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from typing import Any

from fastapi.testclient import TestClient

from app.container import Services
from tests.app.test_pages_young_person import check_page, grade
from tests.conftest import PASSWORD, add_record, run_sql, sign_up
from tests.corrections.conftest import BODY, SCHOOL
from tests.corrections.kit import accept, actions, assert_no_content_in_outbox, decline, read
from tests.grants.kit import AgencyClient
from tests.grants.test_flow import bearer, granted, records_url
from tests.practitioner.test_pages import granted as granted_to_practitioner

STATEMENT = "STATEMENT-MARKER: I still think my name was spelt wrong."


def put_statement(client: TestClient, alex: dict[str, Any], body: str) -> Any:
    return client.put(
        f"/api/v1/me/records/{alex['record_id']}/corrections/{alex['correction_id']}/statement",
        json={"body": body},
        headers={"X-CSRF-Token": alex["csrf"]},
    )


def page_statement(client: TestClient, alex: dict[str, Any], **data: str) -> Any:
    return client.post(
        f"/records/{alex['record_id']}/corrections/{alex['correction_id']}/statement", data=data
    )


class TestStatement:
    def test_only_once_answered_and_only_by_the_owner(
        self, client: TestClient, app: Any, services: Services, alex: dict[str, Any]
    ) -> None:
        early = put_statement(client, alex, STATEMENT)
        assert early.status_code == 409 and early.json()["error"] == "conflict"
        by_page = page_statement(client, alex, body=STATEMENT, csrf_token=alex["csrf"])
        assert by_page.status_code == 409
        assert run_sql(services, "SELECT count(*) FROM correction_request "
                                 "WHERE statement_sealed IS NOT NULL") == [(0,)]  # fmt: skip
        with TestClient(app, base_url="https://testserver") as other:
            csrf = sign_up(other, "sam")
            theirs = {**alex, "csrf": csrf}
            assert put_statement(other, theirs, "mine").status_code == 404
            assert page_statement(other, theirs, body="x", csrf_token=csrf).status_code == 404
            history = other.get(f"/api/v1/me/records/{alex['record_id']}/history")
            assert history.status_code == 404
            assert other.get(f"/records/{alex['record_id']}/history").status_code == 404
        wrong = {**alex, "correction_id": str(uuid.uuid4())}
        assert put_statement(client, wrong, "x").status_code == 404

    def test_the_statement_form_needs_csrf_and_words(
        self, client: TestClient, school: AgencyClient, services: Services, alex: dict[str, Any]
    ) -> None:
        assert decline(school, alex["correction_id"], reason="We checked.").status_code == 200
        assert page_statement(client, alex, body=STATEMENT).status_code == 403
        assert page_statement(client, alex, body=STATEMENT, csrf_token="forged").status_code == 403
        assert put_statement(client, {**alex, "csrf": "forged"}, STATEMENT).status_code == 403
        assert page_statement(client, alex, body="  ", csrf_token=alex["csrf"]).status_code == 422
        for body in ("", "  ", "bad \x00 byte", "x" * 20_001):
            assert put_statement(client, alex, body).status_code == 422, body
        assert "statement:added" not in actions(services)

        saved = page_statement(client, alex, body=STATEMENT, csrf_token=alex["csrf"])
        assert saved.status_code == 200
        assert str(saved.url).endswith(
            f"/records/{alex['record_id']}#answer-{alex['correction_id']}"
        )
        assert STATEMENT in saved.text
        [(sealed,)] = run_sql(services, "SELECT statement_sealed FROM correction_request")
        assert b"STATEMENT-MARKER" not in bytes(sealed)
        changed = put_statement(client, alex, "Shorter words")
        assert changed.status_code == 200 and changed.json()["statement"] == "Shorter words"
        assert actions(services)[-2:] == ["statement:added", "statement:changed"]
        assert_no_content_in_outbox(services, STATEMENT, "Shorter words")

    def test_it_travels_with_the_record_to_an_agency_read(
        self, client: TestClient, school: AgencyClient, alex: dict[str, Any]
    ) -> None:
        assert decline(school, alex["correction_id"], reason="We checked.").status_code == 200
        assert put_statement(client, alex, STATEMENT).status_code == 200
        tokens = granted(client, school, alex)
        listed = client.get(records_url(tokens), headers=bearer(tokens))
        assert listed.status_code == 200
        [record] = listed.json()
        expected = {"correction_id": alex["correction_id"], "outcome": "declined",
                    "body": STATEMENT}  # fmt: skip
        [statement] = record["statements"]
        assert {k: statement[k] for k in expected} == expected
        one = client.get(f"{records_url(tokens)}/{alex['record_id']}", headers=bearer(tokens))
        assert one.json()["statements"][0]["body"] == STATEMENT
        # The writing agency sees it on the request too, and the reference it knows.
        view = read(school, alex["correction_id"]).json()
        assert view["statement"] == STATEMENT and view["reference"] == tokens["vault_handle"]
        assert view["record"]["statements"][0]["body"] == STATEMENT

    def test_it_travels_to_the_practitioner_record_page(
        self,
        client: TestClient,
        worker: TestClient,
        school: AgencyClient,
        services: Services,
        jo: str,
        alex: dict[str, Any],
    ) -> None:
        assert accept(school, alex["correction_id"], body="Alexandra is doing well.").status_code
        assert put_statement(client, alex, STATEMENT).status_code == 200
        grant_url, _csrf = granted_to_practitioner(client, worker, services, alex, jo)
        page = worker.get(f"{grant_url}/records/{alex['record_id']}")
        assert page.status_code == 200
        assert "The young person's statement" in page.text and STATEMENT in page.text
        assert "version 2" in page.text and "Alexandra is doing well." in page.text


class TestTheRecordPage:
    def test_status_answer_statement_and_history(
        self, client: TestClient, school: AgencyClient, services: Services, alex: dict[str, Any]
    ) -> None:
        rid = alex["record_id"]
        page = client.get(f"/records/{rid}")
        assert f"We sent it to {SCHOOL}. They will say yes or no." in page.text
        assert "Add your own words" not in page.text and "See the old words" not in page.text

        second = client.post(
            f"/api/v1/me/records/{rid}/corrections",
            json={"body": "The date is wrong."},
            headers={"X-CSRF-Token": alex["csrf"]},
        ).json()
        assert decline(school, second["id"], reason="The date is right.").status_code == 200
        assert accept(school, alex["correction_id"], body="Alexandra is good at art.").status_code
        page = client.get(f"/records/{rid}")
        assert f"{SCHOOL} said yes on " in page.text and "They changed the record." in page.text
        assert f"{SCHOOL} said no on " in page.text and "The date is right." in page.text
        assert "You can tell the ICO." in page.text
        assert page.text.count("Add your own words to go with the record") == 2
        assert f'href="/records/{rid}/history"' in page.text
        assert "Alexandra is good at art." in page.text and BODY not in page.text

        saved = page_statement(client, alex, body="I like art.", csrf_token=alex["csrf"])
        assert "I like art." in saved.text and "Change your own words" in saved.text

        history = client.get(f"/records/{rid}/history")
        assert history.status_code == 200
        assert "Now: version 2" in history.text and "Version 1" in history.text
        assert BODY in history.text and "Alexandra is good at art." in history.text
        grades = {path: grade(check_page(client, path)) for path in
                  (f"/records/{rid}", f"/records/{rid}/history")}  # fmt: skip
        assert all(g <= 5 for g in grades.values()), grades

    def test_the_owners_trail_names_the_answers_in_plain_words(
        self, client: TestClient, school: AgencyClient, alex: dict[str, Any]
    ) -> None:
        read(school, alex["correction_id"])
        decline(school, alex["correction_id"], reason="We checked.")
        put_statement(client, alex, STATEMENT)
        trail = client.get("/audit").text
        assert "said no to your change to &#39;Report MARKER-TITLE&#39;" in trail
        assert "read what you asked to change in &#39;Report MARKER-TITLE&#39;" in trail
        assert "You added your own words to &#39;Report MARKER-TITLE&#39;" in trail


class TestErasureAndExport:
    def test_export_has_statements_answers_and_history(
        self, client: TestClient, school: AgencyClient, alex: dict[str, Any]
    ) -> None:
        accept(school, alex["correction_id"], body="Alexandra is good at art.")
        put_statement(client, alex, STATEMENT)
        response = client.get("/api/v1/me/export")
        assert response.status_code == 200
        zf = zipfile.ZipFile(io.BytesIO(response.content))
        [record] = json.loads(zf.read("data.json"))["records"]
        assert record["statements"][0]["body"] == STATEMENT
        assert record["corrections"][0]["statement"] == STATEMENT
        assert [(v["version"], v["body"]) for v in record["history"]] == [
            (2, "Alexandra is good at art."),
            (1, BODY),
        ]
        html = zf.read("index.html").decode()
        assert "My statement" in html and STATEMENT in html
        assert "Earlier version 1" in html and BODY in html

    def test_erasure_removes_versions_answers_and_statements(
        self, client: TestClient, school: AgencyClient, services: Services, alex: dict[str, Any]
    ) -> None:
        add_record(services, "alex", agency=SCHOOL, title="Another")
        accept(school, alex["correction_id"], body="Alexandra is good at art.")
        put_statement(client, alex, STATEMENT)
        assert run_sql(services, "SELECT count(*) FROM agency_record_version") == [(1,)]
        deleted = client.post(
            "/account/delete", data={"password": PASSWORD, "csrf_token": alex["csrf"]}
        )
        assert deleted.status_code == 200
        for table in ("agency_record_version", "correction_request", "agency_record"):
            assert run_sql(services, f"SELECT count(*) FROM {table}") == [(0,)], table
        assert inbox_is_empty(school)


def inbox_is_empty(school: AgencyClient) -> bool:
    from tests.corrections.kit import inbox

    return bool(inbox(school, status="all").json() == [])
