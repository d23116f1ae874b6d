"""Fixtures for the advocate tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.container import Services
from tests.conftest import sign_up
from tests.grants.kit import AgencyClient, agency_client


@pytest.fixture
def adv(app: Any) -> Iterator[TestClient]:
    """The advocate's own browser: a separate cookie jar on the same app."""
    with TestClient(app, base_url="https://testserver") as browser:
        yield browser


@pytest.fixture
def young(client: TestClient) -> str:
    """A signed-in young person called 'alex'. Returns the CSRF token."""
    return sign_up(client, "alex")


@pytest.fixture
def school(client: TestClient, services: Services) -> AgencyClient:
    return agency_client(client, services)
