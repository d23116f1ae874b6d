"""The operator's commands for emergency access, run as real processes: registering
reviewers and roles, listing emergencies (overdue ones flagged), and the scheduled job
that tells young people once a deferral ends and flags overdue reviews."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.container import Services
from tests.conftest import PASSWORD, run_sql
from tests.emergency.kit import (
    COUNCIL,
    MARKER,
    REASON,
    SOCIAL_WORKER,
    Connected,
    bearer,
    connect,
    council_client,
    count,
    db_time,
    open_emergency,
    operator_actions,
)
from tests.emergency.test_young_person import text_of
from tests.grants.kit import AgencyClient
from tests.practitioner.kit import add_agency, add_practitioner, post_signin, totp_now
from tests.test_cli import storykeep
from vault.db_types import utcnow

REVIEW_AGENCY = "Independent Review Service"


def run(env: dict[str, str], *args: str, stdin: str = "") -> Any:
    return storykeep(env, *args, stdin=stdin)


@pytest.fixture
def council(client: TestClient, services: Services) -> AgencyClient:
    return council_client(client, services)


@pytest.fixture
def alex(client: TestClient, services: Services, council: AgencyClient) -> Connected:
    return connect(client, services, council)


class TestReviewerAdd:
    def test_new_account_gets_a_secret_once_and_can_sign_in(
        self, env: dict[str, str], services: Services, worker: TestClient
    ) -> None:
        add_agency(services, REVIEW_AGENCY, purposes=("oversight",))
        result = run(env, "reviewer", "add", "Rev.Iew@Review.example.org", "--agency",
                     REVIEW_AGENCY, "--name", "Rev Iew", "--password-stdin",
                     stdin=PASSWORD + "\n")  # fmt: skip
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout)
        assert out["email"] == "rev.iew@review.example.org" and out["account"] == "created"
        assert out["reviewer"] is True and out["role"] == "emergency access reviewer"
        assert out["totp_uri"].startswith("otpauth://totp/")
        assert operator_actions(services)[-2:] == ["practitioner:added", "emergency:reviewer_added"]
        code = totp_now(out["totp_secret"])
        signed_in = post_signin(worker, "rev.iew@review.example.org", PASSWORD, code)
        assert signed_in.status_code == 303
        assert worker.get("/practitioner/reviews").status_code == 200

    def test_existing_practitioner_is_flagged_without_a_new_secret(
        self, env: dict[str, str], services: Services
    ) -> None:
        add_agency(services, REVIEW_AGENCY, purposes=("oversight",))
        add_practitioner(services, "pat@review.example.org", REVIEW_AGENCY, "Pat Doe")
        result = run(env, "reviewer", "add", "pat@review.example.org", "--agency", REVIEW_AGENCY)
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout)
        assert out["account"] == "existing" and "totp_secret" not in out
        assert count(services, "emergency_reviewer") == 1
        again = run(env, "reviewer", "add", "pat@review.example.org", "--agency", REVIEW_AGENCY)
        assert again.returncode == 1 and "already an emergency access reviewer" in again.stderr
        assert count(services, "emergency_reviewer") == 1

    @pytest.mark.parametrize(
        ("args", "stdin", "message"),
        [
            (["new@review.example.org", "--agency", REVIEW_AGENCY], "", "--password-stdin"),
            (["new@review.example.org", "--agency", "Nowhere", "--password-stdin"],
             PASSWORD + "\n", "No agency"),
            (["not-an-email", "--agency", REVIEW_AGENCY, "--password-stdin"], PASSWORD + "\n",
             "not an email"),
            (["new@review.example.org", "--agency", REVIEW_AGENCY, "--password-stdin"],
             "short\n", "at least 8"),
            (["pat@school.example.org", "--agency", REVIEW_AGENCY], "", "another agency"),
        ],
    )  # fmt: skip
    def test_refusals_change_nothing(
        self, env: dict[str, str], services: Services, args: list[str], stdin: str, message: str
    ) -> None:
        add_agency(services, REVIEW_AGENCY, purposes=("oversight",))
        add_agency(services, "Example High School")
        add_practitioner(services, "pat@school.example.org", "Example High School", "Pat Doe")
        people = count(services, "practitioner")
        result = run(env, "reviewer", "add", *args, stdin=stdin)
        assert result.returncode == 1, result.stdout
        assert message in result.stderr and result.stderr.startswith("error: ")
        assert count(services, "emergency_reviewer") == 0
        assert count(services, "practitioner") == people


class TestEmergencyRole:
    def test_only_statutory_child_protection_agencies(
        self, env: dict[str, str], services: Services
    ) -> None:
        made = [
            run(env, "agency", "add", "Example School", "--purpose", "child_protection"),
            run(env, "agency", "add", "Example Police", "--purpose", "care_planning",
                "--statutory"),
            run(env, "agency", "add", COUNCIL, "--purpose", "child_protection", "--purpose",
                "care_planning", "--statutory"),
        ]  # fmt: skip
        assert all(m.returncode == 0 for m in made), [m.stderr for m in made]
        for name in ("Example School", "Example Police"):
            refused = run(env, "agency", "emergency-role", name, "team manager")
            assert refused.returncode == 1 and "not a statutory agency" in refused.stderr
        added = run(env, "agency", "emergency-role", COUNCIL, "Team  Manager")
        assert added.returncode == 0, added.stderr
        assert json.loads(added.stdout)["emergency_roles"] == ["child_protection", "team_manager"]
        assert operator_actions(services)[-1] == "agency:emergency_role_added"
        for role in ("team-manager", "Child Protection"):
            again = run(env, "agency", "emergency-role", COUNCIL, role)
            assert again.returncode == 1 and "already" in again.stderr
        missing = run(env, "agency", "emergency-role", "Nowhere", "team manager")
        assert missing.returncode == 1 and "No agency" in missing.stderr
        [(roles,)] = run_sql(services, "SELECT emergency_roles FROM agency WHERE name = :n",
                             n=COUNCIL)  # fmt: skip
        assert (json.loads(roles) if isinstance(roles, str) else roles) == ["team_manager"]


class TestListAndJobs:
    def test_list_shows_no_reasons_and_flags_overdue(
        self, env: dict[str, str], services: Services, council: AgencyClient, alex: Connected
    ) -> None:
        open_emergency(council, alex)
        listed = run(env, "emergency", "list")
        assert listed.returncode == 0, listed.stderr
        out = json.loads(listed.stdout)
        [line] = out["emergencies"]
        assert line["agency"] == COUNCIL and line["review"] == "waiting"
        assert set(line) == {"id", "agency", "opened_at", "ends_at", "review"}
        assert REASON not in listed.stdout and MARKER not in listed.stdout
        assert alex.handle not in listed.stdout
        assert json.loads(run(env, "emergency", "list", "--overdue").stdout)["count"] == 0
        # Six days on, unreviewed: overdue.
        old = db_time(services, utcnow() - timedelta(days=6))
        run_sql(services, "UPDATE emergency_access SET created_at = :t", t=old)
        overdue = json.loads(run(env, "emergency", "list", "--overdue").stdout)
        assert overdue["count"] == 1 and overdue["emergencies"][0]["review"] == "OVERDUE"
        # The job flags it on the operator's chain, once however often it runs.
        for _ in range(2):
            job = run(env, "jobs", "run")
            assert job.returncode == 0, job.stderr
            assert "overdue reviews 1" in job.stdout
        assert operator_actions(services).count("emergency:review_overdue") == 1
        [(flagged,)] = run_sql(services, "SELECT overdue_flagged_at FROM emergency_access")
        assert flagged is not None
        # Reviewed: no longer overdue.
        run_sql(services, "UPDATE emergency_access SET reviewed_at = :t, "
                "review_outcome = 'justified'", t=db_time(services, utcnow()))  # fmt: skip
        after = json.loads(run(env, "emergency", "list").stdout)["emergencies"][0]
        assert after["review"].startswith("reviewed ")
        assert json.loads(run(env, "emergency", "list", "--overdue").stdout)["count"] == 0
        verified = run(env, "audit", "verify")
        assert verified.returncode == 0, verified.stderr

    def test_deferred_notice_is_sent_only_after_the_deferral_ends(
        self, client: TestClient, env: dict[str, str], services: Services,
        council: AgencyClient, alex: Connected, worker: TestClient,
    ) -> None:  # fmt: skip
        from tests.advocates.helpers import advocate_sign_up, invite, link_ids

        code = invite(client, alex.csrf)["code"]
        adv = worker  # the advocate's browser, signed in for the whole test
        assert advocate_sign_up(adv, code).status_code == 303
        defer = {"reason": "Telling now could alert the carer before the visit.", "days": 3}
        tokens = open_emergency(council, alex, defer_notice=defer)
        read = client.get(f"/api/v1/vaults/{alex.handle}/records", headers=bearer(tokens))
        assert read.status_code == 200, read.text

        def told() -> list[Any]:
            return run_sql(services, "SELECT recipient_kind, body FROM notification "
                           "WHERE kind = 'emergency' ORDER BY recipient_kind")  # fmt: skip

        assert told() == []
        # Nobody is told yet, but the access is already in both audit views (SECURITY.md:
        # "It always appears in the young person's and advocate's audit view").
        trail = text_of(client.get("/audit").text)
        assert f"{SOCIAL_WORKER['name']} ({COUNCIL}) used Emergency access" in trail
        assert f"{SOCIAL_WORKER['name']} ({COUNCIL}) read your 'Plan {MARKER}'" in trail
        events = client.get("/api/v1/me/audit").json()["events"]
        mine = {e["action"] for e in events if e["grant_id"] == tokens["grant_id"]}
        assert {"emergency:opened", "record:read"} <= mine
        [link] = link_ids(adv)
        seen = text_of(adv.get(f"/advocate/people/{link}").text)
        assert "used emergency access and did not ask first" in seen
        assert "Emergency access, opened" in seen
        assert MARKER not in seen and REASON not in seen and "carer" not in seen
        assert REASON not in trail and "carer" not in trail
        [(until,)] = run_sql(services, "SELECT notice_deferred_until FROM emergency_access")
        assert until is not None
        rows = run_sql(
            services,
            "SELECT action FROM audit_event WHERE grant_id = :g ORDER BY seq",
            g=tokens["grant_id"],
        )
        actions = [r[0] for r in rows]
        assert actions == ["emergency:opened", "emergency:notice_deferred", "record:read"]
        job = run(env, "jobs", "run")
        assert job.returncode == 0 and "emergency notices 0" in job.stdout
        assert told() == []
        # The deferral ends (moved back in time): the next run tells them, once.
        run_sql(services, "UPDATE emergency_access SET notice_deferred_until = :t",
                t=db_time(services, utcnow() - timedelta(minutes=1)))  # fmt: skip
        job = run(env, "jobs", "run")
        assert job.returncode == 0 and "emergency notices 1" in job.stdout
        rows = told()
        assert [r[0] for r in rows] == ["advocate", "young_person"]
        assert all(MARKER not in r[1] and "carer" not in r[1] for r in rows)
        assert "emergency notices 0" in run(env, "jobs", "run").stdout
        assert len(told()) == 2
        [(told_at,)] = run_sql(services, "SELECT young_person_told_at FROM emergency_access")
        assert told_at is not None
        trail = client.get("/audit").text
        assert "Storykeep sent you a message about it" in trail
        assert "chose to wait a while to tell you" in trail


@pytest.fixture
def worker(app: Any) -> Any:
    with TestClient(app, base_url="https://testserver") as browser:
        yield browser


def test_no_other_message_tells_early_while_notice_is_deferred(
    env: dict[str, str], services: Services, council: AgencyClient, alex: Connected
) -> None:
    defer = {"reason": "Telling now could alert the carer before the visit.", "days": 3}
    open_emergency(council, alex, defer_notice=defer)
    assert run(env, "jobs", "run").returncode == 0
    early = run_sql(
        services,
        "SELECT kind FROM notification WHERE recipient_kind = 'young_person' "
        "AND kind IN ('emergency', 'grant_ending', 'access', 'access_summary')",
    )
    assert early == []
