"""The young person's side: invite codes, what an advocate can see, removing them."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from html.parser import HTMLParser

import pytest
import textstat  # type: ignore[import-untyped]
from fastapi.testclient import TestClient

from app.container import Services
from tests.advocates.helpers import (
    ADVOCATE_NAME,
    CODE_RE,
    advocate_sign_up,
    count,
    form_token,
    invite,
    link_ids,
)
from tests.conftest import run_sql, sign_up
from vault.db_types import utcnow

CAN_SEE = (
    "They can see who can see your things, who asked, and who has looked. "
    "They can not read your story or your records."
)


def audit_actions(services: Services) -> list[tuple[str, str]]:
    rows = run_sql(services, "SELECT action, actor_type FROM audit_event ORDER BY seq")
    return [(r[0], r[1]) for r in rows]


class _MainText(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "main" or self.depth:
            self.depth += tag not in {"input", "br", "img", "meta", "link"}

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth and data.strip():
            self.parts.append(data.strip())


def main_text(html: str) -> str:
    parser = _MainText()
    parser.feed(html)
    return " ".join(parser.parts)


class TestInvitesJson:
    def test_make_list_and_cancel(self, client: TestClient, young: str) -> None:
        made = invite(client, young, can_stop_sharing=True)
        assert CODE_RE.fullmatch(made["code"]) and made["can_stop_sharing"] is True
        lasts = datetime.fromisoformat(made["expires_at"]) - utcnow()
        assert timedelta(days=6, hours=23, minutes=59) < lasts <= timedelta(days=7)
        assert [i["code"] for i in client.get("/api/v1/me/advocate-invites").json()] == [
            made["code"]
        ]
        cancel = client.delete(
            f"/api/v1/me/advocate-invites/{made['id']}", headers={"X-CSRF-Token": young}
        )
        assert cancel.status_code == 204
        assert client.get("/api/v1/me/advocate-invites").json() == []
        again = client.delete(
            f"/api/v1/me/advocate-invites/{made['id']}", headers={"X-CSRF-Token": young}
        )
        assert again.status_code == 404

    def test_default_is_no_stopping(self, client: TestClient, young: str) -> None:
        made = client.post("/api/v1/me/advocate-invites", headers={"X-CSRF-Token": young})
        assert made.status_code == 201 and made.json()["can_stop_sharing"] is False

    def test_code_is_stored_only_hashed_and_sealed(
        self, client: TestClient, services: Services, young: str
    ) -> None:
        raw = invite(client, young)["code"].replace("-", "")
        for code_hash, sealed in run_sql(
            services, "SELECT code_hash, code_sealed FROM advocate_invite"
        ):
            assert raw not in code_hash and raw.encode() not in bytes(sealed)

    def test_csrf_header_needed(self, client: TestClient, services: Services, young: str) -> None:
        refused = client.post("/api/v1/me/advocate-invites", json={"can_stop_sharing": True})
        assert refused.status_code == 403
        made = invite(client, young)
        kept = client.delete(f"/api/v1/me/advocate-invites/{made['id']}")
        assert kept.status_code == 403
        assert count(services, "advocate_invite WHERE cancelled_at IS NULL") == 1

    def test_another_persons_invite_is_not_found(
        self, client: TestClient, services: Services, young: str
    ) -> None:
        theirs = invite(client, young)
        other = sign_up(client, "robin")  # the client now holds bo's session
        assert client.get("/api/v1/me/advocate-invites").json() == []
        cancel = client.delete(
            f"/api/v1/me/advocate-invites/{theirs['id']}", headers={"X-CSRF-Token": other}
        )
        assert cancel.status_code == 404
        assert count(services, "advocate_invite WHERE cancelled_at IS NULL") == 1

    def test_invites_are_in_the_audit_log(
        self, client: TestClient, services: Services, young: str
    ) -> None:
        made = invite(client, young)
        client.delete(f"/api/v1/me/advocate-invites/{made['id']}", headers={"X-CSRF-Token": young})
        actions = audit_actions(services)
        assert ("advocate:invited", "young_person") in actions
        assert ("advocate:invite_cancelled", "young_person") in actions


class TestPages:
    def test_make_show_and_stop_a_code(
        self, client: TestClient, services: Services, young: str
    ) -> None:
        page = client.get("/my-advocate")
        assert page.status_code == 200
        assert "Make an invite code" in page.text
        assert "Let my advocate stop sharing for me" in page.text
        assert re.search(r'<label class="choice"><input type="checkbox"[^>]*> Let my', page.text)
        made = client.post(
            "/my-advocate/invites",
            data={"csrf_token": form_token(page), "can_stop_sharing": "yes"},
            follow_redirects=False,
        )
        assert made.status_code == 303 and made.headers["location"].startswith("/my-advocate?show=")
        shown = client.get(made.headers["location"])
        code = re.search(r'<p class="big-code">([0-9A-Z-]+)</p>', shown.text)
        assert code and CODE_RE.fullmatch(code.group(1))
        assert "They can stop sharing for you." in shown.text
        assert run_sql(services, "SELECT can_stop_sharing FROM advocate_invite")[0][0]
        invite_id = re.search(r'action="/my-advocate/invites/([0-9a-f-]+)/cancel"', shown.text)
        assert invite_id
        stopped = client.post(
            f"/my-advocate/invites/{invite_id.group(1)}/cancel",
            data={"csrf_token": form_token(shown)},
        )
        assert stopped.status_code == 200 and "That code will not work now." in stopped.text
        assert code.group(1) not in stopped.text

    def test_unticked_box_means_no_stopping(
        self, client: TestClient, services: Services, young: str
    ) -> None:
        page = client.get("/my-advocate")
        client.post("/my-advocate/invites", data={"csrf_token": form_token(page)})
        assert not run_sql(services, "SELECT can_stop_sharing FROM advocate_invite")[0][0]

    def test_forms_need_csrf(self, client: TestClient, services: Services, young: str) -> None:
        refused = client.post("/my-advocate/invites", data={"can_stop_sharing": "yes"})
        assert refused.status_code == 403 and count(services, "advocate_invite") == 0
        made = invite(client, young)
        kept = client.post(f"/my-advocate/invites/{made['id']}/cancel", data={})
        assert kept.status_code == 403
        assert count(services, "advocate_invite WHERE cancelled_at IS NULL") == 1

    def test_signed_out_goes_to_sign_in(self, client: TestClient) -> None:
        page = client.get("/my-advocate", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/signin")

    def test_reading_grade_is_five_or_below(
        self, client: TestClient, adv: TestClient, young: str
    ) -> None:
        made = invite(client, young, can_stop_sharing=True)
        invite(client, young)
        assert advocate_sign_up(adv, made["code"]).status_code == 303
        page = client.get("/my-advocate")
        link_id = re.search(r'action="/my-advocate/([0-9a-f-]{36})/remove"', page.text)
        assert link_id
        pages = [page, client.get(f"/my-advocate/{link_id.group(1)}/remove")]
        for shown in pages:
            text = main_text(shown.text)
            assert text
            assert textstat.flesch_kincaid_grade(text) <= 5, text


class TestLinkedAdvocates:
    def test_see_what_they_can_see(self, client: TestClient, adv: TestClient, young: str) -> None:
        code = invite(client, young)["code"]
        assert advocate_sign_up(adv, code).status_code == 303
        listed = client.get("/api/v1/me/advocates").json()
        assert len(listed) == 1
        assert listed[0]["name"] == ADVOCATE_NAME and listed[0]["can_see"] == CAN_SEE
        assert listed[0]["can_stop_sharing"] is False
        assert listed[0]["can_stop"] == "They can not stop sharing for you."
        page = client.get("/my-advocate")
        assert ADVOCATE_NAME in page.text and CAN_SEE in page.text
        assert "They can not stop sharing for you." in page.text
        assert ">Remove</button>" in page.text

    def test_remove_with_confirmation(
        self, client: TestClient, adv: TestClient, services: Services, young: str
    ) -> None:
        code = invite(client, young, can_stop_sharing=True)["code"]
        advocate_sign_up(adv, code)
        [link_id] = link_ids(adv)
        assert adv.get(f"/advocate/people/{link_id}").status_code == 200
        confirm = client.get(f"/my-advocate/{link_id}/remove")
        assert confirm.status_code == 200 and "Yes, remove them" in confirm.text
        assert count(services, "advocate_link WHERE removed_at IS NULL") == 1  # GET changes nothing
        no_token = client.post(f"/my-advocate/{link_id}/remove", data={})
        assert no_token.status_code == 403
        assert adv.get(f"/advocate/people/{link_id}").status_code == 200
        done = client.post(
            f"/my-advocate/{link_id}/remove", data={"csrf_token": form_token(confirm)}
        )
        assert done.status_code == 200 and "Your advocate is gone." in done.text
        assert client.get("/api/v1/me/advocates").json() == []
        # The advocate's very next page load.
        assert adv.get(f"/advocate/people/{link_id}").status_code == 404
        assert link_ids(adv) == []
        assert run_sql(services, "SELECT removed_by FROM advocate_link")[0][0] == "young_person"
        assert ("advocate:removed", "young_person") in audit_actions(services)
        again = client.post(
            f"/my-advocate/{link_id}/remove", data={"csrf_token": form_token(confirm)}
        )
        assert again.status_code == 404

    def test_remove_over_json(
        self, client: TestClient, adv: TestClient, services: Services, young: str
    ) -> None:
        advocate_sign_up(adv, invite(client, young)["code"])
        [link] = client.get("/api/v1/me/advocates").json()
        assert client.delete(f"/api/v1/me/advocates/{link['id']}").status_code == 403
        removed = client.delete(
            f"/api/v1/me/advocates/{link['id']}", headers={"X-CSRF-Token": young}
        )
        assert removed.status_code == 204
        assert adv.get(f"/advocate/people/{link['id']}").status_code == 404

    @pytest.mark.parametrize("how", ["page", "json"])
    def test_someone_elses_advocate_cannot_be_removed(
        self, client: TestClient, adv: TestClient, services: Services, young: str, how: str
    ) -> None:
        advocate_sign_up(adv, invite(client, young)["code"])
        [link] = client.get("/api/v1/me/advocates").json()
        other = sign_up(client, "robin")
        if how == "page":
            assert client.get(f"/my-advocate/{link['id']}/remove").status_code == 404
            tried = client.post(f"/my-advocate/{link['id']}/remove", data={"csrf_token": other})
        else:
            tried = client.delete(
                f"/api/v1/me/advocates/{link['id']}", headers={"X-CSRF-Token": other}
            )
        assert tried.status_code == 404
        assert count(services, "advocate_link WHERE removed_at IS NULL") == 1
