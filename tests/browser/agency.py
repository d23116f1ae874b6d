"""Agency systems (OAuth, private_key_jwt, CIBA), registered by the operator's CLI on
the browser tests' server: a school's, which asks and reads as the practitioner pages do
(the same grant engine and audit log serve both: "one policy path, not two"), and the
demo's statutory council's, which also opens emergency (child protection) access and
answers correction requests through the agency API."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from authlib.integrations.httpx_client import OAuth2Client
from joserfc.jwk import ECKey, KeySet

from tests.browser.harness import LiveApp
from tests.grants.test_live_oauth import TEACHER, Agency, ShortLivedPrivateKeyJWT

AGENCY = "Browser Test Academy"
PURPOSES = ["education_support", "child_plan"]
# In the demo data: statutory, registered for care_planning and child_protection.
COUNCIL = "Example Council Social Work"
SOCIAL_WORKER = {
    "name": "Ali Khan",
    "role": "child_protection",
    "email": "ali.khan@council.example.org",
}
# Independent reviewers of emergency access come from another agency.
REVIEW_SERVICE = "Browser Test Review Service"
# Made-up reasons, as a social worker would write them; never shown to the young person.
SKY_EMERGENCY_REASON = "Sky did not come home last night and the police have been told."
EMERGENCY_REASON = "A neighbour heard shouting and a child crying late at night, twice."
__all__ = [
    "AGENCY",
    "COUNCIL",
    "EMERGENCY_REASON",
    "PURPOSES",
    "REVIEW_SERVICE",
    "SOCIAL_WORKER",
    "TEACHER",
    "Agency",
    "Council",
    "World",
    "agency_system",
    "cli_json",
    "share_for_demo",
    "young_person_api",
]


def cli_json(app: LiveApp, *args: str, stdin: str | None = None) -> dict[str, Any]:
    done = app.cli(*args, stdin=stdin)
    assert done.returncode == 0, f"storykeep {' '.join(args)}: {done.stderr}"
    return dict(json.loads(done.stdout))


@dataclass
class Council(Agency):
    """The demo's statutory council: asks for consent for care planning, and opens
    emergency access (``storykeep_emergency``) with the pairwise handle it was given."""

    def ask_consent(self, login_hint: str, categories: list[str], days: int = 30) -> Any:
        details = [{"type": "storykeep_records", "actions": ["read"], "categories": categories,
                    "purpose": "care_planning", "duration_days": days}]  # fmt: skip
        return self.backchannel(login_hint, details)

    def ask_emergency(
        self, handle: str, categories: list[str], reason: str, hours: int = 24
    ) -> Any:
        details = [{"type": "storykeep_emergency", "actions": ["read"], "categories": categories,
                    "reason_code": "missing_child", "reason": reason,
                    "duration_hours": hours}]  # fmt: skip
        return self.backchannel(handle, details)

    def backchannel(self, login_hint: str, details: list[dict[str, Any]]) -> Any:
        form = {
            "login_hint": login_hint,
            "authorization_details": json.dumps(details),
            "practitioner": json.dumps(SOCIAL_WORKER),
        }
        return self.oauth.post(self.url("/oauth/backchannel"), data=form, auth=self.auth())

    def connect(self, person: YoungPersonApi, categories: list[str]) -> str:
        """The consent flow (a code, a yes, a poll); returns the pairwise handle."""
        asked = self.ask_consent(person.code(), categories)
        assert asked.status_code == 200, asked.text
        person.approve_the_pending_request(COUNCIL)
        time.sleep(1.1)  # the CIBA poll interval (harness.server_env)
        return str(self.poll(asked.json()["auth_req_id"])["vault_handle"])

    def agency_api(self, path: str, **form: str) -> Any:
        """The agency API's POST calls (corrections, insight): client auth in the body."""
        return self.oauth.post(self.url(path), data=form, auth=self.auth())


A = TypeVar("A", bound=Agency)


def _register_client(app: LiveApp, workdir: Path, name: str, kind: type[A]) -> A:
    key = ECKey.generate_key("P-256")
    jwks = workdir / f"{name.lower().replace(' ', '-')}-jwks.json"
    jwks.write_text(json.dumps(KeySet([key]).as_dict(private=False)), encoding="utf-8")
    client_id = str(
        cli_json(app, "client", "add", "--agency", name, "--jwks", str(jwks))["client_id"]
    )
    issuer = app.env["STORYKEEP_ISSUER"]
    oauth = OAuth2Client(
        client_id=client_id,
        client_secret=key,
        token_endpoint_auth_method=ShortLivedPrivateKeyJWT(issuer, alg="ES256"),
        timeout=10,
    )
    return kind(oauth, app.base_url, issuer, client_id)


@contextmanager
def agency_system(app: LiveApp, workdir: Path) -> Iterator[Agency]:
    """Register the agency and its system through the real CLI, and connect as it."""
    purposes = [arg for p in PURPOSES for arg in ("--purpose", p)]
    cli_json(app, "agency", "add", AGENCY, *purposes)
    agency = _register_client(app, workdir, AGENCY, Agency)
    with agency.oauth:
        yield agency


@contextmanager
def council_system(app: LiveApp, workdir: Path) -> Iterator[Council]:
    """The demo council's system, registered with ``storykeep client add``. The council
    itself (statutory, with child_protection) comes from ``storykeep demo``."""
    council = _register_client(app, workdir, COUNCIL, Council)
    with council.oauth:
        yield council


@contextmanager
def young_person_api(app: LiveApp, username: str) -> Iterator[YoungPersonApi]:
    """A demo young person over the JSON API (the mobile app's way in)."""
    from app.demo import DEMO_PASSWORD
    from tests.live import signed_in_headers

    with httpx.Client(base_url=app.base_url, timeout=10) as http:
        yield YoungPersonApi(http, signed_in_headers(http, username, DEMO_PASSWORD))


class YoungPersonApi:
    def __init__(self, http: httpx.Client, headers: dict[str, str]) -> None:
        self.http, self.headers = http, headers

    def code(self) -> str:
        made = self.http.post("/api/v1/me/connection-codes", headers=self.headers)
        assert made.status_code == 201, made.text
        return str(made.json()["code"])

    def approve_the_pending_request(self, agency: str | None = None) -> None:
        """Say yes to the one request waiting (from ``agency``, when named)."""
        listed = self.http.get("/api/v1/me/requests", headers=self.headers).json()
        [pending] = [
            r for r in listed if r["status"] == "pending" and agency in (None, r["agency"])
        ]
        approved = self.http.post(
            f"/api/v1/me/requests/{pending['id']}/approve", json={}, headers=self.headers
        )
        assert approved.status_code == 200, approved.text

    def ask_correction(self, record_id: str, body: str) -> str:
        asked = self.http.post(
            f"/api/v1/me/records/{record_id}/corrections", json={"body": body},
            headers=self.headers,
        )  # fmt: skip
        assert asked.status_code == 201, asked.text
        return str(asked.json()["id"])


def share_for_demo(app: LiveApp, agency: Agency, username: str = "sky") -> None:
    """Give a demo young person what the demo data lacks: one grant (education only)
    that the agency has used once, and one request waiting for an answer. Then the
    request, sharing and "who has looked" pages have something to show."""
    with young_person_api(app, username) as person:
        granted = agency.ask(person.code(), ["education"])
        assert granted.status_code == 200, granted.text
        person.approve_the_pending_request()
        waiting = agency.ask(person.code(), ["education", "health"])
        assert waiting.status_code == 200, waiting.text
    time.sleep(1.1)  # the CIBA poll interval (harness.server_env)
    tokens = agency.poll(granted.json()["auth_req_id"])
    read = agency.records(tokens["vault_handle"], tokens["access_token"])
    assert read.status_code == 200, read.text


ATTENDANCE = ("Attendance letter", "Sky missed four days in May.")
CARE_PLAN_FIXED = "Sky wants more say in contact arrangements and will chair the next review."


def safeguarding_for_demo(
    app: LiveApp, council: Council, workdir: Path, username: str = "sky"
) -> None:
    """What the safeguarding pages need, made through the real interfaces:

    * emergency access: the council connects through consent (care plan), then opens
      emergency access to health records with its pairwise handle, and reads them, so
      sky's sharing, requests and "who has looked" pages show an emergency card and a
      reviewer has a case (left unreviewed, for the review pages);
    * corrections: sky asks the council to change the demo care plan and the council
      accepts through the agency API (so the record has a history), and sky asks the
      browser tests' school to change a letter it wrote (left open, for the
      practitioner's correction page)."""
    letter = workdir / "attendance.txt"
    letter.write_text(ATTENDANCE[1], encoding="utf-8")
    added = cli_json(app, "record", "add", "--young-person", username, "--agency", AGENCY,
                     "--category", "education", "--title", ATTENDANCE[0], "--body-file",
                     str(letter), "--occurred-at", "2025-05-30T09:00:00+00:00")  # fmt: skip
    with young_person_api(app, username) as person:
        handle = council.connect(person, ["care_plan"])
        asked = council.ask_emergency(handle, ["health"], SKY_EMERGENCY_REASON)
        assert asked.status_code == 200, asked.text
        tokens = council.poll(asked.json()["auth_req_id"])  # the first poll: the token
        read = council.records(tokens["vault_handle"], tokens["access_token"])
        assert read.status_code == 200, read.text
        records = person.http.get("/api/v1/me/records", headers=person.headers).json()
        [care_plan] = [r["id"] for r in records if r["agency"] == COUNCIL]
        fix = person.ask_correction(care_plan, "I will chair the whole review, not part.")
        person.ask_correction(str(added["id"]), "I was ill those days. The school knew.")
    accepted = council.agency_api(
        f"/api/v1/agency/corrections/{fix}/accept", title="Care plan review", body=CARE_PLAN_FIXED
    )
    assert accepted.status_code == 200, accepted.text


@dataclass(frozen=True)
class World:
    """The browser tests' server and the agency systems registered on it."""

    app: LiveApp
    agency: Agency
    council: Council


@contextmanager
def demo_world(workdir: Path) -> Iterator[World]:
    """The demo server, agency systems registered on it, sky's sharing, an emergency
    access and correction requests."""
    from tests.browser.harness import demo_server

    with (
        demo_server(workdir) as app,
        agency_system(app, workdir) as agency,
        council_system(app, workdir) as council,
    ):
        share_for_demo(app, agency)
        safeguarding_for_demo(app, council, workdir)
        yield World(app, agency, council)
