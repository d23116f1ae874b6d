"""Helpers for the emergency access tests: a statutory council with a client, a young
person it is already connected to (through the real consent flow), and emergency
requests sent to the real backchannel endpoint."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from app.container import Services
from tests.conftest import add_record, run_sql, sign_up
from tests.grants.kit import AgencyClient, agency_client, connection_code

COUNCIL = "Example Council"
SCHOOL = "Example High School"
# Content no notification, log or operator output may ever show.
MARKER = "ZEBRA-MARKER-7731"
REASON = "School reported bruising; the child says they are afraid to go home tonight."
SOCIAL_WORKER = {
    "name": "Ali Khan",
    "role": "child_protection",
    "email": "ali.khan@council.example.org",
}


def emergency_item(**overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "storykeep_emergency",
        "actions": ["read"],
        "categories": ["care_plan"],
        "reason_code": "risk_of_significant_harm",
        "reason": REASON,
        "duration_hours": 24,
    }
    item.update(overrides)
    return {k: v for k, v in item.items() if v is not None}


def ask_emergency(
    agency: AgencyClient,
    handle: str,
    practitioner: dict[str, str] | None = None,
    item: dict[str, Any] | None = None,
    **overrides: Any,
) -> Any:
    return agency.post(
        "/oauth/backchannel",
        {
            "login_hint": handle,
            "authorization_details": json.dumps([item or emergency_item(**overrides)]),
            "practitioner": json.dumps(practitioner or SOCIAL_WORKER),
        },
    )


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


@dataclass
class Connected:
    """A young person (signed in on ``http``) the council already knows by a handle."""

    csrf: str
    handle: str
    records: dict[str, str]


def council_client(http: TestClient, services: Services, name: str = COUNCIL) -> AgencyClient:
    return agency_client(
        http, services, name, purposes=("care_planning", "child_protection"), statutory=True
    )


def connect(
    http: TestClient, services: Services, agency: AgencyClient, username: str = "alex",
    purpose: str = "care_planning",
) -> Connected:  # fmt: skip
    """Sign up, add records, and let the agency connect through the consent flow (a
    connection code, a yes, a poll), which gives it its pairwise handle."""
    csrf = sign_up(http, username)
    records = {
        "care_plan": str(
            add_record(
                services, username, category="care_plan", title=f"Plan {MARKER}", body=MARKER
            )
        ),
        "education": str(add_record(services, username, category="education", title="Report")),
    }
    asked = agency.ask(
        connection_code(http, csrf), categories=["education"], purpose=purpose, days=7
    )
    assert asked.status_code == 200, asked.text
    pending = http.get("/api/v1/me/requests").json()[0]
    approved = http.post(
        f"/api/v1/me/requests/{pending['id']}/approve", json={}, headers={"X-CSRF-Token": csrf}
    )
    assert approved.status_code == 200, approved.text
    tokens = agency.poll(asked.json()["auth_req_id"])
    assert tokens.status_code == 200, tokens.text
    return Connected(csrf=csrf, handle=tokens.json()["vault_handle"], records=records)


def open_emergency(agency: AgencyClient, person: Connected, **overrides: Any) -> dict[str, Any]:
    """Open emergency access and take the tokens from the first poll."""
    asked = ask_emergency(agency, person.handle, **overrides)
    assert asked.status_code == 200, asked.text
    polled = agency.poll(asked.json()["auth_req_id"])
    assert polled.status_code == 200, polled.text
    return dict(polled.json())


def count(services: Services, table: str) -> int:
    return int(run_sql(services, f"SELECT count(*) FROM {table}")[0][0])


def operator_actions(services: Services) -> list[str]:
    rows = run_sql(services, "SELECT action FROM audit_event WHERE chain = 'operator' ORDER BY seq")
    return [r[0] for r in rows]


def emergency_id(services: Services) -> str:
    rows = run_sql(services, "SELECT id FROM emergency_access ORDER BY created_at DESC")
    value = rows[0][0]
    return value.hex if hasattr(value, "hex") and not isinstance(value, str) else str(value)


def db_time(services: Services, when: Any) -> Any:
    return when.replace(tzinfo=None) if services.settings.is_sqlite else when
