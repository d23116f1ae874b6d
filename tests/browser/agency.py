"""An agency's system (OAuth, private_key_jwt, CIBA), registered by the operator's CLI
on the browser tests' server. It stands in for the practitioner where a journey needs
someone to ask and read while the practitioner pages are being built: the same grant
engine and audit log serve both (issue 4: "one policy path, not two")."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from authlib.integrations.httpx_client import OAuth2Client
from joserfc.jwk import ECKey, KeySet

from tests.browser.harness import LiveApp
from tests.grants.test_live_oauth import TEACHER, Agency, ShortLivedPrivateKeyJWT

AGENCY = "Browser Test Academy"
PURPOSES = ["education_support", "child_plan"]
__all__ = [
    "AGENCY",
    "PURPOSES",
    "TEACHER",
    "Agency",
    "agency_system",
    "cli_json",
    "share_for_demo",
    "young_person_api",
]


def cli_json(app: LiveApp, *args: str, stdin: str | None = None) -> dict[str, Any]:
    done = app.cli(*args, stdin=stdin)
    assert done.returncode == 0, f"storykeep {' '.join(args)}: {done.stderr}"
    return dict(json.loads(done.stdout))


@contextmanager
def agency_system(app: LiveApp, workdir: Path) -> Iterator[Agency]:
    """Register the agency and its system through the real CLI, and connect as it."""
    key = ECKey.generate_key("P-256")
    jwks = workdir / "agency-jwks.json"
    jwks.write_text(json.dumps(KeySet([key]).as_dict(private=False)), encoding="utf-8")
    purposes = [arg for p in PURPOSES for arg in ("--purpose", p)]
    cli_json(app, "agency", "add", AGENCY, *purposes)
    client_id = str(
        cli_json(app, "client", "add", "--agency", AGENCY, "--jwks", str(jwks))["client_id"]
    )
    issuer = app.env["STORYKEEP_ISSUER"]
    oauth = OAuth2Client(
        client_id=client_id,
        client_secret=key,
        token_endpoint_auth_method=ShortLivedPrivateKeyJWT(issuer, alg="ES256"),
        timeout=10,
    )
    with oauth:
        yield Agency(oauth, app.base_url, issuer, client_id)


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

    def approve_the_pending_request(self) -> None:
        listed = self.http.get("/api/v1/me/requests", headers=self.headers).json()
        [pending] = [r for r in listed if r["status"] == "pending"]
        approved = self.http.post(
            f"/api/v1/me/requests/{pending['id']}/approve", json={}, headers=self.headers
        )
        assert approved.status_code == 200, approved.text


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


@contextmanager
def demo_world(workdir: Path) -> Iterator[tuple[LiveApp, Agency]]:
    """The demo server, an agency system registered on it, and sky's sharing."""
    from tests.browser.harness import demo_server

    with demo_server(workdir) as app, agency_system(app, workdir) as agency:
        share_for_demo(app, agency)
        yield app, agency
