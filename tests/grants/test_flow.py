"""Agencies ask, young people decide, tokens die with the grant: the whole flow over
HTTP, with every negative case from SECURITY.md's token section."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.container import Services
from app.settings import Settings
from grants.oauth.tokens import hash_token
from tests.app.test_api import make_session_old
from tests.conftest import PASSWORD, add_record, run_sql, sign_in, sign_up
from tests.grants.kit import TEACHER, AgencyClient, agency_client, connection_code, decline_reason
from tests.vault.test_storage import database_text
from vault.db_types import utcnow
from vault.errors import IntegrityFailure

# Words only the young person wrote, to look for in the database.
REASON = "They asked before and it went badly zq8"
SUMMARY = (
    "Jo Bloggs, guidance teacher at Example High School, wants to read your education "
    "records for 30 days to plan support at school."
)


def db_time(services: Services, when: Any) -> Any:
    return when.replace(tzinfo=None) if services.settings.is_sqlite else when


def only_request(client: TestClient) -> dict[str, Any]:
    requests = client.get("/api/v1/me/requests").json()
    assert len(requests) == 1
    return dict(requests[0])


def approve(client: TestClient, csrf: str, request_id: str, **narrow: Any) -> Any:
    return client.post(
        f"/api/v1/me/requests/{request_id}/approve", json=narrow, headers={"X-CSRF-Token": csrf}
    )


def granted(
    client: TestClient, school: AgencyClient, young: dict[str, Any], **ask: Any
) -> dict[str, Any]:
    """Run the flow to tokens. Returns the token response."""
    asked = school.ask(connection_code(client, young["csrf"]), **ask)
    assert asked.status_code == 200, asked.text
    newest = client.get("/api/v1/me/requests").json()[0]
    assert newest["status"] == "pending"
    assert approve(client, young["csrf"], newest["id"]).status_code == 200
    tokens = school.poll(asked.json()["auth_req_id"])
    assert tokens.status_code == 200, tokens.text
    return dict(tokens.json())


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def records_url(tokens: dict[str, Any]) -> str:
    return f"/api/v1/vaults/{tokens['vault_handle']}/records"


def assert_dead(client: TestClient, school: AgencyClient, tokens: dict[str, Any]) -> None:
    """SECURITY.md: the next call 401, introspection inactive, refresh invalid_grant."""
    call = client.get(records_url(tokens), headers=bearer(tokens))
    assert call.status_code == 401 and call.json()["error"] == "invalid_token"
    assert call.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert school.introspect(tokens["access_token"]) == {"active": False}
    assert school.introspect(tokens["refresh_token"]) == {"active": False}
    refreshed = school.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"


class TestConnectionCodes:
    def test_make_list_show_and_cancel(self, client: TestClient, young: dict[str, Any]) -> None:
        made = client.post("/api/v1/me/connection-codes", headers={"X-CSRF-Token": young["csrf"]})
        assert made.status_code == 201
        code = made.json()
        assert len(code["code"].replace("-", "")) == 16
        listed = client.get("/api/v1/me/connection-codes").json()
        assert [c["code"] for c in listed] == [code["code"]]
        qr = client.get(f"/api/v1/me/connection-codes/{code['id']}/qr.svg")
        assert qr.headers["content-type"] == "image/svg+xml" and b"<svg" in qr.content
        cancel = client.delete(
            f"/api/v1/me/connection-codes/{code['id']}", headers={"X-CSRF-Token": young["csrf"]}
        )
        assert cancel.status_code == 204
        assert client.get("/api/v1/me/connection-codes").json() == []

    def test_codes_expire_after_a_day(self, client: TestClient, young: dict[str, Any]) -> None:
        made = client.post("/api/v1/me/connection-codes", headers={"X-CSRF-Token": young["csrf"]})
        from datetime import datetime

        lasts = datetime.fromisoformat(made.json()["expires_at"]) - utcnow()
        assert timedelta(hours=23, minutes=59) < lasts <= timedelta(hours=24)

    def test_code_is_stored_only_hashed_and_sealed(
        self, client: TestClient, services: Services, young: dict[str, Any]
    ) -> None:
        code = connection_code(client, young["csrf"]).replace("-", "")
        dump = json.dumps(run_sql(services, "SELECT * FROM connection_code"), default=str)
        assert code not in dump


class TestAsking:
    def test_request_shows_in_plain_words(
        self, client: TestClient, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        asked = school.ask(connection_code(client, young["csrf"]))
        assert asked.status_code == 200
        body = asked.json()
        assert set(body) == {"auth_req_id", "expires_in", "interval"}
        assert body["expires_in"] == 7 * 24 * 3600 and body["interval"] == 5
        request = only_request(client)
        assert request["summary"] == SUMMARY
        assert request["status"] == "pending"
        assert request["practitioner"] == {"name": "Jo Bloggs", "role": "guidance teacher"}
        actions = [e["action"] for e in client.get("/api/v1/me/audit").json()["events"]]
        assert actions[:2] == ["request:received", "code:created"]

    def test_reused_cancelled_expired_and_guessed_codes_reveal_nothing(
        self, client: TestClient, services: Services, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        """SECURITY.md: a code that was used, cancelled or has run out is answered exactly
        like a guess, so an agency cannot tell that a young person is behind it."""
        used = connection_code(client, young["csrf"])
        assert school.ask(used).status_code == 200
        made = client.post("/api/v1/me/connection-codes", headers={"X-CSRF-Token": young["csrf"]})
        cancelled = made.json()["code"]
        cancel = client.delete(
            f"/api/v1/me/connection-codes/{made.json()['id']}",
            headers={"X-CSRF-Token": young["csrf"]},
        )
        assert cancel.status_code == 204
        expired = connection_code(client, young["csrf"])
        run_sql(  # only the one live code left: the one just made
            services,
            "UPDATE connection_code SET expires_at = :t"
            " WHERE used_at IS NULL AND cancelled_at IS NULL",
            t=db_time(services, utcnow() - timedelta(seconds=1)),
        )
        guessed = school.ask("ABCD-EFGH-JKMN-PQRS")
        assert guessed.status_code == 400 and guessed.json()["error"] == "unknown_user_id"
        other = agency_client(client, services, name="Example Health Board")
        for why, asked in {
            "reused": school.ask(used),
            "reused by another agency": other.ask(used),
            "cancelled": school.ask(cancelled),
            "expired": school.ask(expired),
        }.items():
            assert asked.status_code == 400, why
            assert asked.json() == guessed.json(), why
        assert len(client.get("/api/v1/me/requests").json()) == 1

    def test_a_code_works_typed_in_lower_case_without_dashes(
        self, client: TestClient, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        code = connection_code(client, young["csrf"]).replace("-", "").lower()
        assert school.ask(code).status_code == 200

    @pytest.mark.parametrize(
        ("details", "fragment"),
        [
            ("not json", "JSON array"),
            ("[]", "exactly one"),
            ('[{"type":"other"}]', "type"),
            (
                '[{"type":"storykeep_records","actions":["delete"],"categories":["education"],'
                '"purpose":"education_support","duration_days":30}]',
                "unknown actions",
            ),
            (
                '[{"type":"storykeep_records","actions":["read"],"categories":["diary"],'
                '"purpose":"education_support","duration_days":30}]',
                "unknown categories",
            ),
            (
                '[{"type":"storykeep_records","actions":["read"],"categories":["education"],'
                '"purpose":"health_care","duration_days":30}]',
                "purpose",
            ),
            (
                '[{"type":"storykeep_records","actions":["read"],"categories":["education"],'
                '"purpose":"education_support","duration_days":91}]',
                "at most 90",
            ),
            (
                '[{"type":"storykeep_records","actions":["read"],"categories":["education"],'
                '"purpose":"education_support","duration_days":"30"}]',
                "whole number",
            ),
            (
                '[{"type":"storykeep_records","actions":["write"],"categories":["my_story"],'
                '"purpose":"education_support","duration_days":3}]',
                "own story",
            ),
            (
                '[{"type":"storykeep_records","actions":["read"],"categories":["education"],'
                '"purpose":"education_support","duration_days":3,"extra":1}]',
                "unknown fields",
            ),
            # Python's JSON decoder recurses per level: RecursionError, not ValueError.
            ("[" * 5000, "must be a JSON array"),
        ],
    )
    def test_bad_authorization_details_change_nothing(
        self,
        client: TestClient,
        school: AgencyClient,
        young: dict[str, Any],
        services: Services,
        details: str,
        fragment: str,
    ) -> None:
        code = connection_code(client, young["csrf"])
        bad = school.post(
            "/oauth/backchannel",
            {
                "login_hint": code,
                "authorization_details": details,
                "practitioner": json.dumps(TEACHER),
            },
        )
        assert bad.status_code == 400
        assert bad.json()["error"] == "invalid_authorization_details"
        assert fragment in bad.json()["error_description"]
        assert run_sql(services, "SELECT count(*) FROM access_request")[0][0] == 0
        assert school.ask(code).status_code == 200  # the code was not used up

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("practitioner", "{}"),
            ("practitioner", '{"name":"x","role":"y","email":"nope"}'),
            ("practitioner", '{"name":' * 5000),  # nested too deeply to decode
            ("requested_expiry", "10"),
            ("requested_expiry", "lots"),
            ("requested_expiry", "\u00b2"),  # a digit to isdigit(), not to int()
            ("requested_expiry", "\u0663\u0660\u0660"),  # Arabic-Indic 300: 0-9 only
        ],
    )
    def test_bad_request_fields(
        self,
        client: TestClient,
        school: AgencyClient,
        young: dict[str, Any],
        field: str,
        value: str,
    ) -> None:
        code = connection_code(client, young["csrf"])
        form = {
            "login_hint": code,
            "practitioner": json.dumps(TEACHER),
            field: value,
            "authorization_details": json.dumps(
                [
                    {
                        "type": "storykeep_records",
                        "actions": ["read"],
                        "categories": ["education"],
                        "purpose": "education_support",
                        "duration_days": 30,
                    }
                ]
            ),
        }
        response = school.post("/oauth/backchannel", form)
        assert response.status_code == 400 and response.json()["error"] == "invalid_request"
        assert school.ask(code).status_code == 200


class TestPolling:
    def test_pending_slow_down_and_another_clients_poll(
        self, client: TestClient, services: Services, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        auth_req_id = school.ask(connection_code(client, young["csrf"])).json()["auth_req_id"]
        first = school.poll(auth_req_id)
        assert first.status_code == 400 and first.json()["error"] == "authorization_pending"
        fast = school.poll(auth_req_id)
        assert fast.json()["error"] == "slow_down"
        other = agency_client(client, services, name="Example Health Board")
        stolen = other.poll(auth_req_id)
        assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
        assert school.poll("made-up-id").json()["error"] == "invalid_grant"

    def test_declined_gives_access_denied(
        self, client: TestClient, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        auth_req_id = school.ask(connection_code(client, young["csrf"])).json()["auth_req_id"]
        request = only_request(client)
        declined = client.post(
            f"/api/v1/me/requests/{request['id']}/decline",
            json={"reason": "Not now"},
            headers={"X-CSRF-Token": young["csrf"]},
        )
        assert declined.status_code == 200 and declined.json()["status"] == "declined"
        polled = school.poll(auth_req_id)
        assert polled.status_code == 400 and polled.json()["error"] == "access_denied"
        again = approve(client, young["csrf"], request["id"])
        assert again.status_code == 409

    def test_the_reason_is_sealed_and_goes_with_erasure(
        self, client: TestClient, services: Services, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        """The API's decline, as the pages' (tests/app/test_pages_sharing.py): the reason
        is sealed with the vault's key, readable while the vault lives, shredded with it."""
        school.ask(connection_code(client, young["csrf"]))
        request = only_request(client)
        declined = client.post(
            f"/api/v1/me/requests/{request['id']}/decline",
            json={"reason": REASON},
            headers={"X-CSRF-Token": young["csrf"]},
        )
        assert declined.status_code == 200 and REASON not in declined.text
        assert REASON not in database_text(services)
        assert decline_reason(services, request["id"]) == REASON
        assert (
            client.delete("/api/v1/me", headers={"X-CSRF-Token": young["csrf"]}).status_code == 204
        )
        assert REASON not in database_text(services)
        with pytest.raises(IntegrityFailure):
            decline_reason(services, request["id"])

    def test_lapsed_request_gives_expired_token(
        self, client: TestClient, services: Services, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        auth_req_id = school.ask(connection_code(client, young["csrf"])).json()["auth_req_id"]
        run_sql(
            services,
            "UPDATE access_request SET decide_by = :t",
            t=db_time(services, utcnow() - timedelta(seconds=1)),
        )
        assert school.poll(auth_req_id).json()["error"] == "expired_token"
        assert only_request(client)["status"] == "lapsed"
        assert approve(client, young["csrf"], only_request(client)["id"]).status_code == 409


class TestDeciding:
    def test_narrowing_is_honoured(
        self, client: TestClient, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        asked = school.ask(
            connection_code(client, young["csrf"]), categories=["education", "health"]
        )
        request = only_request(client)
        ends = (utcnow() + timedelta(days=7)).isoformat()
        grant = approve(
            client, young["csrf"], request["id"], categories=["health"], expires_at=ends
        )
        assert grant.status_code == 200, grant.text
        assert grant.json()["categories"] == ["health"]
        tokens = school.poll(asked.json()["auth_req_id"]).json()
        assert tokens["authorization_details"][0]["categories"] == ["health"]
        assert tokens["authorization_details"][0]["expires_at"][:16] == ends[:16]
        titles = [
            r["title"] for r in client.get(records_url(tokens), headers=bearer(tokens)).json()
        ]
        assert titles == ["Check-up"]
        education = client.get(
            f"{records_url(tokens)}/{young['records']['education']}", headers=bearer(tokens)
        )
        unknown = client.get(
            f"{records_url(tokens)}/00000000-0000-4000-8000-000000000000", headers=bearer(tokens)
        )
        assert education.status_code == unknown.status_code == 404
        assert education.json() == unknown.json()

    def test_a_grant_of_named_records_shows_only_those(
        self, client: TestClient, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        named = str(young["records"]["health"])
        tokens = granted(
            client, school, young, categories=["education", "health"], record_ids=[named]
        )
        listed = client.get(records_url(tokens), headers=bearer(tokens)).json()
        assert [r["id"] for r in listed] == [named]
        assert (
            client.get(f"{records_url(tokens)}/{named}", headers=bearer(tokens)).status_code == 200
        )
        other = client.get(
            f"{records_url(tokens)}/{young['records']['education']}", headers=bearer(tokens)
        )
        assert other.status_code == 404

    @pytest.mark.parametrize(
        "narrow",
        [
            {"categories": ["education", "police"]},
            {"categories": []},
            {"expires_at": "2999-01-01T00:00:00+00:00"},
            {"expires_at": "2000-01-01T00:00:00+00:00"},
        ],
    )
    def test_approval_cannot_widen(
        self,
        client: TestClient,
        school: AgencyClient,
        young: dict[str, Any],
        services: Services,
        narrow: dict[str, Any],
    ) -> None:
        school.ask(connection_code(client, young["csrf"]))
        response = approve(client, young["csrf"], only_request(client)["id"], **narrow)
        assert response.status_code == 422
        assert only_request(client)["status"] == "pending"
        assert run_sql(services, "SELECT count(*) FROM access_grant")[0][0] == 0

    def test_approving_needs_csrf_and_a_recent_sign_in(
        self, client: TestClient, school: AgencyClient, young: dict[str, Any], services: Services
    ) -> None:
        school.ask(connection_code(client, young["csrf"]))
        request_id = only_request(client)["id"]
        assert client.post(f"/api/v1/me/requests/{request_id}/approve", json={}).status_code == 403
        make_session_old(services)
        stale = approve(client, young["csrf"], request_id)
        assert stale.status_code == 401 and stale.json()["error"] == "step_up_required"

    def test_another_young_person_cannot_decide(
        self, client: TestClient, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        school.ask(connection_code(client, young["csrf"]))
        request_id = only_request(client)["id"]
        client.cookies.clear()
        sam = sign_up(client, "sam")
        assert approve(client, sam, request_id).status_code == 404


class TestTokensAndReads:
    def test_tokens_reads_and_the_audit_trail(
        self, client: TestClient, services: Services, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        tokens = granted(client, school, young)
        assert tokens["token_type"] == "Bearer" and 0 < tokens["expires_in"] <= 600
        assert tokens["access_token"].startswith("skat_") and len(tokens["access_token"]) > 40
        stored = json.dumps(run_sql(services, "SELECT * FROM oauth_token"), default=str)
        assert tokens["access_token"] not in stored and tokens["refresh_token"] not in stored
        records = client.get(records_url(tokens), headers=bearer(tokens))
        assert [r["title"] for r in records.json()] == ["Report"]
        trail = client.get("/api/v1/me/audit").json()["events"]
        read = trail[0]
        assert read["action"] == "record:read" and read["actor_label"] == "Jo Bloggs"
        assert read["agency"] == "Example High School" and read["purpose"] == "education_support"
        assert read["grant_id"] == tokens["grant_id"]
        assert (
            read["description"]
            == "Jo Bloggs (Example High School) read a record, for: education support."
        )
        grants = client.get("/api/v1/me/grants").json()
        assert grants[0]["last_used_at"] is not None and grants[0]["active"] is True
        introspected = school.introspect(tokens["access_token"])
        assert introspected["active"] is True and introspected["grant_id"] == tokens["grant_id"]

    def test_tokens_are_stored_as_keyed_hashes(
        self,
        client: TestClient,
        services: Services,
        settings: Settings,
        school: AgencyClient,
        young: dict[str, Any],
    ) -> None:
        """SECURITY.md: stored only as HMAC-SHA256 with the server secret, so a copy of the
        database alone cannot be checked against guesses (a plain SHA-256 could be)."""
        tokens = granted(client, school, young)
        fresh = school.refresh(tokens["refresh_token"])
        assert fresh.status_code == 200, fresh.text
        issued = [
            (kind, pair[f"{kind}_token"]) for pair in (tokens, fresh.json())
            for kind in ("access", "refresh")
        ]  # fmt: skip
        secret = settings.secret_key.get_secret_value().encode()

        def keyed(token: str) -> str:
            return hmac.new(secret, f"oauth-token|{token}".encode(), hashlib.sha256).hexdigest()

        stored = {(kind, digest) for kind, digest in run_sql(
            services, "SELECT kind, token_hash FROM oauth_token"
        )}  # fmt: skip
        assert stored == {(kind, keyed(token)) for kind, token in issued}
        assert all(hash_token(services.grants, token) == keyed(token) for _, token in issued)
        unkeyed = {
            hashlib.sha256(text.encode()).hexdigest()
            for _, token in issued
            for text in (token, f"oauth-token|{token}")
        }
        assert not unkeyed & {digest for _, digest in stored}

    def test_a_token_whose_client_is_not_the_grants_is_refused(
        self, client: TestClient, services: Services, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        """SECURITY.md: every resource call checks the client is the one the grant was made
        for. Tokens are only issued to the grant's client, so the row is altered to test it."""
        tokens = granted(client, school, young)
        assert client.get(records_url(tokens), headers=bearer(tokens)).status_code == 200
        other = agency_client(client, services, name="Example Health Board")
        run_sql(
            services,
            "UPDATE oauth_token SET client_id = :c WHERE kind = 'access'",
            c=other.client_id,
        )
        call = client.get(records_url(tokens), headers=bearer(tokens))
        assert call.status_code == 401 and call.json()["error"] == "invalid_token"
        assert call.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
        one = f"{records_url(tokens)}/{young['records']['education']}"
        assert client.get(one, headers=bearer(tokens)).status_code == 401
        assert school.introspect(tokens["access_token"]) == {"active": False}

    def test_auth_req_id_is_single_use(
        self, client: TestClient, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        asked = school.ask(connection_code(client, young["csrf"]))
        approve(client, young["csrf"], only_request(client)["id"])
        assert school.poll(asked.json()["auth_req_id"]).status_code == 200
        assert school.poll(asked.json()["auth_req_id"]).json()["error"] == "invalid_grant"

    def test_story_only_when_granted_and_only_shareable(
        self, client: TestClient, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        without = granted(client, school, young)
        story_url = f"/api/v1/vaults/{without['vault_handle']}/story"
        assert client.get(story_url, headers=bearer(without)).status_code == 403
        with_story = granted(client, school, young, categories=["my_story"])
        entries = client.get(story_url, headers=bearer(with_story)).json()
        assert [e["title"] for e in entries] == ["shared one"]

    def test_refresh_rotates_and_reuse_revokes_the_family(
        self, client: TestClient, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        tokens = granted(client, school, young)
        fresh = school.refresh(tokens["refresh_token"])
        assert fresh.status_code == 200
        new = fresh.json()
        assert new["refresh_token"] != tokens["refresh_token"]
        assert client.get(records_url(new), headers=bearer(new)).status_code == 200
        reuse = school.refresh(tokens["refresh_token"])
        assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
        assert client.get(records_url(new), headers=bearer(new)).status_code == 401
        assert school.refresh(new["refresh_token"]).json()["error"] == "invalid_grant"

    def test_refresh_token_never_outlives_the_grant(
        self, client: TestClient, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        tokens = granted(client, school, young, days=2)
        refresh_exp = school.introspect(tokens["refresh_token"])["exp"]
        grant_end = client.get("/api/v1/me/grants").json()[0]["expires_at"]
        from datetime import datetime

        assert refresh_exp <= datetime.fromisoformat(grant_end).timestamp() + 1

    def test_other_clients_cannot_use_or_see_tokens(
        self, client: TestClient, services: Services, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        tokens = granted(client, school, young)
        other = agency_client(client, services, name="Example Health Board")
        assert other.introspect(tokens["access_token"]) == {"active": False}
        assert other.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"
        assert other.revoke(tokens["refresh_token"]).status_code == 200  # says nothing...
        assert school.introspect(tokens["access_token"])["active"] is True  # ...does nothing

    def test_a_live_token_tells_an_unproven_caller_nothing(
        self, client: TestClient, services: Services, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        """Introspection reads the token in the same statement as the client, before the
        client is proven (grants/oauth/client_auth.py): a caller who fails client
        authentication must learn nothing of it, and change nothing."""
        tokens = granted(client, school, young)
        other = agency_client(client, services, name="Example Health Board")
        spent = school.assertion()
        assert school.introspect(tokens["access_token"])["active"] is True
        attempts = {
            "forged": other.assertion(iss=school.client_id, sub=school.client_id),
            "wrong aud": school.assertion(aud="https://elsewhere.example"),
            "expired": school.assertion(iat=1_000_000_000, exp=1_000_000_060),
            "unknown client": school.assertion(iss="sk_" + "0" * 24, sub="sk_" + "0" * 24),
            "replayed jti": spent,
        }
        assert school.post("/oauth/introspect", {"token": "x"}, spent).status_code == 200
        for why, assertion in attempts.items():
            answered = school.post(
                "/oauth/introspect", {"token": tokens["access_token"]}, assertion
            )
            assert answered.status_code == 401, why
            assert set(answered.json()) == {"error", "error_description"}, why
            assert tokens["grant_id"] not in answered.text, why
        assert school.introspect(tokens["access_token"])["active"] is True

    def test_handles_are_per_agency(
        self, client: TestClient, services: Services, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        tokens = granted(client, school, young)
        again = school.ask(tokens["vault_handle"])  # the agency's own handle works as a hint
        assert again.status_code == 200
        nurse = agency_client(
            client, services, name="Example Health Board", purposes=("health_care",)
        )
        theirs = nurse.ask(tokens["vault_handle"], purpose="health_care", categories=["health"])
        assert theirs.status_code == 400 and theirs.json()["error"] == "unknown_user_id"
        nurse_tokens = granted(client, nurse, young, purpose="health_care", categories=["health"])
        assert nurse_tokens["vault_handle"] != tokens["vault_handle"]
        crossed = client.get(records_url(tokens), headers=bearer(nurse_tokens))
        assert crossed.status_code == 404
        # One record by id (fetched with the token check) is refused the same way.
        one = f"{records_url(tokens)}/{young['records']['health']}"
        assert client.get(one, headers=bearer(nurse_tokens)).status_code == 404
        # Another agency's name for someone is no decision about anyone: nothing is logged.
        refused = "SELECT count(*) FROM audit_event WHERE action = 'access:refused'"
        assert run_sql(services, refused) == [(0,)]
        own = f"{records_url(nurse_tokens)}/{young['records']['health']}"
        assert client.get(own, headers=bearer(nurse_tokens)).status_code == 200

    def test_a_record_of_another_young_person_does_not_exist(
        self, client: TestClient, services: Services, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        tokens = granted(client, school, young, categories=["education", "health"])
        sign_up(client, "sam")
        theirs = add_record(services, "sam", category="education", title="Not yours")
        read = client.get(f"{records_url(tokens)}/{theirs}", headers=bearer(tokens))
        assert read.status_code == 404
        assert (
            read.json()
            == client.get(
                f"{records_url(tokens)}/00000000-0000-4000-8000-000000000000",
                headers=bearer(tokens),
            ).json()
        )

    def test_bad_bearer_tokens(
        self, client: TestClient, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        tokens = granted(client, school, young)
        for headers in (
            {},
            {"Authorization": "Bearer skat_guess"},
            {"Authorization": f"Bearer {tokens['refresh_token']}"},
            {"Authorization": f"Basic {tokens['access_token']}"},
        ):
            response = client.get(records_url(tokens), headers=headers)
            assert response.status_code == 401 and response.json()["error"] == "invalid_token"


class TestWriting:
    def test_write_needs_write_and_keeps_provenance(
        self, client: TestClient, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        read_only = granted(client, school, young)
        record = {"category": "education", "title": "Support plan", "body": "Extra time in exams."}
        refused = client.post(records_url(read_only), json=record, headers=bearer(read_only))
        assert refused.status_code == 403
        writer = granted(client, school, young, actions=["read", "write"])
        wrong_category = client.post(
            records_url(writer), json={**record, "category": "police"}, headers=bearer(writer)
        )
        assert wrong_category.status_code == 403
        spoofed = {**record, "agency": "Police Scotland", "author_name": "Someone Else"}
        written = client.post(records_url(writer), json=spoofed, headers=bearer(writer))
        assert written.status_code == 201, written.text
        made = written.json()
        assert (made["agency"], made["author_name"], made["author_role"]) == (
            "Example High School",
            "Jo Bloggs",
            "guidance teacher",
        )
        mine = client.get(f"/api/v1/me/records/{made['id']}").json()
        assert mine["body"] == "Extra time in exams." and mine["agency"] == "Example High School"
        trail = client.get("/api/v1/me/audit").json()["events"]
        assert trail[0]["action"] == "record:added" and trail[0]["grant_id"] == writer["grant_id"]
        # What the writer is shown back is what was stored: both reads open it again.
        read_back = client.get(f"{records_url(writer)}/{made['id']}", headers=bearer(writer))
        assert read_back.status_code == 200, read_back.text
        for stored in (mine, read_back.json()):
            assert {key: stored[key] for key in made} == made

    @pytest.mark.parametrize(
        "record",
        [
            {"category": "education", "title": "", "body": "x"},
            {"category": "education"},
            {"category": "education", "title": "t", "body": "x" * 20_001},
        ],
    )
    def test_bad_writes_change_nothing(
        self,
        client: TestClient,
        services: Services,
        school: AgencyClient,
        young: dict[str, Any],
        record: dict[str, Any],
    ) -> None:
        writer = granted(client, school, young, actions=["read", "write"])
        before = run_sql(services, "SELECT count(*) FROM agency_record")[0][0]
        assert (
            client.post(records_url(writer), json=record, headers=bearer(writer)).status_code == 422
        )
        assert run_sql(services, "SELECT count(*) FROM agency_record")[0][0] == before


class TestEndings:
    def test_young_person_stops_sharing(
        self, client: TestClient, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        tokens = granted(client, school, young)
        assert client.get(records_url(tokens), headers=bearer(tokens)).status_code == 200
        grant_id = client.get("/api/v1/me/grants").json()[0]["id"]
        stopped = client.post(
            f"/api/v1/me/grants/{grant_id}/revoke", headers={"X-CSRF-Token": young["csrf"]}
        )
        assert stopped.status_code == 200 and stopped.json()["active"] is False
        assert_dead(client, school, tokens)
        # Newest first: the refused call after stopping (logged too), then the stop.
        actions = [e["action"] for e in client.get("/api/v1/me/audit").json()["events"]]
        assert actions[:2] == ["access:refused", "grant:revoked"]
        again = client.post(
            f"/api/v1/me/grants/{grant_id}/revoke", headers={"X-CSRF-Token": young["csrf"]}
        )
        assert again.status_code == 409

    def test_client_revokes_with_rfc7009(
        self, client: TestClient, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        tokens = granted(client, school, young)
        assert school.revoke(tokens["refresh_token"]).status_code == 200
        assert_dead(client, school, tokens)
        assert client.get("/api/v1/me/grants").json()[0]["revoked_at"] is not None

    def test_revoking_an_access_token_ends_only_that_token(
        self, client: TestClient, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        tokens = granted(client, school, young)
        assert school.revoke(tokens["access_token"]).status_code == 200
        assert client.get(records_url(tokens), headers=bearer(tokens)).status_code == 401
        assert school.refresh(tokens["refresh_token"]).status_code == 200

    def test_access_token_runs_out_while_the_grant_lives(
        self, client: TestClient, services: Services, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        """SECURITY.md: access tokens live at most 10 minutes, whatever the grant. Only the
        access token's own expiry has passed here, so the grant's refresh token still works."""
        tokens = granted(client, school, young)
        assert 0 < tokens["expires_in"] <= 600
        live = school.introspect(tokens["access_token"])
        assert live["active"] is True and live["exp"] - live["iat"] <= 600
        run_sql(
            services,
            "UPDATE oauth_token SET expires_at = :t WHERE kind = 'access'",
            t=db_time(services, utcnow() - timedelta(seconds=1)),
        )
        assert client.get("/api/v1/me/grants").json()[0]["active"] is True
        call = client.get(records_url(tokens), headers=bearer(tokens))
        assert call.status_code == 401 and call.json()["error"] == "invalid_token"
        assert call.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
        one = f"{records_url(tokens)}/{young['records']['education']}"
        assert client.get(one, headers=bearer(tokens)).status_code == 401
        assert school.introspect(tokens["access_token"]) == {"active": False}
        assert school.introspect(tokens["refresh_token"])["active"] is True
        fresh = school.refresh(tokens["refresh_token"])
        assert fresh.status_code == 200, fresh.text
        new = fresh.json()
        assert 0 < new["expires_in"] <= 600
        assert client.get(records_url(new), headers=bearer(new)).status_code == 200
        assert school.introspect(new["access_token"])["active"] is True
        assert client.get(records_url(tokens), headers=bearer(tokens)).status_code == 401

    def test_grant_runs_out(
        self, client: TestClient, services: Services, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        tokens = granted(client, school, young)
        run_sql(
            services,
            "UPDATE access_grant SET expires_at = :t",
            t=db_time(services, utcnow() - timedelta(seconds=1)),
        )
        assert_dead(client, school, tokens)
        assert client.get("/api/v1/me/grants").json()[0]["active"] is False

    def test_deleting_the_account_ends_every_grant(
        self, client: TestClient, services: Services, school: AgencyClient, young: dict[str, Any]
    ) -> None:
        tokens = granted(client, school, young)
        client.cookies.clear()
        csrf = sign_in(client, "alex", PASSWORD)
        assert client.delete("/api/v1/me", headers={"X-CSRF-Token": csrf}).status_code == 204
        call = client.get(records_url(tokens), headers=bearer(tokens))
        assert call.status_code == 401
        assert school.introspect(tokens["access_token"]) == {"active": False}


def test_metadata(client: TestClient, services: Services) -> None:
    meta = client.get("/.well-known/oauth-authorization-server").json()
    issuer = services.settings.issuer
    assert meta["issuer"] == issuer
    assert meta["backchannel_authentication_endpoint"] == issuer + "/oauth/backchannel"
    assert meta["token_endpoint"] == issuer + "/oauth/token"
    assert meta["introspection_endpoint"] == issuer + "/oauth/introspect"
    assert meta["revocation_endpoint"] == issuer + "/oauth/revoke"
    assert meta["backchannel_token_delivery_modes_supported"] == ["poll"]
    assert "urn:openid:params:grant-type:ciba" in meta["grant_types_supported"]
    assert "private_key_jwt" in meta["token_endpoint_auth_methods_supported"]
    assert meta["authorization_details_types_supported"] == [
        "storykeep_records",
        "storykeep_emergency",
    ]
