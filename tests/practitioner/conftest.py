"""Fixtures for the practitioner pages: a school with a practitioner, a young person
with records and story entries, a second browser for the worker, and the identity
provider the OpenID Connect tests sign in against."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.container import Services
from tests.conftest import add_record, sign_up
from tests.practitioner import idp as idp_server
from tests.practitioner.kit import add_agency, add_practitioner


@pytest.fixture
def worker(app: Any) -> Iterator[TestClient]:
    """The practitioner's own browser: cookies apart from the young person's."""
    with TestClient(app, base_url="https://testserver") as browser:
        yield browser


@pytest.fixture
def jo(services: Services) -> str:
    """Example High School, and Jo Bloggs who works there. Returns Jo's TOTP secret."""
    add_agency(services)
    secret = add_practitioner(services)
    assert secret is not None
    return secret


@pytest.fixture
def young(client: TestClient, services: Services) -> dict[str, Any]:
    """Alex, signed in on ``client``, with records in two categories and two entries."""
    csrf = sign_up(client, "alex")
    ids = {
        "education": add_record(services, "alex", category="education", title="Report"),
        "health": add_record(services, "alex", category="health", title="Check-up"),
    }
    for title, shareable in (("shared one", True), ("private one", False)):
        response = client.post(
            "/api/v1/me/entries",
            json={"title": title, "body": f"{title} body", "shareable": shareable},
            headers={"X-CSRF-Token": csrf},
        )
        assert response.status_code == 201, response.text
    return {"csrf": csrf, "records": ids}


@pytest.fixture(scope="session")
def idp_process() -> Iterator[idp_server.TestIdentityProvider]:
    yield from idp_server.serve()


@pytest.fixture
def idp(idp_process: idp_server.TestIdentityProvider) -> idp_server.TestIdentityProvider:
    idp_process.reset()
    return idp_process
