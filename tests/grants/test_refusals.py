"""Refused agency calls are authorization decisions, so they are logged (SECURITY.md,
"Audit"): a token whose sharing stopped, a record outside the grant, an action the grant
does not include, this agency's handle for another young person. The entry stays though
the call fails, and the young person sees it in plain words. A token nobody issued, and
an access token past its own ten minutes while its grant lives, are not logged."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from app.container import Services
from tests.conftest import run_sql, sign_in, sign_up
from tests.grants.kit import AgencyClient
from tests.grants.test_flow import bearer, db_time, granted, records_url
from tests.test_cli import storykeep
from vault.db_types import utcnow

REFUSED_WORDS = "without your OK, but Storykeep said no"


def refusals(services: Services) -> list[tuple[Any, ...]]:
    return [
        tuple(row)
        for row in run_sql(
            services,
            "SELECT chain, actor_type, actor_id, agency, purpose, grant_id, object_type,"
            " object_id FROM audit_event WHERE action = 'access:refused' ORDER BY id",
        )
    ]


def vault_of(services: Services, username: str) -> str:
    [(vault_id,)] = run_sql(
        services,
        "SELECT v.id FROM vault v JOIN young_person p ON p.id = v.young_person_id"
        " WHERE p.username = :u",
        u=username,
    )
    return str(vault_id).replace("-", "")


def last_used(services: Services, grant_id: str) -> Any:
    rows = run_sql(services, "SELECT id, last_used_at FROM access_grant")
    return next(
        used for gid, used in rows if str(gid).replace("-", "") == grant_id.replace("-", "")
    )


def audit_verifies(env: dict[str, str]) -> None:
    result = storykeep(env, "audit", "verify")
    assert result.returncode == 0, result.stdout + result.stderr


class TestLoggedRefusals:
    def test_a_call_after_sharing_stopped(
        self, client: TestClient, services: Services, school: AgencyClient,
        young: dict[str, Any], env: dict[str, str],
    ) -> None:  # fmt: skip
        tokens = granted(client, school, young)
        record = young["records"]["education"]
        stopped = client.post(
            f"/api/v1/me/grants/{tokens['grant_id']}/revoke",
            headers={"X-CSRF-Token": young["csrf"]},
        )
        assert stopped.status_code == 200, stopped.text
        refused = client.get(f"{records_url(tokens)}/{record}", headers=bearer(tokens))
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_token"
        assert client.get(records_url(tokens), headers=bearer(tokens)).status_code == 401
        [first, second] = refusals(services)
        assert first[:5] == (
            vault_of(services, "alex"), "practitioner", "jo.bloggs@example.org",
            "Example High School", "education_support",
        )  # fmt: skip
        assert first[5].replace("-", "") == tokens["grant_id"].replace("-", "")
        assert (first[6], first[7]) == ("agency_record", record.hex)
        assert (second[6], second[7]) == (None, None)
        # The young person sees it, in plain words, on the API and on the page.
        newest = client.get("/api/v1/me/audit").json()["events"][0]
        assert newest["action"] == "access:refused"
        page = html.unescape(client.get("/audit").text)
        assert f"tried to open your 'Report' {REFUSED_WORDS}" in page
        assert f"tried to look at your things {REFUSED_WORDS}" in page
        audit_verifies(env)

    def test_a_grant_whose_time_ran_out(
        self, client: TestClient, services: Services, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        tokens = granted(client, school, young)
        run_sql(
            services,
            "UPDATE access_grant SET expires_at = :t",
            t=db_time(services, utcnow() - timedelta(seconds=1)),
        )
        assert client.get(records_url(tokens), headers=bearer(tokens)).status_code == 401
        assert len(refusals(services)) == 1

    def test_a_record_outside_the_grant(
        self, client: TestClient, services: Services, school: AgencyClient,
        young: dict[str, Any], env: dict[str, str],
    ) -> None:  # fmt: skip
        tokens = granted(client, school, young)  # education only
        assert client.get(records_url(tokens), headers=bearer(tokens)).status_code == 200
        used = last_used(services, tokens["grant_id"])
        health = young["records"]["health"]
        outside = client.get(f"{records_url(tokens)}/{health}", headers=bearer(tokens))
        assert outside.status_code == 404
        [row] = refusals(services)
        assert row[0] == vault_of(services, "alex") and (row[6], row[7]) == (
            "agency_record",
            health.hex,
        )
        assert last_used(services, tokens["grant_id"]) == used  # a refusal is not a use
        page = html.unescape(client.get("/audit").text)
        assert f"tried to open your 'Check-up' {REFUSED_WORDS}" in page
        audit_verifies(env)

    def test_a_write_the_grant_does_not_allow(
        self, client: TestClient, services: Services, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        tokens = granted(client, school, young)  # read only
        before = run_sql(services, "SELECT count(*) FROM agency_record")[0][0]
        body = {"category": "education", "title": "Note", "body": "Text"}
        refused = client.post(records_url(tokens), json=body, headers=bearer(tokens))
        assert refused.status_code == 403
        assert run_sql(services, "SELECT count(*) FROM agency_record")[0][0] == before
        [row] = refusals(services)
        assert row[0] == vault_of(services, "alex") and row[6] is None

    def test_this_agencys_handle_for_another_young_person(
        self, client: TestClient, services: Services, school: AgencyClient,
        young: dict[str, Any], env: dict[str, str],
    ) -> None:  # fmt: skip
        alex_tokens = granted(client, school, young)
        sam = {"csrf": sign_up(client, "sam")}
        sam_tokens = granted(client, school, sam)
        crossed = client.get(records_url(sam_tokens), headers=bearer(alex_tokens))
        assert crossed.status_code == 404
        [row] = refusals(services)
        # In Sam's log, naming no grant (Alex's is none of Sam's business).
        assert row[0] == vault_of(services, "sam") and row[5] is None
        assert row[3] == "Example High School"
        assert client.get("/api/v1/me/audit").json()["events"][0]["action"] == "access:refused"
        sign_in(client, "alex")
        assert all(
            e["action"] != "access:refused" for e in client.get("/api/v1/me/audit").json()["events"]
        )
        audit_verifies(env)


class TestNotLogged:
    def test_a_token_nobody_issued(
        self, client: TestClient, services: Services, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        tokens = granted(client, school, young)
        forged = {"Authorization": "Bearer skat_" + "x" * 43}
        assert client.get(records_url(tokens), headers=forged).status_code == 401
        assert refusals(services) == []

    def test_an_access_token_past_its_ten_minutes_while_the_grant_lives(
        self, client: TestClient, services: Services, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        """Routine: the agency's system refreshes it. Telling the young person of a
        'refusal' here would alarm them over nothing."""
        tokens = granted(client, school, young)
        run_sql(
            services, "UPDATE oauth_token SET expires_at = :t WHERE kind = 'access'",
            t=db_time(services, utcnow() - timedelta(seconds=1)),
        )  # fmt: skip
        assert client.get(records_url(tokens), headers=bearer(tokens)).status_code == 401
        assert refusals(services) == []


class TestRepeatsOnTheTrailPage:
    """An agency's system that keeps reading one record, or keeps trying after sharing
    stopped, makes one line on "Who has looked" with a count, not a page of copies. The
    log and the JSON API keep every entry."""

    def test_repeated_reads_and_refusals_are_one_line_each_with_a_count(
        self, client: TestClient, services: Services, school: AgencyClient,
        young: dict[str, Any], env: dict[str, str],
    ) -> None:  # fmt: skip
        tokens = granted(client, school, young)
        report, check_up = young["records"]["education"], young["records"]["health"]
        for _ in range(5):
            url = f"{records_url(tokens)}/{report}"
            assert client.get(url, headers=bearer(tokens)).status_code == 200
        outside = f"{records_url(tokens)}/{check_up}"
        assert client.get(outside, headers=bearer(tokens)).status_code == 404
        assert (
            client.get(f"{records_url(tokens)}/{report}", headers=bearer(tokens)).status_code == 200
        )
        client.post(
            f"/api/v1/me/grants/{tokens['grant_id']}/revoke",
            headers={"X-CSRF-Token": young["csrf"]},
        )
        for _ in range(30):
            url = f"{records_url(tokens)}/{report}"
            assert client.get(url, headers=bearer(tokens)).status_code == 401

        lines = [
            html.unescape(x) for x in re.findall(r"<li>([^<]+)</li>", client.get("/audit").text)
        ]
        jo = "Jo Bloggs (Example High School)"
        refused = [x for x in lines if x.startswith(f"{jo} tried to open your 'Report'")]
        assert len(refused) == 1 and re.search(
            r"said no 30 times(, from \d\d:\d\d to| at) \d\d:\d\d", refused[0]
        )
        reads = [x for x in lines if x.startswith(f"{jo} read your 'Report'")]
        # Newest first: the read after the refused one, then the five before it.
        assert len(reads) == 2
        assert re.search(r"'Report' at \d\d:\d\d", reads[0])
        assert re.search(r"'Report' 5 times(, from \d\d:\d\d to| at) \d\d:\d\d", reads[1])
        assert lines.index(reads[0]) < lines.index(reads[1])
        assert sum(f"{jo} tried to open your 'Check-up'" in x for x in lines) == 1
        # Every entry is still there, one by one.
        events = client.get("/api/v1/me/audit", params={"limit": 100}).json()["events"]
        actions = [e["action"] for e in events]
        assert actions.count("access:refused") == 31 and actions.count("record:read") == 6
        audit_verifies(env)
