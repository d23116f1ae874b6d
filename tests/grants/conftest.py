"""Fixtures shared by the OAuth flow tests: an agency's system and a young person."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.container import Services
from tests.conftest import add_record, sign_up
from tests.grants.kit import AgencyClient, agency_client


@pytest.fixture
def school(client: TestClient, services: Services) -> AgencyClient:
    return agency_client(client, services)


@pytest.fixture
def young(client: TestClient, services: Services) -> dict[str, Any]:
    """A signed-in young person, with records in two categories and two story entries."""
    csrf = sign_up(client, "alex")
    ids = {
        "education": add_record(services, "alex", category="education", title="Report"),
        "health": add_record(services, "alex", category="health", title="Check-up"),
    }
    for title, shareable in (("shared one", True), ("private one", False)):
        client.post(
            "/api/v1/me/entries",
            json={"title": title, "shareable": shareable},
            headers={"X-CSRF-Token": csrf},
        )
    return {"csrf": csrf, "records": ids}
