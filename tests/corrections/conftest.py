"""Fixtures for corrections: a young person (Alex) with a record written by Example High
School, the school's OAuth client and a practitioner there, and a second agency that
must never see the school's requests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.container import Services
from tests.conftest import add_record, sign_up
from tests.grants.kit import AgencyClient, agency_client
from tests.practitioner.kit import add_practitioner

SCHOOL = "Example High School"
OTHER = "Other Academy"
# Marker strings: none of them may ever reach a notification.
TITLE = "Report MARKER-TITLE"
BODY = "Alexandria MARKER-BODY is doing well in art."
ASKED = "My name is Alexandra MARKER-ASKED, not Alexandria."


@pytest.fixture
def school(client: TestClient, services: Services) -> AgencyClient:
    return agency_client(client, services, SCHOOL)


@pytest.fixture
def other(client: TestClient, services: Services) -> AgencyClient:
    return agency_client(client, services, OTHER)


@pytest.fixture
def alex(client: TestClient, services: Services, school: AgencyClient) -> dict[str, Any]:
    """Alex, signed in on ``client`` (JSON API), with one school record and one open
    request to correct it."""
    csrf = sign_up(client, "alex")
    record_id = add_record(services, "alex", agency=SCHOOL, title=TITLE, body=BODY)
    asked = client.post(
        f"/api/v1/me/records/{record_id}/corrections",
        json={"body": ASKED},
        headers={"X-CSRF-Token": csrf},
    )
    assert asked.status_code == 201, asked.text
    return {"csrf": csrf, "record_id": str(record_id), "correction_id": asked.json()["id"]}


@pytest.fixture
def worker(app: Any) -> Iterator[TestClient]:
    """A practitioner's own browser: cookies apart from the young person's."""
    with TestClient(app, base_url="https://testserver") as browser:
        yield browser


@pytest.fixture
def jo(services: Services, school: AgencyClient) -> str:
    """Jo Bloggs, a practitioner at the school. Returns her TOTP secret."""
    secret = add_practitioner(services, agency=SCHOOL)
    assert secret is not None
    return secret


@pytest.fixture
def sam(services: Services, other: AgencyClient) -> str:
    """Sam, a practitioner at the other agency. Returns his TOTP secret."""
    secret = add_practitioner(
        services, email="sam@other.example.org", agency=OTHER, name="Sam Smith", role="teacher"
    )
    assert secret is not None
    return secret
