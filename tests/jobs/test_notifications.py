"""Who hears what, end to end: through the real HTTP endpoints, the outbox, ``storykeep
jobs run`` (a real process) and a real SMTP server and webhook receiver started here.

* a new request reaches the young person's email, even when the mail server fails at
  first (retried with backoff after the next ``jobs run``, never lost, never twice);
* a decision reaches the practitioner by email and the agency's system by its signed
  webhook; so does the end of a grant;
* looks are told straight away (at most once an hour per grant) or once a day, by choice;
* no message, row, email or webhook ever holds story or record content.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import jobs
from app.container import Services
from grants.notify.senders import SIGNATURE_HEADER
from tests.conftest import add_record, run_sql, sign_up
from tests.grants.kit import TEACHER, AgencyClient, agency_client, connection_code
from tests.jobs.conftest import Receiver, Smtp, readable, storykeep
from tests.practitioner.kit import add_agency, add_practitioner, staff_sign_in
from vault.db_types import utcnow

ADDRESS = "sam.private@example.org"
SECRET = "an-agency-webhook-secret-of-32-characters-or-more"
MARKER = "ZEBRA-PURPLE-7731"  # content that must never reach any message


def set_email(client: TestClient, csrf: str, mode: str = "daily", email: str = ADDRESS) -> None:
    response = client.put(
        "/api/v1/me/notifications", json={"email": email, "access_mode": mode},
        headers={"X-CSRF-Token": csrf},
    )  # fmt: skip
    assert response.status_code == 200, response.text


def newest_request(client: TestClient) -> str:
    return str(client.get("/api/v1/me/requests").json()[0]["id"])


def approve(client: TestClient, csrf: str, **narrow: Any) -> None:
    response = client.post(f"/api/v1/me/requests/{newest_request(client)}/approve",
                           json=narrow, headers={"X-CSRF-Token": csrf})  # fmt: skip
    assert response.status_code == 200, response.text


def grant_tokens(
    client: TestClient, school: AgencyClient, csrf: str, narrow: dict[str, Any] | None = None,
    **ask: Any,
) -> Any:  # fmt: skip
    asked = school.ask(connection_code(client, csrf), **ask)
    assert asked.status_code == 200, asked.text
    approve(client, csrf, **(narrow or {}))
    tokens = school.poll(asked.json()["auth_req_id"])
    assert tokens.status_code == 200, tokens.text
    return tokens.json()


def start_clear_of_the_hour(margin_seconds: float = 60) -> None:
    """For a test that counts per clock hour (or per day, whose turn is an hour's too):
    if the hour is about to turn, wait until it has, so the test does not straddle it."""
    now = utcnow()
    left = 3600 - (now.minute * 60 + now.second + now.microsecond / 1_000_000)
    if left < margin_seconds:
        time.sleep(left + 1)


def rows(services: Services) -> list[Any]:
    return run_sql(
        services,
        "SELECT recipient_kind, kind, channel, status, attempts, subject, body, last_error "
        "FROM notification ORDER BY created_at",
    )


def make_due(services: Services) -> None:
    """Move time on for every message waiting for a retry: due from when it was made."""
    run_sql(services, "UPDATE notification SET next_attempt_at = created_at "
                      "WHERE status = 'pending'")  # fmt: skip


def jobs_run(cli_env: dict[str, str]) -> str:
    result = storykeep(cli_env, "jobs", "run")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture
def school(client: TestClient, services: Services) -> AgencyClient:
    return agency_client(client, services)


class TestNewRequest:
    def test_reaches_the_young_persons_email_though_the_server_fails_at_first(
        self, client: TestClient, services: Services, school: AgencyClient, smtp: Smtp,
        cli_env: dict[str, str],
    ) -> None:  # fmt: skip
        csrf = sign_up(client, "sam")
        set_email(client, csrf)
        smtp.fail_next(1)
        assert school.ask(connection_code(client, csrf)).status_code == 200
        # Queued in the request's own transaction, for the young person, by email.
        [(kind, what, channel, status, *_rest)] = rows(services)
        assert (kind, what, channel, status) == ("young_person", "request_new", "smtp", "pending")

        first = jobs_run(cli_env)
        assert first.startswith("lapsed 0, reminders 0")
        assert "sent 0, failed 1, overdue reviews 0" in first
        [row] = rows(services)
        assert row[3] == "pending" and row[4] == 1 and "451" in row[7]  # kept, backed off
        assert smtp.mails == []
        assert "sent 0, failed 0" in jobs_run(cli_env)  # not due again yet: no hammering

        make_due(services)
        assert "sent 1, failed 0" in jobs_run(cli_env)
        [mail] = smtp.to(ADDRESS)
        assert mail["Subject"] == "Someone has asked to see your things"
        assert "Jo Bloggs from Example High School has asked" in readable(mail)
        [row] = rows(services)
        assert row[3] == "sent" and row[4] == 2

        make_due(services)  # even if time moved on, a sent message is never sent again
        assert "sent 0, failed 0" in jobs_run(cli_env)
        assert len(smtp.mails) == 1

    def test_without_an_email_it_stays_inside_storykeep(
        self, client: TestClient, services: Services, school: AgencyClient, smtp: Smtp
    ) -> None:
        csrf = sign_up(client, "sam")
        assert school.ask(connection_code(client, csrf)).status_code == 200
        [row] = rows(services)
        assert row[:3] == ("young_person", "request_new", "console")
        report = jobs.run_once(services)
        assert (report.sent, report.failed) == (1, 0)
        assert smtp.mails == []

    def test_a_refused_request_tells_nobody(
        self, client: TestClient, services: Services, school: AgencyClient
    ) -> None:
        csrf = sign_up(client, "sam")
        code = connection_code(client, csrf)
        bad = school.ask(code, purpose="not_registered")
        assert bad.status_code == 400
        assert rows(services) == []


class TestDecisions:
    def test_reach_the_practitioner_and_the_agencys_signed_webhook(
        self, client: TestClient, services: Services, school: AgencyClient, smtp: Smtp,
        receiver: Receiver, cli_env: dict[str, str],
    ) -> None:  # fmt: skip
        hook = storykeep(cli_env, "agency", "webhook", "Example High School",
                         "--url", receiver.url, "--secret-stdin", stdin=SECRET + "\n")  # fmt: skip
        assert hook.returncode == 0, hook.stderr
        assert json.loads(hook.stdout) == {"agency": "Example High School", "url": receiver.url}
        assert SECRET not in str(run_sql(services, "SELECT * FROM agency_webhook"))

        csrf = sign_up(client, "sam")
        assert school.ask(connection_code(client, csrf)).status_code == 200
        approve(client, csrf)
        assert school.ask(connection_code(client, csrf)).status_code == 200
        declined = client.post(f"/api/v1/me/requests/{newest_request(client)}/decline",
                               json={"reason": f"I do not trust them {MARKER}"},
                               headers={"X-CSRF-Token": csrf})  # fmt: skip
        assert declined.status_code == 200, declined.text
        kinds = sorted((r[0], r[1], r[2], r[5]) for r in rows(services) if r[1] == "decision")
        assert kinds == [
            ("agency", "decision", "webhook", "Your request was approved"),
            ("agency", "decision", "webhook", "Your request was declined"),
            ("practitioner", "decision", "smtp", "Your request was approved"),
            ("practitioner", "decision", "smtp", "Your request was declined"),
        ]

        receiver.statuses = [500]  # the agency's system is down at first
        first = jobs_run(cli_env)
        assert "sent 5, failed 1" in first  # 2 requests (console), 2 emails, 1 webhook
        make_due(services)
        assert "sent 1, failed 0" in jobs_run(cli_env)
        mails = smtp.to(TEACHER["email"])
        assert sorted(m["Subject"] for m in mails) == [
            "Your request was approved", "Your request was declined"]  # fmt: skip
        assert len(receiver.received) == 3  # one failure, then both events
        for headers, body in receiver.received[1:]:
            stamp, mac = (p.split("=", 1)[1] for p in headers[SIGNATURE_HEADER].split(","))
            expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
            assert hmac.compare_digest(mac, expected.hexdigest())
            wrong = hmac.new(b"another-secret", f"{stamp}.".encode() + body, hashlib.sha256)
            assert not hmac.compare_digest(mac, wrong.hexdigest())
        events = sorted(json.loads(body)["summary"] for _h, body in receiver.received[1:])
        assert events == ["Your request was approved", "Your request was declined"]
        # The young person's own reason for saying no goes nowhere.
        everything = str(rows(services)) + str(receiver.received) + str(
            [readable(m) for m in smtp.mails])  # fmt: skip
        assert MARKER not in everything and "trust" not in everything

    def test_no_webhook_no_webhook_messages(
        self, client: TestClient, services: Services, school: AgencyClient
    ) -> None:
        csrf = sign_up(client, "sam")
        assert school.ask(connection_code(client, csrf)).status_code == 200
        approve(client, csrf)
        assert [r[0] for r in rows(services) if r[1] == "decision"] == ["practitioner"]

    def test_stopping_sharing_tells_the_practitioner_and_agency(
        self, client: TestClient, services: Services, school: AgencyClient, smtp: Smtp,
        receiver: Receiver, cli_env: dict[str, str],
    ) -> None:  # fmt: skip
        assert storykeep(cli_env, "agency", "webhook", "Example High School", "--url",
                         receiver.url, "--secret-stdin", stdin=SECRET).returncode == 0  # fmt: skip
        csrf = sign_up(client, "sam")
        grant_tokens(client, school, csrf)
        grant_id = client.get("/api/v1/me/grants").json()[0]["id"]
        stopped = client.post(f"/api/v1/me/grants/{grant_id}/revoke",
                              headers={"X-CSRF-Token": csrf})  # fmt: skip
        assert stopped.status_code == 200
        ended = [r[:3] for r in rows(services) if r[1] == "expiry"]
        assert sorted(ended) == [("agency", "expiry", "webhook"),
                                 ("practitioner", "expiry", "smtp")]  # fmt: skip
        assert "failed 0" in jobs_run(cli_env)
        assert "Your access has ended" in [m["Subject"] for m in smtp.to(TEACHER["email"])]


class TestWebhookCommand:
    @pytest.mark.parametrize(
        ("args", "stdin", "message"),
        [
            (["--url", "http://agency.example/hook", "--secret-stdin"], SECRET, "https://"),
            (["--url", "https://agency.example/hook", "--secret-stdin"], "short", "32"),
            (["--url", "https://agency.example/hook"], SECRET, "--secret-stdin"),
        ],
    )
    def test_misuse_is_refused_and_saves_nothing(
        self, school: AgencyClient, services: Services, cli_env: dict[str, str],
        args: list[str], stdin: str, message: str,
    ) -> None:  # fmt: skip
        result = storykeep(cli_env, "agency", "webhook", "Example High School", *args,
                           stdin=stdin)  # fmt: skip
        assert result.returncode != 0 and message in result.stderr
        assert run_sql(services, "SELECT count(*) FROM agency_webhook")[0][0] == 0

    def test_unknown_agency(self, services: Services, cli_env: dict[str, str]) -> None:
        hook = "https://agency.example/hook"
        result = storykeep(cli_env, "agency", "webhook", "Nobody", "--url", hook,
                           "--secret-stdin", stdin=SECRET)  # fmt: skip
        assert result.returncode == 1 and "No agency called 'Nobody'" in result.stderr
        assert run_sql(services, "SELECT count(*) FROM agency_webhook")[0][0] == 0


class TestLooks:
    def _reads(self, client: TestClient, tokens: dict[str, Any], times: int) -> None:
        url = f"/api/v1/vaults/{tokens['vault_handle']}/records"
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        for _ in range(times):
            assert client.get(url, headers=auth).status_code == 200

    def test_straight_away_at_most_once_an_hour_per_grant_and_daily_as_a_summary(
        self, client: TestClient, services: Services, school: AgencyClient, smtp: Smtp
    ) -> None:
        start_clear_of_the_hour()  # it counts looks per hour and per day
        people: dict[str, dict[str, Any]] = {}
        for name, mode in (("quick", "immediate"), ("slow", "daily")):
            csrf = sign_up(client, name)
            set_email(client, csrf, mode, f"{name}@example.org")
            add_record(services, name, title="Report")
            add_record(services, name, title="Another report")
            people[name] = grant_tokens(client, school, csrf)
        self._reads(client, people["quick"], 3)
        self._reads(client, people["slow"], 3)
        looks = [r for r in rows(services) if r[1] == "access"]
        assert len(looks) == 1  # the first look this hour, for "quick" only
        assert "Jo Bloggs from Example High School looked at your school and learning" in (
            looks[0][6])  # fmt: skip

        # Same hour, even when the once-a-minute check runs again: still one.
        run_sql(services, "UPDATE access_grant SET last_used_at = NULL")
        self._reads(client, people["quick"], 1)
        assert len([r for r in rows(services) if r[1] == "access"]) == 1
        # A new hour: one more.
        run_sql(services, "UPDATE notification SET dedupe_key = 'access:old-hour' "
                          "WHERE kind = 'access'")  # fmt: skip
        run_sql(services, "UPDATE access_grant SET last_used_at = NULL")
        self._reads(client, people["quick"], 2)
        assert len([r for r in rows(services) if r[1] == "access"]) == 2

        # Tomorrow, the lifecycle job sums up yesterday for "slow" only.
        tomorrow = utcnow() + timedelta(days=1)
        report = jobs.run_once(services, now=tomorrow)
        assert report.lifecycle.access_summaries == 1 and report.failed == 0
        [summary] = smtp.to("slow@example.org")[-1:]
        assert summary["Subject"].startswith("Who looked at your things on ")
        assert "people looked at your things 6 times" in readable(summary)  # 3 lists x 2
        assert "Example High School" in readable(summary)
        quick = [m["Subject"] for m in smtp.to("quick@example.org")]
        assert quick.count("Someone looked at your things") == 2
        assert not any(s.startswith("Who looked") for s in quick)
        # Once: running again that day adds nothing.
        again = jobs.run_once(services, now=tomorrow + timedelta(minutes=5))
        assert again.lifecycle.access_summaries == 0 and again.sent == 0

    def test_the_owners_own_reads_are_not_looks(
        self, client: TestClient, services: Services
    ) -> None:
        csrf = sign_up(client, "sam")
        set_email(client, csrf, "immediate")
        add_record(services, "sam")
        assert client.get("/api/v1/me/records").status_code == 200
        report = jobs.run_once(services, now=utcnow() + timedelta(days=1))
        assert report.lifecycle.access_summaries == 0
        assert [r for r in rows(services) if r[1] in {"access", "access_summary"}] == []


def test_no_message_ever_holds_story_or_record_content(
    client: TestClient, services: Services, school: AgencyClient, smtp: Smtp,
    receiver: Receiver, cli_env: dict[str, str],
) -> None:  # fmt: skip
    """Every kind of message a young person, a practitioner and an agency get, with a
    marker in record titles and bodies, a story entry and the decline reason."""
    assert storykeep(cli_env, "agency", "webhook", "Example High School", "--url",
                     receiver.url, "--secret-stdin", stdin=SECRET).returncode == 0  # fmt: skip
    csrf = sign_up(client, "sam")
    set_email(client, csrf, "immediate")
    add_record(services, "sam", title=f"Title {MARKER}", body=f"Body {MARKER}")
    client.post("/api/v1/me/entries", json={"title": f"Story {MARKER}", "body": MARKER,
                "shareable": True}, headers={"X-CSRF-Token": csrf})  # fmt: skip
    # A request, approved for a short time (so it is "about to end"), then read.
    ends = (utcnow() + timedelta(days=2)).isoformat()
    tokens = grant_tokens(client, school, csrf, {"expires_at": ends},
                          categories=["education", "my_story"])  # fmt: skip
    base = f"/api/v1/vaults/{tokens['vault_handle']}"
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    listed = client.get(f"{base}/records", headers=auth).json()
    assert MARKER in listed[0]["title"]  # the agency did see it: the marker is reachable
    assert MARKER in client.get(f"{base}/story", headers=auth).text
    # Another request, declined with the marker as the reason.
    assert school.ask(connection_code(client, csrf)).status_code == 200
    client.post(f"/api/v1/me/requests/{newest_request(client)}/decline",
                json={"reason": MARKER}, headers={"X-CSRF-Token": csrf})  # fmt: skip
    # Tomorrow: the daily summary, and "sharing will stop soon"; then the grant runs out.
    set_email(client, csrf, "daily")
    jobs.run_once(services, now=utcnow() + timedelta(days=1))
    run_sql(services, "UPDATE access_grant SET expires_at = created_at")
    assert "ended 1" in jobs_run(cli_env) and "failed 0" in jobs_run(cli_env)

    kinds = {(r[0], r[1]) for r in rows(services)}
    assert kinds >= {
        ("young_person", "request_new"), ("young_person", "access"),
        ("young_person", "access_summary"), ("young_person", "grant_ending"),
        ("practitioner", "decision"),
        ("agency", "decision"), ("practitioner", "expiry"), ("agency", "expiry"),
    }  # fmt: skip
    assert all(r[3] == "sent" for r in rows(services))
    stored = json.dumps([list(map(str, r)) for r in rows(services)])
    mails = [readable(m) for m in smtp.mails]
    hooks = [body.decode() for _h, body in receiver.received]
    assert len(mails) >= 5 and len(hooks) >= 2
    for text in (stored, *mails, *hooks):
        assert MARKER not in text


def test_the_practitioner_and_young_persons_pages_tell_too(
    app: Any, client: TestClient, services: Services, smtp: Smtp
) -> None:
    """The same messages when both sides use Storykeep's own pages, not an agency system."""
    add_agency(services)
    secret = add_practitioner(services)
    assert secret is not None
    csrf = sign_up(client, "sam")
    set_email(client, csrf, "immediate")
    record_id = add_record(services, "sam", title=f"Title {MARKER}")
    with TestClient(app, base_url="https://testserver") as worker:
        staff = staff_sign_in(worker, services, secret)
        asks = []
        for _ in range(2):
            sent = worker.post("/practitioner/request", data={
                "csrf_token": staff, "connection_code": connection_code(client, csrf),
                "categories": ["education"], "purpose": "education_support", "days": "30",
            }, follow_redirects=False)  # fmt: skip
            assert sent.status_code == 303, sent.text
            asks.append(sent.headers["location"])
        requests = client.get("/api/v1/me/requests").json()
        said_no = client.post(f"/requests/{requests[0]['id']}/no", data={"csrf_token": csrf})
        said_yes = client.post(f"/requests/{requests[1]['id']}/yes", data={"csrf_token": csrf})
        assert said_no.status_code == 200 and said_yes.status_code == 200
        grant_url = next(
            m for m in re.findall(r'href="(/practitioner/grants/[0-9a-f-]{36})"',
                                  worker.get(asks[0]).text + worker.get(asks[1]).text)
        )  # fmt: skip
        assert worker.get(grant_url).status_code == 200
        assert worker.get(f"{grant_url}/records/{record_id}").status_code == 200
    grant_id = client.get("/api/v1/me/grants").json()[0]["id"]
    assert client.post(f"/sharing/{grant_id}/stop", data={"csrf_token": csrf}).status_code == 200
    kinds = sorted((r[0], r[1], r[5]) for r in rows(services))
    assert kinds == [
        ("practitioner", "decision", "Your request was approved"),
        ("practitioner", "decision", "Your request was declined"),
        ("practitioner", "expiry", "Your access has ended"),
        ("young_person", "access", "Someone looked at your things"),  # one, the same hour
        ("young_person", "request_new", "Someone has asked to see your things"),
        ("young_person", "request_new", "Someone has asked to see your things"),
    ]
    assert jobs.run_once(services).failed == 0
    assert len(smtp.to(ADDRESS)) == 3 and len(smtp.to("jo.bloggs@example.org")) == 3
    assert MARKER not in str(rows(services)) + str([readable(m) for m in smtp.mails])
