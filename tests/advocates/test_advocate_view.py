"""What an advocate sees (grants, requests, who has looked: never content) and stopping
a grant for the young person, only when they allowed it."""

from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient

from app.container import Services
from app.db import transaction
from grants import service as grants_service
from tests.advocates.helpers import (
    advocate_sign_up,
    count,
    form_token,
    grant_for,
    invite,
    link_ids,
    records_call,
)
from tests.conftest import add_record, run_sql, sign_up
from tests.grants.kit import AgencyClient, agency_client
from vault.actors import Actor
from vault.repository import get_young_person_by_username

MARKER = "zq7marker"  # appears only in content: record, note and story entry


def linked(client: TestClient, adv: TestClient, csrf: str, can_stop_sharing: bool) -> str:
    """The advocate signs up with this young person's code. Returns the link id."""
    code = invite(client, csrf, can_stop_sharing=can_stop_sharing)["code"]
    assert advocate_sign_up(adv, code).status_code == 303
    [link_id] = link_ids(adv)
    return link_id


def advocate_events(services: Services) -> list[str]:
    rows = run_sql(
        services, "SELECT action FROM audit_event WHERE actor_type = 'advocate' ORDER BY seq"
    )
    return [r[0] for r in rows]


class TestOverview:
    def test_sees_grants_requests_and_who_looked_but_no_content(
        self, client: TestClient, adv: TestClient, services: Services, young: str,
        school: AgencyClient,
    ) -> None:  # fmt: skip
        record_id = add_record(
            services, "alex", title=f"Report {MARKER}", body=f"Body {MARKER}",
            author_name="Jo Bloggs",
        )  # fmt: skip
        client.post(
            f"/api/v1/me/records/{record_id}/notes",
            json={"body": f"My view {MARKER}"},
            headers={"X-CSRF-Token": young},
        )
        client.post(
            "/api/v1/me/entries",
            json={"title": f"Entry {MARKER}", "body": f"Story {MARKER}", "shareable": True},
            headers={"X-CSRF-Token": young},
        )
        _grant_id, tokens = grant_for(client, young, school, categories=["education", "my_story"])
        assert records_call(client, tokens).status_code == 200  # the practitioner reads
        school.ask(client.post(  # a second request, left waiting
            "/api/v1/me/connection-codes", headers={"X-CSRF-Token": young}
        ).json()["code"], purpose="child_plan")  # fmt: skip
        link_id = linked(client, adv, young, can_stop_sharing=True)

        page = adv.get(f"/advocate/people/{link_id}")
        assert page.status_code == 200
        text = page.text
        assert "Jo Bloggs, guidance teacher at Example High School, can read" in text
        assert "wants to read" in text and "pending" in text  # the waiting request
        assert "Jo Bloggs (Example High School) read a record" in text  # who has looked
        assert "Stop sharing" in text

        shown = [
            page,
            adv.get("/advocate"),
            adv.get(f"/advocate/people/{link_id}?before=1000"),
            adv.get(f"/advocate/people/{link_id}?before={2**31 - 1}"),  # the last cursor
            adv.get(f"/advocate/people/{link_id}/grants/{_grant_id}/stop"),
            client.get("/api/v1/me/advocates"),
            client.get("/my-advocate"),
        ]
        for response in shown:
            assert response.status_code == 200
            assert MARKER not in response.text
        assert MARKER in client.get(f"/api/v1/me/records/{record_id}").text  # it is there

    def test_repeated_looks_are_one_line_with_a_count(
        self, client: TestClient, adv: TestClient, services: Services, young: str,
        school: AgencyClient,
    ) -> None:  # fmt: skip
        add_record(services, "alex", title="Report", author_name="Jo Bloggs")
        _grant_id, tokens = grant_for(client, young, school, categories=["education"])
        for _ in range(4):
            assert records_call(client, tokens).status_code == 200
        link_id = linked(client, adv, young, can_stop_sharing=False)
        page = html.unescape(adv.get(f"/advocate/people/{link_id}").text)
        looked = re.findall(r"<li><span class=\"meta\">([^<]+)</span> ([^<]+)</li>", page)
        reads = [meta for meta, text in looked if text.startswith("Jo Bloggs (Example High")
                 and " read a record" in text]  # fmt: skip
        assert len(reads) == 1 and re.search(r"\d\d:\d\d to \d\d:\d\d, 4 times$", reads[0])
        reads_logged = "SELECT count(*) FROM audit_event WHERE action = 'record:read'"
        assert run_sql(services, reads_logged)[0][0] == 4  # each is still in the log

    def test_every_view_is_in_the_audit_log(
        self, client: TestClient, adv: TestClient, services: Services, young: str
    ) -> None:
        link_id = linked(client, adv, young, can_stop_sharing=False)
        adv.get(f"/advocate/people/{link_id}")
        assert advocate_events(services) == [
            "advocate:joined",
            "advocate:viewed_sharing",
            "audit:read",
        ]
        rows = run_sql(
            services,
            "SELECT actor_label, chain FROM audit_event WHERE action = 'advocate:viewed_sharing'",
        )
        vault_id = run_sql(services, "SELECT vault_id FROM advocate_link")[0][0]
        assert rows[0][0] == "Sam Lee" and rows[0][1] == str(vault_id).replace("-", "")
        trail = client.get("/api/v1/me/audit").json()["events"]
        assert any(e["actor_label"] == "Sam Lee" for e in trail)

    @pytest.mark.parametrize("before", ["0", str(2**31), str(2**63)])
    def test_a_bad_page_cursor_is_refused(
        self, client: TestClient, adv: TestClient, services: Services, young: str, before: str
    ) -> None:
        link_id = linked(client, adv, young, can_stop_sharing=True)
        logged = count(services, "audit_event")
        refused = adv.get(f"/advocate/people/{link_id}?before={before}")
        assert refused.status_code == 422 and "<h1>Sorry</h1>" in refused.text
        assert count(services, "audit_event") == logged  # nothing was read, so nothing logged

    def test_another_advocates_link_is_not_found(
        self, client: TestClient, adv: TestClient, services: Services, young: str
    ) -> None:
        link_id = linked(client, adv, young, can_stop_sharing=True)
        adv.cookies.clear()
        other_code = invite(client, young)["code"]
        assert advocate_sign_up(adv, other_code, email="kim@example.org").status_code == 303
        assert adv.get(f"/advocate/people/{link_id}").status_code == 404
        before = count(services, "audit_event")
        assert adv.get(f"/advocate/people/{link_id}/grants/{'0' * 32}/stop").status_code == 404
        assert count(services, "audit_event") == before

    def test_an_erased_young_person_is_gone(
        self, client: TestClient, adv: TestClient, services: Services, young: str
    ) -> None:
        link_id = linked(client, adv, young, can_stop_sharing=True)
        with transaction(services.engine) as session:
            person = get_young_person_by_username(session, "alex")
            assert person is not None
            grants_service.erase_young_person(session, services.vault, Actor.operator(), person)
        assert link_ids(adv) == []
        assert adv.get(f"/advocate/people/{link_id}").status_code == 404


class TestStopSharing:
    def test_allowed_when_the_young_person_said_so(
        self, client: TestClient, adv: TestClient, services: Services, young: str,
        school: AgencyClient,
    ) -> None:  # fmt: skip
        add_record(services, "alex")
        grant_id, tokens = grant_for(client, young, school)
        link_id = linked(client, adv, young, can_stop_sharing=True)
        page = adv.get(f"/advocate/people/{link_id}")
        assert f'action="/advocate/people/{link_id}/grants/{grant_id}/stop"' in page.text
        confirm = adv.get(f"/advocate/people/{link_id}/grants/{grant_id}/stop")
        assert confirm.status_code == 200 and ">Stop sharing</button>" in confirm.text
        assert records_call(client, tokens).status_code == 200  # the GET changed nothing

        no_token = adv.post(f"/advocate/people/{link_id}/grants/{grant_id}/stop", data={})
        assert no_token.status_code == 403
        assert records_call(client, tokens).status_code == 200

        stopped = adv.post(
            f"/advocate/people/{link_id}/grants/{grant_id}/stop",
            data={"csrf_token": form_token(confirm)},
        )
        assert stopped.status_code == 200 and "Sharing has stopped" in stopped.text
        assert records_call(client, tokens).status_code == 401  # the very next call
        [grant] = client.get("/api/v1/me/grants").json()
        assert grant["active"] is False
        assert run_sql(services, "SELECT revoked_by FROM access_grant")[0][0] == "advocate"
        revoked = run_sql(
            services,
            "SELECT actor_type, actor_label FROM audit_event WHERE action = 'grant:revoked'",
        )
        assert [tuple(r) for r in revoked] == [("advocate", "Sam Lee")]
        again = adv.post(
            f"/advocate/people/{link_id}/grants/{grant_id}/stop",
            data={"csrf_token": form_token(confirm)},
        )
        assert again.status_code == 409

    def test_forbidden_without_permission(
        self, client: TestClient, adv: TestClient, services: Services, young: str,
        school: AgencyClient,
    ) -> None:  # fmt: skip
        add_record(services, "alex")
        grant_id, tokens = grant_for(client, young, school)
        link_id = linked(client, adv, young, can_stop_sharing=False)
        page = adv.get(f"/advocate/people/{link_id}")
        assert "/stop" not in page.text and ">Stop sharing<" not in page.text
        url = f"/advocate/people/{link_id}/grants/{grant_id}/stop"
        confirm = adv.get(url)
        assert confirm.status_code == 403
        assert "alex has not let you stop sharing for them" in confirm.text
        refused = adv.post(url, data={"csrf_token": form_token(page)})
        assert refused.status_code == 403 and "Nothing was changed" in refused.text
        assert records_call(client, tokens).status_code == 200
        assert run_sql(services, "SELECT revoked_at FROM access_grant")[0][0] is None
        assert "grant:revoked" not in advocate_events(services)

    def test_another_young_persons_grant_is_not_found(
        self, client: TestClient, adv: TestClient, services: Services, young: str,
        school: AgencyClient,
    ) -> None:  # fmt: skip
        link_id = linked(client, adv, young, can_stop_sharing=True)
        page = adv.get(f"/advocate/people/{link_id}")
        other = sign_up(client, "robin")
        add_record(services, "robin")
        their_grant, tokens = grant_for(client, other, school)
        url = f"/advocate/people/{link_id}/grants/{their_grant}/stop"
        assert adv.get(url).status_code == 404
        assert adv.post(url, data={"csrf_token": form_token(page)}).status_code == 404
        assert records_call(client, tokens).status_code == 200
        assert MARKER not in adv.get(url).text

    @pytest.mark.parametrize("how", ["page", "json"])
    def test_removed_link_stops_nothing(
        self, client: TestClient, adv: TestClient, services: Services, young: str,
        school: AgencyClient, how: str,
    ) -> None:  # fmt: skip
        add_record(services, "alex")
        grant_id, tokens = grant_for(client, young, school)
        link_id = linked(client, adv, young, can_stop_sharing=True)
        url = f"/advocate/people/{link_id}/grants/{grant_id}/stop"
        confirm = adv.get(url)
        if how == "json":
            client.delete(f"/api/v1/me/advocates/{link_id}", headers={"X-CSRF-Token": young})
        else:
            remove = client.get(f"/my-advocate/{link_id}/remove")
            client.post(f"/my-advocate/{link_id}/remove", data={"csrf_token": form_token(remove)})
        refused = adv.post(url, data={"csrf_token": form_token(confirm)})
        assert refused.status_code == 404
        assert records_call(client, tokens).status_code == 200
        assert not re.search(r"alex", refused.text)


def test_a_second_agency_is_listed_too(
    client: TestClient, adv: TestClient, services: Services, young: str, school: AgencyClient
) -> None:
    """Grants from more than one agency, past and present, all show."""
    add_record(services, "alex")
    first, _tokens = grant_for(client, young, school)
    client.post(f"/api/v1/me/grants/{first}/revoke", headers={"X-CSRF-Token": young})
    clinic = agency_client(client, services, "Example Clinic", purposes=("health_care",))
    grant_for(client, young, clinic, categories=["health"], purpose="health_care")
    link_id = linked(client, adv, young, can_stop_sharing=False)
    text = adv.get(f"/advocate/people/{link_id}").text
    assert "Example Clinic" in text and "Sharing that has ended" in text
    assert "Stopped " in text and "alex stopped sharing." in text
