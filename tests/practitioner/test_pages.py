"""The practitioner pages over HTTP: ask with a connection code, follow the request, read
what was granted until it stops. The same grant engine and audit log as an agency's
OAuth client: the young person sees the request, decides through their own API, and
sees every read; a revocation bites on the next page."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.container import Services
from tests.conftest import run_sql
from tests.grants.kit import agency_client, connection_code
from tests.practitioner.kit import add_agency, add_practitioner, staff_sign_in
from vault.db_types import utcnow

SUMMARY = (
    "Jo Bloggs, guidance teacher at Example High School, wants to read your education "
    "records and the parts of your story you chose to share for 30 days to plan support "
    "at school."
)


def ask(
    worker: TestClient,
    csrf: str,
    code: str,
    categories: tuple[str, ...] = ("education", "my_story"),
    purpose: str = "education_support",
    days: str = "30",
    write: bool = False,
    with_csrf: bool = True,
) -> Any:
    data: dict[str, Any] = {
        "connection_code": code,
        "categories": list(categories),
        "purpose": purpose,
        "days": days,
    }
    if with_csrf:
        data["csrf_token"] = csrf
    if write:
        data["write"] = "yes"
    return worker.post("/practitioner/request", data=data, follow_redirects=False)


def only_request(client: TestClient) -> dict[str, Any]:
    requests = client.get("/api/v1/me/requests").json()
    assert len(requests) == 1
    return dict(requests[0])


def approve(client: TestClient, csrf: str, request_id: str, **narrow: Any) -> Any:
    return client.post(
        f"/api/v1/me/requests/{request_id}/approve", json=narrow, headers={"X-CSRF-Token": csrf}
    )


def grant_link(html: str) -> str:
    match = re.search(r'href="(/practitioner/grants/[0-9a-f-]{36})"', html)
    assert match, "no link to the grant"
    return match.group(1)


def granted(
    client: TestClient,
    worker: TestClient,
    services: Services,
    young: dict[str, Any],
    secret: str,
    **asked: Any,
) -> tuple[str, str]:
    """Run the flow to a grant. Returns (the grant page's path, the pages' CSRF token)."""
    csrf = staff_sign_in(worker, services, secret)
    sent = ask(worker, csrf, connection_code(client, young["csrf"]), **asked)
    assert sent.status_code == 303, sent.text
    newest = client.get("/api/v1/me/requests").json()[0]
    assert approve(client, young["csrf"], newest["id"]).status_code == 200
    return grant_link(worker.get(sent.headers["location"]).text), csrf


class TestTheWholeJourney:
    def test_ask_approve_read_audit_revoke(
        self,
        client: TestClient,
        worker: TestClient,
        services: Services,
        jo: str,
        young: dict[str, Any],
    ) -> None:
        csrf = staff_sign_in(worker, services, jo)
        form = worker.get("/practitioner/request")
        assert form.status_code == 200
        for label in ("Connection code", "Purpose", "How many days", "Education", "Shared story"):
            assert f">{label}</label>" in form.text
        assert '<option value="education_support"' in form.text and 'max="90"' in form.text

        code = connection_code(client, young["csrf"])
        sent = ask(worker, csrf, code)
        assert sent.status_code == 303
        status_url = sent.headers["location"]
        assert re.fullmatch(r"/practitioner/requests/[0-9a-f-]{36}", status_url)
        waiting = worker.get(status_url)
        assert "Waiting" in waiting.text
        assert "Read education records and the shared story" in waiting.text

        # The young person sees it, in their words, from the same engine as CIBA requests.
        request = only_request(client)
        assert request["summary"] == SUMMARY and request["status"] == "pending"
        assert request["practitioner"] == {"name": "Jo Bloggs", "role": "guidance teacher"}
        trail = client.get("/api/v1/me/audit").json()["events"]
        assert trail[0]["action"] == "request:received"
        assert trail[0]["actor_type"] == "practitioner" and trail[0]["agency"] == (
            "Example High School"
        )
        assert approve(client, young["csrf"], request["id"]).status_code == 200

        answered = worker.get(status_url)
        assert "Yes" in answered.text and "See what was shared" in answered.text
        grant_url = grant_link(answered.text)
        home = worker.get("/practitioner")
        assert grant_url in home.text and "Yes" in home.text

        page = worker.get(grant_url)
        assert page.status_code == 200
        assert "Report" in page.text and "Check-up" not in page.text  # health not granted
        assert "shared one body" in page.text and "private one" not in page.text
        assert "Add a record" not in page.text  # read only
        record_id = young["records"]["education"]
        record = worker.get(f"{grant_url}/records/{record_id}")
        assert record.status_code == 200 and "Doing well in art." in record.text
        health = worker.get(f"{grant_url}/records/{young['records']['health']}")
        assert health.status_code == 404

        grant_id = grant_url.rsplit("/", 1)[1]
        events = client.get("/api/v1/me/audit").json()["events"]
        reads = [e for e in events if e["action"] == "record:read"]
        assert reads and all(e["grant_id"] == grant_id.replace("-", "") for e in reads)
        # The health record outside the grant: refused, and the refusal logged and kept
        # though the page failed (app/db.py honours keeps_changes).
        [refused] = [e for e in events if e["action"] == "access:refused"]
        assert refused["object_id"] == young["records"]["health"].hex
        assert refused["grant_id"] == grant_id.replace("-", "")
        assert reads[0]["actor_label"] == "Jo Bloggs" and reads[0]["object_id"] == record_id.hex
        assert reads[0]["purpose"] == "education_support"
        assert any(e["action"] == "entry:read" for e in events)
        grants = client.get("/api/v1/me/grants").json()
        assert grants[0]["last_used_at"] is not None

        stopped = client.post(
            f"/api/v1/me/grants/{grant_id}/revoke", headers={"X-CSRF-Token": young["csrf"]}
        )
        assert stopped.status_code == 200
        for url in (grant_url, f"{grant_url}/records/{record_id}"):
            refused = worker.get(url)
            assert refused.status_code == 403
            assert "This sharing has stopped" in refused.text
            assert "Report" not in refused.text and "Doing well" not in refused.text
        assert "(ended)" in worker.get("/practitioner").text
        after = client.get("/api/v1/me/audit").json()["events"]  # newest first
        late = after[: [e["action"] for e in after].index("grant:revoked")]
        # No read after the revocation: each page opened was refused, and that is logged
        # under the grant (as the bearer door logs a revoked grant's token).
        assert [e["action"] for e in late] == ["access:refused", "access:refused"]
        assert [e["object_id"] for e in late] == [record_id.hex, None]
        assert {e["grant_id"] for e in late} == {grant_id.replace("-", "")}
        assert {e["actor_label"] for e in late} == {"Jo Bloggs"}

    def test_expired_grant_stops_too(
        self,
        client: TestClient,
        worker: TestClient,
        services: Services,
        jo: str,
        young: dict[str, Any],
    ) -> None:
        grant_url, _csrf = granted(client, worker, services, young, jo)
        old = utcnow() - timedelta(seconds=1)
        run_sql(
            services,
            "UPDATE access_grant SET expires_at = :t",
            t=old.replace(tzinfo=None) if services.settings.is_sqlite else old,
        )
        refused = worker.get(grant_url)
        assert refused.status_code == 403 and "This sharing has stopped" in refused.text

    def test_a_reference_asks_the_same_young_person_again(
        self,
        client: TestClient,
        worker: TestClient,
        services: Services,
        jo: str,
        young: dict[str, Any],
    ) -> None:
        grant_url, csrf = granted(client, worker, services, young, jo)
        reference = re.search(r"Reference (vh_[\w-]+)", worker.get(grant_url).text)
        assert reference is not None
        again = ask(worker, csrf, reference.group(1), categories=("health",))
        assert again.status_code == 303
        assert len(client.get("/api/v1/me/requests").json()) == 2


class TestRenewal:
    def test_ask_again_is_pre_filled_from_the_narrowed_grant(
        self,
        client: TestClient,
        worker: TestClient,
        services: Services,
        jo: str,
        young: dict[str, Any],
        app: Any,
    ) -> None:
        csrf = staff_sign_in(worker, services, jo)
        sent = ask(worker, csrf, connection_code(client, young["csrf"]), days="30")
        request_url = sent.headers["location"]
        asked = only_request(client)
        # The young person keeps only education, for about a week.
        week = (utcnow() + timedelta(days=7)).isoformat()
        narrowed = approve(client, young["csrf"], asked["id"], categories=["education"],
                           expires_at=week)  # fmt: skip
        assert narrowed.status_code == 200
        revoke = client.post(
            f"/api/v1/me/grants/{narrowed.json()['id']}/revoke",
            headers={"X-CSRF-Token": young["csrf"]},
        )
        assert revoke.status_code == 200
        status = worker.get(request_url).text
        renew = re.search(r'href="(/practitioner/request\?renew=[0-9a-f-]{36})"', status)
        assert renew is not None, "no Ask again link once sharing stopped"
        form = worker.get(renew.group(1)).text
        assert 'value="vh_' in form  # their reference: no new code needed
        assert re.search(r'value="education"\s+checked', form)
        assert not re.search(r'value="my_story"\s+checked', form)  # narrowed away
        assert 'name="days" type="number"' in form and 'value="7"' in form
        # Nothing is sent until the practitioner sends it; then the young person decides.
        assert len(client.get("/api/v1/me/requests").json()) == 1
        reference = re.search(r'value="(vh_[\w-]+)"', form)
        assert reference is not None
        again = ask(worker, csrf, reference.group(1), categories=("education",), days="7")
        assert again.status_code == 303
        assert client.get("/api/v1/me/requests").json()[0]["status"] == "pending"

    def test_nobody_else_can_renew_a_request(
        self, client: TestClient, worker: TestClient, services: Services, jo: str,
        young: dict[str, Any], app: Any,
    ) -> None:  # fmt: skip
        csrf = staff_sign_in(worker, services, jo)
        sent = ask(worker, csrf, connection_code(client, young["csrf"]))
        request_id = sent.headers["location"].rsplit("/", 1)[1]
        other = add_practitioner(services, "sam.other@example.org", name="Sam Other")
        assert other is not None
        with TestClient(app, base_url="https://testserver") as sam:
            staff_sign_in(sam, services, other, email="sam.other@example.org")
            assert sam.get(f"/practitioner/request?renew={request_id}").status_code == 404


class TestOnlyTheirOwn:
    def test_another_practitioner_cannot_open_the_grant_or_the_request(
        self,
        client: TestClient,
        worker: TestClient,
        services: Services,
        app: Any,
        jo: str,
        young: dict[str, Any],
    ) -> None:
        grant_url, _csrf = granted(client, worker, services, young, jo)
        assert worker.get(grant_url).status_code == 200  # Jo reads; only Jo's reads are logged
        status_url = re.search(
            r'href="(/practitioner/requests/[0-9a-f-]{36})"', worker.get("/practitioner").text
        )
        assert status_url is not None
        add_agency(services, "Example Health Board", purposes=("health_care",))
        colleagues = {
            "sam@example.org": add_practitioner(services, "sam@example.org", name="Sam Colleague"),
            "nurse@example.org": add_practitioner(
                services, "nurse@example.org", agency="Example Health Board", name="Nat Nurse"
            ),
        }
        record_id = young["records"]["education"]
        for email, secret in colleagues.items():
            assert secret is not None
            with TestClient(app, base_url="https://testserver") as other:
                staff_sign_in(other, services, secret, email=email)
                for url in (grant_url, f"{grant_url}/records/{record_id}", status_url.group(1)):
                    response = other.get(url)
                    assert response.status_code == 404, (email, url)
                    assert "Report" not in response.text and "Doing well" not in response.text
                assert grant_url not in other.get("/practitioner").text
        reads = [
            e
            for e in client.get("/api/v1/me/audit").json()["events"]
            if e["action"] == "record:read"
        ]
        assert {e["actor_label"] for e in reads} == {"Jo Bloggs"}

    def test_a_clients_grant_is_not_a_page_grant(
        self,
        client: TestClient,
        worker: TestClient,
        services: Services,
        young: dict[str, Any],
    ) -> None:
        """A grant made through the school's OAuth client has no practitioner account
        behind it: the pages answer as if it did not exist."""
        school = agency_client(client, services)
        secret = add_practitioner(services)
        assert secret is not None
        assert school.ask(connection_code(client, young["csrf"])).status_code == 200
        approve(client, young["csrf"], only_request(client)["id"])
        grant_id = client.get("/api/v1/me/grants").json()[0]["id"]
        staff_sign_in(worker, services, secret)
        assert worker.get(f"/practitioner/grants/{grant_id}").status_code == 404


class TestWriting:
    def test_add_a_record_only_when_write_was_granted(
        self,
        client: TestClient,
        worker: TestClient,
        services: Services,
        jo: str,
        young: dict[str, Any],
    ) -> None:
        read_only, csrf = granted(client, worker, services, young, jo)
        record = {
            "csrf_token": csrf,
            "category": "education",
            "title": "Plan",
            "body": "Extra time.",
        }
        refused = worker.post(f"{read_only}/records", data=record, follow_redirects=False)
        assert refused.status_code == 403
        before = run_sql(services, "SELECT count(*) FROM agency_record")[0][0]

        writer, csrf = granted(
            client, worker, services, young, jo, categories=("education",), write=True
        )
        page = worker.get(writer)
        assert "Add a record" in page.text and '<option value="education">' in page.text
        record["csrf_token"] = csrf
        wrong = worker.post(
            f"{writer}/records", data={**record, "category": "police"}, follow_redirects=False
        )
        assert wrong.status_code == 403
        no_csrf = {k: v for k, v in record.items() if k != "csrf_token"}
        assert worker.post(f"{writer}/records", data=no_csrf).status_code == 403
        assert run_sql(services, "SELECT count(*) FROM agency_record")[0][0] == before

        written = worker.post(f"{writer}/records", data=record, follow_redirects=False)
        assert written.status_code == 303
        shown = worker.get(written.headers["location"])
        assert "The record was added" in shown.text and "Extra time." in shown.text
        new_id = written.headers["location"].split("/records/")[1].split("?")[0]
        mine = client.get(f"/api/v1/me/records/{new_id}").json()
        assert (mine["agency"], mine["author_name"], mine["author_role"]) == (
            "Example High School",
            "Jo Bloggs",
            "guidance teacher",
        )
        actions = [e["action"] for e in client.get("/api/v1/me/audit").json()["events"]]
        assert "record:added" in actions

    def test_a_write_after_the_grant_stopped_is_refused(
        self,
        client: TestClient,
        worker: TestClient,
        services: Services,
        jo: str,
        young: dict[str, Any],
    ) -> None:
        writer, csrf = granted(
            client, worker, services, young, jo, categories=("education",), write=True
        )
        grant_id = writer.rsplit("/", 1)[1]
        client.post(f"/api/v1/me/grants/{grant_id}/revoke", headers={"X-CSRF-Token": young["csrf"]})
        before = run_sql(services, "SELECT count(*) FROM agency_record")[0][0]
        late = worker.post(
            f"{writer}/records",
            data={"csrf_token": csrf, "category": "education", "title": "t", "body": "b"},
        )
        assert late.status_code == 403 and "This sharing has stopped" in late.text
        assert run_sql(services, "SELECT count(*) FROM agency_record")[0][0] == before
        newest = client.get("/api/v1/me/audit").json()["events"][0]
        assert newest["action"] == "access:refused"
        assert newest["grant_id"] == grant_id.replace("-", "")


class TestTheRequestForm:
    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"categories": ()}, "at least one kind"),
            ({"categories": ("education", "diary")}, "from the list"),
            ({"purpose": "health_care"}, "purpose from the list"),
            ({"days": "91"}, "from 1 to 90"),
            ({"days": "0"}, "from 1 to 90"),
            ({"days": "soon"}, "from 1 to 90"),
            ({"days": "\u00b2"}, "from 1 to 90"),  # a digit to isdigit(), not to int()
            ({"days": "\u0663\u0660"}, "from 1 to 90"),  # Arabic-Indic 30: digits 0-9 only
            ({"write": True}, "own story"),
        ],
    )
    def test_bad_input_changes_nothing_and_keeps_the_code(
        self,
        client: TestClient,
        worker: TestClient,
        services: Services,
        jo: str,
        young: dict[str, Any],
        change: dict[str, Any],
        message: str,
    ) -> None:
        csrf = staff_sign_in(worker, services, jo)
        code = connection_code(client, young["csrf"])
        refused = ask(worker, csrf, code, **change)
        assert refused.status_code == 422
        assert message in refused.text and 'role="alert"' in refused.text
        assert code in refused.text  # the form keeps what was typed
        assert run_sql(services, "SELECT count(*) FROM access_request")[0][0] == 0
        assert ask(worker, csrf, code).status_code == 303  # the code was not used up

    def test_wrong_used_and_other_peoples_codes_say_the_same(
        self,
        client: TestClient,
        worker: TestClient,
        services: Services,
        jo: str,
        young: dict[str, Any],
    ) -> None:
        csrf = staff_sign_in(worker, services, jo)
        code = connection_code(client, young["csrf"])
        assert ask(worker, csrf, code).status_code == 303
        reused = ask(worker, csrf, code)
        guessed = ask(worker, csrf, "ABCD-EFGH-JKMN-PQRS")
        assert reused.status_code == guessed.status_code == 422
        assert "That connection code did not work" in reused.text
        assert "That connection code did not work" in guessed.text
        assert len(client.get("/api/v1/me/requests").json()) == 1

    def test_the_request_needs_the_csrf_token(
        self,
        client: TestClient,
        worker: TestClient,
        services: Services,
        jo: str,
        young: dict[str, Any],
    ) -> None:
        csrf = staff_sign_in(worker, services, jo)
        code = connection_code(client, young["csrf"])
        assert ask(worker, csrf, code, with_csrf=False).status_code == 403
        assert ask(worker, "not-the-token", code).status_code == 403
        assert run_sql(services, "SELECT count(*) FROM access_request")[0][0] == 0
        assert ask(worker, csrf, code).status_code == 303


def test_a_declined_request_says_no(
    client: TestClient,
    worker: TestClient,
    services: Services,
    jo: str,
    young: dict[str, Any],
) -> None:
    csrf = staff_sign_in(worker, services, jo)
    sent = ask(worker, csrf, connection_code(client, young["csrf"]))
    request_id = only_request(client)["id"]
    client.post(
        f"/api/v1/me/requests/{request_id}/decline",
        json={},
        headers={"X-CSRF-Token": young["csrf"]},
    )
    page = worker.get(sent.headers["location"])
    assert "The young person said no" in page.text and "/practitioner/grants/" not in page.text


def test_a_request_nobody_answered_lapses(
    client: TestClient,
    worker: TestClient,
    services: Services,
    jo: str,
    young: dict[str, Any],
) -> None:
    csrf = staff_sign_in(worker, services, jo)
    sent = ask(worker, csrf, connection_code(client, young["csrf"]))
    old = utcnow() - timedelta(seconds=1)
    run_sql(
        services,
        "UPDATE access_request SET decide_by = :t",
        t=old.replace(tzinfo=None) if services.settings.is_sqlite else old,
    )
    assert "did not answer in time" in worker.get(sent.headers["location"]).text
    assert "Lapsed" in worker.get("/practitioner").text


def test_too_many_fields_is_a_clear_error(
    client: TestClient, worker: TestClient, services: Services, jo: str, young: dict[str, Any]
) -> None:
    csrf = staff_sign_in(worker, services, jo)
    code = connection_code(client, young["csrf"])
    flood = ask(worker, csrf, code, categories=("education",) * 11)
    assert flood.status_code == 422
    assert run_sql(services, "SELECT count(*) FROM access_request")[0][0] == 0
