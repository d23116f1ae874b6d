"""Emergency access over the real OAuth endpoints: opened at the CIBA backchannel with a
``storykeep_emergency`` item, tokens on the first poll, reads through the resource API,
every rule's misuse refused, and refused attempts kept in the operator's log."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.container import Services
from tests.conftest import run_sql, sign_up
from tests.emergency.kit import (
    MARKER,
    REASON,
    SOCIAL_WORKER,
    Connected,
    ask_emergency,
    bearer,
    connect,
    council_client,
    count,
    db_time,
    emergency_item,
    open_emergency,
    operator_actions,
)
from tests.grants.kit import AgencyClient, agency_client, connection_code
from vault.db_types import utcnow


@pytest.fixture
def council(client: TestClient, services: Services) -> AgencyClient:
    return council_client(client, services)


@pytest.fixture
def alex(client: TestClient, services: Services, council: AgencyClient) -> Connected:
    return connect(client, services, council)


def records_url(person: Connected) -> str:
    return f"/api/v1/vaults/{person.handle}/records"


class TestOpening:
    def test_metadata_lists_the_emergency_type(self, client: TestClient) -> None:
        meta = client.get("/.well-known/oauth-authorization-server").json()
        assert meta["authorization_details_types_supported"] == [
            "storykeep_records",
            "storykeep_emergency",
        ]

    def test_granted_at_once_first_poll_gives_tokens_and_reads_are_scoped(
        self, client: TestClient, services: Services, council: AgencyClient, alex: Connected
    ) -> None:
        asked = ask_emergency(council, alex.handle, duration_hours=24)
        assert asked.status_code == 200, asked.text
        body = asked.json()
        assert set(body) == {"auth_req_id", "expires_in", "interval"}
        assert 23 * 3600 < body["expires_in"] <= 24 * 3600
        polled = council.poll(body["auth_req_id"])
        assert polled.status_code == 200, polled.text
        tokens = polled.json()
        assert tokens["vault_handle"] == alex.handle
        [details] = tokens["authorization_details"]
        assert details["type"] == "storykeep_emergency"
        assert details["actions"] == ["read"] and details["categories"] == ["care_plan"]
        ends = datetime.fromisoformat(details["expires_at"])
        assert timedelta(hours=23) < ends - utcnow() <= timedelta(hours=24)
        # The grant: child protection, never consent, read only.
        [(basis, purpose, actions)] = run_sql(
            services,
            "SELECT lawful_basis, purpose, actions FROM access_grant "
            "WHERE lawful_basis != 'consent'",
        )
        assert basis == "child_protection" and purpose == "emergency_child_protection"
        assert (json.loads(actions) if isinstance(actions, str) else actions) == ["read"]
        # Reads go through the normal resource API, scoped to the categories named.
        listed = client.get(records_url(alex), headers=bearer(tokens))
        assert listed.status_code == 200, listed.text
        assert [r["id"] for r in listed.json()] == [alex.records["care_plan"]]
        one = client.get(f"{records_url(alex)}/{alex.records['care_plan']}", headers=bearer(tokens))
        assert one.status_code == 200 and MARKER in one.json()["body"]
        outside = client.get(
            f"{records_url(alex)}/{alex.records['education']}", headers=bearer(tokens)
        )
        assert outside.status_code == 404
        # Read only: writing is refused.
        write = client.post(
            records_url(alex),
            json={"category": "care_plan", "title": "New", "body": "Text"},
            headers=bearer(tokens),
        )
        assert write.status_code == 403
        # Introspection says what it is.
        seen = council.introspect(tokens["access_token"])
        assert seen["active"] is True
        assert seen["authorization_details"][0]["type"] == "storykeep_emergency"
        # A second poll of the same auth_req_id gets nothing more.
        again = council.poll(body["auth_req_id"])
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"

    def test_audit_entries_are_tagged_as_emergency(
        self, client: TestClient, services: Services, council: AgencyClient, alex: Connected
    ) -> None:
        tokens = open_emergency(council, alex)
        client.get(records_url(alex), headers=bearer(tokens))
        rows = run_sql(
            services,
            "SELECT action, purpose, grant_id, actor_label, agency FROM audit_event "
            "WHERE grant_id = :g ORDER BY seq",
            g=tokens["grant_id"],
        )
        actions = [r[0] for r in rows]
        assert actions[0] == "emergency:opened" and "record:read" in actions
        assert {r[1] for r in rows} == {"emergency_child_protection"}
        assert {(r[3], r[4]) for r in rows} == {("Ali Khan", "Example Council")}
        # Nothing in the log holds the reason or any content.
        log = json.dumps(run_sql(services, "SELECT * FROM audit_event"), default=str)
        assert REASON not in log and MARKER not in log

    def test_reason_is_sealed_not_stored_in_clear(
        self, client: TestClient, services: Services, council: AgencyClient, alex: Connected
    ) -> None:
        open_emergency(
            council, alex, defer_notice={"reason": "Telling now could alert the carer.", "days": 2}
        )
        stored = json.dumps(
            [
                run_sql(services, "SELECT * FROM emergency_access"),
                run_sql(services, "SELECT * FROM access_request"),
                run_sql(services, "SELECT * FROM access_grant"),
            ],
            default=str,
        )
        assert REASON not in stored and "alert the carer" not in stored

    def test_young_person_and_advocate_are_told_at_once_without_content(
        self, client: TestClient, services: Services, council: AgencyClient, alex: Connected
    ) -> None:
        from tests.advocates.helpers import advocate_sign_up, invite

        code = invite(client, alex.csrf)["code"]
        with TestClient(client.app, base_url="https://testserver") as adv:
            assert advocate_sign_up(adv, code).status_code == 303
        open_emergency(council, alex)
        rows = run_sql(
            services,
            "SELECT recipient_kind, subject, body FROM notification WHERE kind = 'emergency'",
        )
        assert sorted(r[0] for r in rows) == ["advocate", "young_person"]
        for _kind, subject, text in rows:
            assert subject == "Emergency access to your things"
            assert "Childline" in text and "consent" not in text.lower()
            assert MARKER not in text and REASON not in text

    def test_refresh_never_outlives_the_grant(
        self, client: TestClient, services: Services, council: AgencyClient, alex: Connected
    ) -> None:
        tokens = open_emergency(council, alex, duration_hours=2)
        ends = datetime.fromisoformat(tokens["authorization_details"][0]["expires_at"])
        refresh = council.introspect(tokens["refresh_token"])
        access = council.introspect(tokens["access_token"])
        assert refresh["active"] and refresh["exp"] <= int(ends.timestamp())
        assert ends - utcnow() <= timedelta(hours=2)
        assert access["exp"] <= refresh["exp"]
        # A refresh gives a new pair that still ends with the grant.
        fresh = council.refresh(tokens["refresh_token"])
        assert fresh.status_code == 200, fresh.text
        assert council.introspect(fresh.json()["refresh_token"])["exp"] <= int(ends.timestamp())


class TestExpiry:
    def _expire(self, services: Services, grant_id: str) -> None:
        past = db_time(services, utcnow() - timedelta(minutes=1))
        run_sql(
            services, "UPDATE access_grant SET expires_at = :t WHERE id = :g", t=past, g=grant_id
        )
        run_sql(services, "UPDATE oauth_token SET expires_at = :t WHERE grant_id = :g", t=past,
                g=grant_id)  # fmt: skip

    def test_reading_after_expiry_is_401_and_refresh_refused(
        self, client: TestClient, services: Services, council: AgencyClient, alex: Connected
    ) -> None:
        tokens = open_emergency(council, alex)
        assert client.get(records_url(alex), headers=bearer(tokens)).status_code == 200
        self._expire(services, tokens["grant_id"])
        late = client.get(records_url(alex), headers=bearer(tokens))
        assert late.status_code == 401 and late.json()["error"] == "invalid_token"
        refreshed = council.refresh(tokens["refresh_token"])
        assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
        assert council.introspect(tokens["access_token"]) == {"active": False}

    def test_grant_end_alone_stops_reads_and_refresh(
        self, client: TestClient, services: Services, council: AgencyClient, alex: Connected
    ) -> None:
        """Only the grant's end moves: the tokens die with it (SECURITY.md)."""
        tokens = open_emergency(council, alex)
        key = tokens["grant_id"]
        past = db_time(services, utcnow() - timedelta(seconds=1))
        run_sql(services, "UPDATE access_grant SET expires_at = :t WHERE id = :g", t=past, g=key)
        assert client.get(records_url(alex), headers=bearer(tokens)).status_code == 401
        refreshed = council.refresh(tokens["refresh_token"])
        assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"


class TestWhoMayUseIt:
    def test_non_statutory_agency_is_refused_and_the_attempt_logged(
        self, client: TestClient, services: Services
    ) -> None:
        # Even with the child_protection purpose: not statutory, so never.
        school = agency_client(client, services, purposes=("education_support", "child_protection"))
        alex = connect(client, services, school, purpose="education_support")
        before = count(services, "access_grant")
        refused = ask_emergency(school, alex.handle)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "access_denied"
        assert "statutory" in refused.json()["error_description"]
        assert count(services, "access_grant") == before
        assert count(services, "emergency_access") == 0
        # The refusal is on the operator's chain, although the request failed.
        assert operator_actions(services)[-1] == "emergency:refused"
        [(label, agency, purpose)] = run_sql(
            services,
            "SELECT actor_label, agency, purpose FROM audit_event "
            "WHERE action = 'emergency:refused'",
        )
        assert (label, agency, purpose) == ("Ali Khan", "Example High School",
                                            "emergency_child_protection")  # fmt: skip

    def test_statutory_agency_without_child_protection_purpose_is_refused(
        self, client: TestClient, services: Services
    ) -> None:
        police = agency_client(
            client, services, "Example Police", purposes=("care_planning",), statutory=True
        )
        alex = connect(client, services, police)
        refused = ask_emergency(police, alex.handle)
        assert refused.status_code == 403 and refused.json()["error"] == "access_denied"
        assert operator_actions(services)[-1] == "emergency:refused"

    def test_unregistered_role_is_refused_until_the_operator_registers_it(
        self, client: TestClient, services: Services, council: AgencyClient, alex: Connected,
        env: dict[str, str],
    ) -> None:  # fmt: skip
        from tests.test_cli import storykeep

        manager = {**SOCIAL_WORKER, "role": "Team Manager"}
        refused = ask_emergency(council, alex.handle, practitioner=manager)
        assert refused.status_code == 403
        assert "role" in refused.json()["error_description"]
        assert operator_actions(services).count("emergency:refused") == 1
        added = storykeep(env, "agency", "emergency-role", "Example Council",
                          "team manager")  # fmt: skip
        assert added.returncode == 0, added.stderr
        allowed = ask_emergency(council, alex.handle, practitioner=manager)
        assert allowed.status_code == 200, allowed.text

    def test_role_spelling_is_forgiving(
        self, client: TestClient, services: Services, council: AgencyClient, alex: Connected
    ) -> None:
        spelled = {**SOCIAL_WORKER, "role": "Child Protection"}
        assert ask_emergency(council, alex.handle, practitioner=spelled).status_code == 200

    def test_a_connection_code_is_not_a_handle_and_is_not_used_up(
        self, client: TestClient, services: Services, council: AgencyClient
    ) -> None:
        csrf = sign_up(client, "sky")
        code = connection_code(client, csrf)
        refused = ask_emergency(council, code)
        assert refused.status_code == 400 and refused.json()["error"] == "unknown_user_id"
        assert count(services, "access_grant") == 0
        # The code still works for an ordinary request.
        asked = council.ask(code, purpose="care_planning", categories=["education"], days=7)
        assert asked.status_code == 200, asked.text

    def test_another_agencys_handle_is_unknown(
        self, client: TestClient, services: Services, council: AgencyClient, alex: Connected
    ) -> None:
        other = council_client(client, services, "Other Council")
        refused = ask_emergency(other, alex.handle)
        assert refused.status_code == 400 and refused.json()["error"] == "unknown_user_id"


class TestWhatMayBeAsked:
    @pytest.mark.parametrize(
        ("overrides", "says"),
        [
            ({"reason": None}, "reason is required"),
            ({"reason": "  worried "}, "reason is required"),
            ({"reason_code": "hunch"}, "reason_code must be one of"),
            ({"reason_code": None}, "reason_code must be one of"),
            ({"duration_hours": 73}, "from 1 to 72"),
            ({"duration_hours": 0}, "from 1 to 72"),
            ({"duration_hours": "24"}, "from 1 to 72"),
            ({"actions": ["read", "write"]}, "read-only"),
            ({"actions": ["write"]}, "read-only"),
            ({"categories": []}, "categories must name"),
            ({"categories": None}, "categories must name"),
            ({"categories": ["diary"]}, "unknown categories: diary"),
            ({"categories": ['say "hi" \\ é']}, "unknown categories: say ?hi? ? ?"),
            ({"defer_notice": {"reason": "It could put the child at risk.", "days": 8}},
             "from 1 to 7"),
            ({"defer_notice": {"days": 3}}, "defer_notice must be"),
            ({"defer_notice": {"reason": "short", "days": 3}}, "defer_notice.reason"),
            ({"purpose": "child_protection"}, "unknown fields: purpose"),
        ],
    )  # fmt: skip
    def test_bad_details_are_refused_and_change_nothing(
        self, client: TestClient, services: Services, council: AgencyClient, alex: Connected,
        overrides: dict[str, Any], says: str,
    ) -> None:  # fmt: skip
        item = emergency_item(**overrides)
        for key, value in overrides.items():
            if value is None:
                item.pop(key, None)
        before = (count(services, "access_request"), count(services, "audit_event"))
        refused = ask_emergency(council, alex.handle, item=item)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] == "invalid_authorization_details"
        assert says in refused.json()["error_description"]
        assert (count(services, "access_request"), count(services, "audit_event")) == before
        assert count(services, "emergency_access") == 0

    def test_the_emergency_purpose_cannot_be_asked_for_with_consent(
        self, client: TestClient, services: Services, council: AgencyClient
    ) -> None:
        csrf = sign_up(client, "sky")
        asked = council.ask(connection_code(client, csrf), purpose="emergency_child_protection")
        assert asked.status_code == 400
        assert asked.json()["error"] == "invalid_authorization_details"


class TestNoChaining:
    def test_second_emergency_refused_until_the_first_is_reviewed(
        self, client: TestClient, services: Services, council: AgencyClient, alex: Connected
    ) -> None:
        open_emergency(council, alex)
        grants = count(services, "access_grant")
        requests = count(services, "access_request")
        again = ask_emergency(council, alex.handle)
        assert again.status_code == 403, again.text
        assert again.json()["error"] == "access_denied"
        assert "reviewed" in again.json()["error_description"]
        assert count(services, "access_grant") == grants
        assert count(services, "access_request") == requests
        assert operator_actions(services)[-1] == "emergency:refused"
        # After an independent review, another may be opened.
        run_sql(
            services,
            "UPDATE emergency_access SET reviewed_at = :t, review_outcome = 'justified'",
            t=db_time(services, utcnow()),
        )
        assert ask_emergency(council, alex.handle).status_code == 200

    def test_chaining_is_per_agency(
        self, client: TestClient, services: Services, council: AgencyClient, alex: Connected
    ) -> None:
        open_emergency(council, alex)
        police = council_client(client, services, "Example Police Scotland")
        handle = connect_again(client, services, police, alex)
        assert ask_emergency(police, handle).status_code == 200


def connect_again(
    client: TestClient, services: Services, agency: AgencyClient, person: Connected
) -> str:
    asked = agency.ask(
        connection_code(client, person.csrf), categories=["education"], purpose="care_planning"
    )
    pending = [r for r in client.get("/api/v1/me/requests").json() if r["status"] == "pending"]
    client.post(
        f"/api/v1/me/requests/{pending[0]['id']}/approve",
        json={},
        headers={"X-CSRF-Token": person.csrf},
    )
    return str(agency.poll(asked.json()["auth_req_id"]).json()["vault_handle"])


class TestLapsedPoll:
    def test_a_request_marked_lapsed_polls_as_expired_token(
        self, client: TestClient, services: Services, council: AgencyClient
    ) -> None:
        csrf = sign_up(client, "sky")
        asked = council.ask(connection_code(client, csrf), purpose="care_planning")
        run_sql(services, "UPDATE access_request SET status = 'lapsed'")
        polled = council.poll(asked.json()["auth_req_id"])
        assert polled.status_code == 400 and polled.json()["error"] == "expired_token"
