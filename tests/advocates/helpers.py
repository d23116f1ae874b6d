"""Helpers for the advocate tests: two browsers on one app (the young person's and the
advocate's), invite codes, and a grant made through the real OAuth flow."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient
from httpx2 import Response

from app.container import Services
from tests.conftest import PASSWORD, run_sql
from tests.grants.kit import AgencyClient, connection_code

ADVOCATE_EMAIL = "sam.lee@example.org"
ADVOCATE_NAME = "Sam Lee"
CODE_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$")


def form_token(page: Response) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, "the page has no CSRF field"
    return match.group(1)


def count(services: Services, table: str) -> int:
    return int(run_sql(services, f"SELECT count(*) FROM {table}")[0][0])


def invite(client: TestClient, csrf: str, can_stop_sharing: bool = False) -> dict[str, Any]:
    made = client.post(
        "/api/v1/me/advocate-invites",
        json={"can_stop_sharing": can_stop_sharing},
        headers={"X-CSRF-Token": csrf},
    )
    assert made.status_code == 201, made.text
    return dict(made.json())


def advocate_sign_up(
    adv: TestClient, code: str, email: str = ADVOCATE_EMAIL, name: str = ADVOCATE_NAME,
    password: str = PASSWORD,
) -> Response:  # fmt: skip
    page = adv.get("/advocate/signup")
    assert page.status_code == 200
    return adv.post(
        "/advocate/signup",
        data={
            "name": name,
            "email": email,
            "password": password,
            "code": code,
            "csrf_token": form_token(page),
        },
        follow_redirects=False,
    )


def advocate_sign_in(adv: TestClient, email: str, password: str) -> Response:
    page = adv.get("/advocate/signin")
    return adv.post(
        "/advocate/signin",
        data={"email": email, "password": password, "csrf_token": form_token(page)},
        follow_redirects=False,
    )


def link_ids(adv: TestClient) -> list[str]:
    """The young people on the advocate's home page, as link ids, in page order."""
    home = adv.get("/advocate")
    assert home.status_code == 200, home.text
    return re.findall(r'href="/advocate/people/([0-9a-f-]{36})"', home.text)


def grant_for(
    client: TestClient, csrf: str, school: AgencyClient, **ask: Any
) -> tuple[str, dict[str, Any]]:
    """Ask (with a connection code), say yes over the JSON API, get tokens.
    Returns (grant id, token response)."""
    asked = school.ask(connection_code(client, csrf), **ask)
    assert asked.status_code == 200, asked.text
    newest = client.get("/api/v1/me/requests").json()[0]
    approved = client.post(
        f"/api/v1/me/requests/{newest['id']}/approve", json={}, headers={"X-CSRF-Token": csrf}
    )
    assert approved.status_code == 200, approved.text
    tokens = school.poll(asked.json()["auth_req_id"])
    assert tokens.status_code == 200, tokens.text
    return str(approved.json()["id"]), dict(tokens.json())


def records_call(client: TestClient, tokens: dict[str, Any]) -> Response:
    return client.get(
        f"/api/v1/vaults/{tokens['vault_handle']}/records",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
