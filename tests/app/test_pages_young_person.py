"""The young person's other pages: asking for a correction, "Who has looked" grouped by
day and filtered by who, the session timeout message, sign-in guards, and a self-check of
every page (no inline script or style, one h1, a label on every input, plain words)."""

from __future__ import annotations

import html
import re
import uuid
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
import textstat
from fastapi.testclient import TestClient

from app.container import Services
from app.routers.pages import When
from tests.app.test_api import make_session_old
from tests.app.test_pages import form_token, page_sign_up
from tests.app.test_pages_sharing import ask, code_from_page, grants, say_yes
from tests.conftest import add_record, run_sql
from tests.grants.kit import AgencyClient, agency_client
from vault.db_types import utcnow

YOUNG_PERSON_PAGES = ("/story", "/records", "/requests", "/sharing", "/audit", "/connect",
                      "/account")  # fmt: skip


@pytest.fixture
def school(client: TestClient, services: Services) -> AgencyClient:
    return agency_client(client, services)


@pytest.fixture
def token(client: TestClient) -> str:
    return form_token(page_sign_up(client, "alex"))


def db_time(services: Services, when: Any) -> Any:
    return when.replace(tzinfo=None) if services.settings.is_sqlite else when


class TestCorrections:
    def test_ask_for_a_change_on_the_record_page(
        self, client: TestClient, services: Services, token: str
    ) -> None:
        record_id = add_record(services, "alex", title="School report, June")
        page = client.get(f"/records/{record_id}")
        assert "Ask for a change" in page.text and 'name="body"' in page.text
        secret = "My name is spelt Alexandra, not Alexandria"
        done = client.post(
            f"/records/{record_id}/corrections", data={"body": secret, "csrf_token": token}
        )
        assert done.status_code == 200
        assert str(done.url).startswith(f"https://testserver/records/{record_id}?done=correction")
        assert "We have saved your request." in done.text
        assert secret in done.text and "You asked for a change on " in done.text
        rows = run_sql(services, "SELECT record_id, status, body_sealed FROM correction_request")
        assert len(rows) == 1 and rows[0][1] == "open"
        assert secret.encode() not in bytes(rows[0][2])  # sealed, not plain text
        assert b"Alexandra" not in bytes(rows[0][2])
        actions = [r[0] for r in run_sql(services, "SELECT action FROM audit_event")]
        assert "correction:requested" in actions
        audit = client.get("/audit").text
        assert "You asked for a change to &#39;School report, June&#39; at " in audit

    def test_json_api(self, client: TestClient, services: Services, token: str) -> None:
        record_id = add_record(services, "alex")
        url = f"/api/v1/me/records/{record_id}/corrections"
        made = client.post(url, json={"body": "Wrong date"}, headers={"X-CSRF-Token": token})
        assert made.status_code == 201, made.text
        assert made.json()["body"] == "Wrong date" and made.json()["status"] == "open"
        listed = client.get(url)
        assert [c["body"] for c in listed.json()] == ["Wrong date"]

    def test_bad_input_missing_csrf_and_others_records_change_nothing(
        self, client: TestClient, app: Any, services: Services, token: str
    ) -> None:
        record_id = add_record(services, "alex")
        url = f"/api/v1/me/records/{record_id}/corrections"
        assert client.post(url, json={"body": "x"}).status_code == 403
        assert (
            client.post(f"/records/{record_id}/corrections", data={"body": "x"}).status_code == 403
        )
        for body in ("", "   ", "bad \x00 byte", "x" * 20_001):
            refused = client.post(url, json={"body": body}, headers={"X-CSRF-Token": token})
            assert refused.status_code == 422, body
            # The page form too: a clear 422 page, never a 500 (pydantic's own error).
            page = client.post(
                f"/records/{record_id}/corrections", data={"body": body, "csrf_token": token}
            )
            assert page.status_code == 422, body
            assert "Please check what you typed" in page.text
        missing = client.post(
            f"/api/v1/me/records/{uuid.uuid4()}/corrections",
            json={"body": "x"},
            headers={"X-CSRF-Token": token},
        )
        assert missing.status_code == 404
        with TestClient(app, base_url="https://testserver") as sam:
            sams = form_token(page_sign_up(sam, "sam"))
            assert sam.get(f"/records/{record_id}").status_code == 404
            assert sam.get(url).status_code == 404
            posted = sam.post(
                f"/records/{record_id}/corrections", data={"body": "x", "csrf_token": sams}
            )
            assert posted.status_code == 404
            by_api = sam.post(url, json={"body": "x"}, headers={"X-CSRF-Token": sams})
            assert by_api.status_code == 404
        assert run_sql(services, "SELECT count(*) FROM correction_request")[0][0] == 0

    def test_erasure_removes_correction_requests(
        self, client: TestClient, services: Services, token: str
    ) -> None:
        from tests.conftest import PASSWORD

        record_id = add_record(services, "alex")
        client.post(f"/records/{record_id}/corrections", data={"body": "x", "csrf_token": token})
        client.post("/account/delete", data={"password": PASSWORD, "csrf_token": token})
        assert run_sql(services, "SELECT count(*) FROM correction_request")[0][0] == 0


class TestWhoHasLooked:
    def test_plain_words_grouped_by_day_newest_first_and_filtered(
        self, client: TestClient, services: Services, school: AgencyClient, token: str
    ) -> None:
        add_record(services, "alex", title="School report, June")
        asked = ask(client, school, token)
        say_yes(client, token, asked["id"])
        tokens = school.poll(asked["auth_req_id"]).json()
        read = client.get(
            f"/api/v1/vaults/{tokens['vault_handle']}/records",
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        )
        assert read.status_code == 200
        # Move the first two entries (account made, record added) to yesterday.
        yesterday = utcnow() - timedelta(days=1)
        run_sql(
            services,
            "UPDATE audit_event SET occurred_at = :at WHERE seq <= 2 AND chain <> 'operator'",
            at=db_time(services, yesterday),
        )
        page = client.get("/audit").text
        days = re.findall(r'<h2 id="day-\d+">([^<]+)</h2>', page)
        assert days == [When.day(utcnow()), When.day(yesterday)]
        line = re.search(
            r"Jo Bloggs \(Example High School\) read your &#39;School report, June&#39; "
            r"at \d\d:\d\d — to plan support at school\.",
            page,
        )
        assert line, page
        assert page.index(line.group(0)) < page.index("The Storykeep team added a record")
        assert "You said yes to a request at " in page
        people = {
            html.unescape(name): key
            for key, name in re.findall(r'<option value="([0-9a-f]{16})">([^<]+)</option>', page)
        }
        assert set(people) == {"You", "The Storykeep team", "Jo Bloggs (Example High School)"}
        assert "@" not in page  # the worker's email is not the filter's value
        only_jo = client.get("/audit", params={"who": people["Jo Bloggs (Example High School)"]})
        lines = re.findall(r"<li>([^<]+)</li>", only_jo.text)
        assert lines and all(x.startswith("Jo Bloggs (Example High School) ") for x in lines)
        assert f'value="{people["Jo Bloggs (Example High School)"]}" selected' in only_jo.text
        only_me = client.get("/audit", params={"who": people["You"]}).text
        assert (
            "You made your account at " in only_me
            and "Jo Bloggs (" not in only_me.split("</form>")[1]
        )

    def test_unknown_filter_is_refused(self, client: TestClient, token: str) -> None:
        assert client.get("/audit", params={"who": "0" * 16}).status_code == 422
        assert client.get("/audit", params={"who": "x" * 17}).status_code == 422

    @pytest.mark.parametrize("before", ["0", "x", str(2**31), str(2**63), "1" + "0" * 22])
    def test_a_bad_page_cursor_is_refused_in_plain_words(
        self, client: TestClient, token: str, before: str
    ) -> None:
        refused = client.get("/audit", params={"before": before})
        assert refused.status_code == 422
        assert refused.headers["content-type"].startswith("text/html")
        assert "<h1>Sorry</h1>" in refused.text

    def test_json_audit_keeps_its_shape(
        self, client: TestClient, services: Services, token: str
    ) -> None:
        add_record(services, "alex")
        events = client.get("/api/v1/me/audit").json()["events"]
        assert events[0]["description"] == "operator (command line) added a record."


class TestSessionTimeout:
    def test_idle_session_says_why_you_were_signed_out(
        self, client: TestClient, services: Services, token: str
    ) -> None:
        idle = utcnow() - timedelta(minutes=services.settings.session_idle_minutes + 1)
        run_sql(services, "UPDATE web_session SET last_seen_at = :at", at=db_time(services, idle))
        bounced = client.get("/sharing", follow_redirects=False)
        assert bounced.status_code == 303
        assert bounced.headers["location"] == "/signin?timeout=1&next=/sharing"
        page = client.get(bounced.headers["location"])
        assert "You were signed out because you were away for a while" in page.text
        assert 'name="next" value="/sharing"' in page.text

    def test_signed_out_people_get_the_plain_sign_in_page(self, client: TestClient) -> None:
        for path in (*YOUNG_PERSON_PAGES, f"/records/{uuid.uuid4()}",
                     f"/requests/{uuid.uuid4()}/change", f"/requests/{uuid.uuid4()}/no",
                     f"/sharing/{uuid.uuid4()}/stop"):  # fmt: skip
            response = client.get(path, follow_redirects=False)
            assert response.status_code == 303 and response.headers["location"] == "/signin", path
        assert "away for a while" not in client.get("/signin").text

    def test_posts_from_signed_out_people_change_nothing(
        self, client: TestClient, services: Services
    ) -> None:
        for path in ("/connect", f"/requests/{uuid.uuid4()}/yes", f"/sharing/{uuid.uuid4()}/stop"):
            response = client.post(path, data={"csrf_token": "x"}, follow_redirects=False)
            assert response.status_code in {303, 403}, path
        assert run_sql(services, "SELECT count(*) FROM connection_code")[0][0] == 0


# -- self-check of every page ------------
class PageCheck(HTMLParser):
    """Collects what the self-check needs from one page."""

    def __init__(self) -> None:
        super().__init__()
        self.h1 = 0
        self.labels: set[str] = set()
        self.fields: list[str] = []
        self.inline: list[str] = []
        self.forms: list[dict[str, Any]] = []
        self.in_main = False
        self.main_text: list[str] = []
        self.in_label = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script" or "style" in a or any(k.startswith("on") for k in a):
            self.inline.append(tag)
        if tag == "h1":
            self.h1 += 1
        if tag == "main":
            self.in_main = True
        if tag == "label":
            self.in_label += 1
            if a.get("for"):
                self.labels.add(str(a["for"]))
        if tag == "form":
            self.forms.append({"method": a.get("method"), "csrf": False})
        if tag == "input" and a.get("name") == "csrf_token" and self.forms:
            self.forms[-1]["csrf"] = bool(a.get("value"))
        if tag in {"input", "select", "textarea"} and a.get("type") not in {"hidden", "submit"}:
            if self.in_label:  # wrapped in its label
                self.labels.add(str(a.get("id") or id(a)))
            self.fields.append(str(a.get("id") or id(a)))

    def handle_endtag(self, tag: str) -> None:
        if tag == "main":
            self.in_main = False
        if tag == "label" and self.in_label:
            self.in_label -= 1

    def handle_data(self, data: str) -> None:
        if self.in_main:  # visually hidden text too: screen readers say it
            self.main_text.append(data)


def check_page(client: TestClient, path: str) -> PageCheck:
    response = client.get(path)
    assert response.status_code in {200, 401}, (path, response.status_code)
    assert len(response.content) < 30_000, path
    parser = PageCheck()
    parser.feed(response.text)
    assert parser.inline == [], (path, parser.inline)
    assert parser.h1 == 1, path
    unlabelled = [f for f in parser.fields if f not in parser.labels]
    assert unlabelled == [], (path, unlabelled)
    assert all(f["csrf"] for f in parser.forms if f["method"] == "post"), path
    return parser


def grade(parser: PageCheck) -> float:
    # Headings, list items and buttons are separate thoughts: end each with a full stop.
    text = " ".join(t.strip() for t in parser.main_text if t.strip())
    return float(textstat.flesch_kincaid_grade(text))


def test_every_young_person_page_passes_the_self_check(
    client: TestClient, services: Services, school: AgencyClient, token: str
) -> None:
    record_id = add_record(services, "alex")
    client.post(f"/records/{record_id}/notes", data={"body": "Fine", "csrf_token": token})
    client.post(f"/records/{record_id}/corrections", data={"body": "Wrong", "csrf_token": token})
    entry = client.post("/story", data={"title": "Day", "shareable": "no", "csrf_token": token})
    first = ask(client, school, token, categories=["education", "health"])
    say_yes(client, token, first["id"])
    pending = ask(client, school, token, categories=["education", "health"])
    code_from_page(client, token)
    code_id = client.get("/api/v1/me/connection-codes").json()[0]["id"]
    grant_id = grants(client)[0]["id"]
    paths = [
        *YOUNG_PERSON_PAGES,
        str(entry.url).replace("https://testserver", ""),
        f"/records/{record_id}",
        f"/requests/{pending['id']}/change",
        f"/requests/{pending['id']}/no",
        f"/sharing/{grant_id}/stop",
        f"/connect?show={code_id}",
    ]
    grades = {path: grade(check_page(client, path)) for path in paths}
    make_session_old(services)
    yes = client.post(f"/requests/{pending['id']}/yes", data={"csrf_token": token})
    parser = PageCheck()
    parser.feed(yes.text)
    assert parser.h1 == 1 and all(f in parser.labels for f in parser.fields)
    grades["request_yes"] = grade(parser)
    client.cookies.clear()
    for path in ("/signin", "/signup", "/signin?timeout=1"):
        grades[path] = grade(check_page(client, path))
    too_hard = {path: g for path, g in grades.items() if g > 5}
    assert too_hard == {}, grades
