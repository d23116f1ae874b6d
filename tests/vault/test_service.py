"""Vault services called directly, as grants/ will call them for agencies."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from app.container import Services
from app.db import unit_of_work
from tests.conftest import add_record, sign_up
from vault import repository as repo
from vault import service
from vault.actors import Actor
from vault.errors import NotFound
from vault.repository import VaultScope

TEACHER = Actor(
    type="practitioner",
    id="p-123",
    label="Jo Bloggs",
    agency="Example High School",
    purpose="education_support",
    grant_id="g-456",
)


@pytest.fixture
def alex_vault(client: TestClient, services: Services) -> VaultScope:
    csrf = sign_up(client, "alex")
    client.post(
        "/api/v1/me/entries",
        json={"title": "shared", "shareable": True},
        headers={"X-CSRF-Token": csrf},
    )
    client.post(
        "/api/v1/me/entries",
        json={"title": "private", "shareable": False},
        headers={"X-CSRF-Token": csrf},
    )
    add_record(services, "alex", category="education", title="Report")
    add_record(services, "alex", category="health", title="Check-up")
    for session in unit_of_work(services.engine):
        person = repo.get_young_person_by_username(session, "alex")
        assert person is not None
        vault_id = service.vault_of(session, person).id
    return VaultScope(vault_id, categories=frozenset({"education"}), shareable_only=True)


def audit_actions(client: TestClient) -> list[tuple[str, str | None, str | None, str | None]]:
    events = client.get("/api/v1/me/audit").json()["events"]
    return [(e["action"], e["agency"], e["purpose"], e["grant_id"]) for e in events]


class TestScopedReads:
    def test_scope_limits_what_is_seen(self, services: Services, alex_vault: VaultScope) -> None:
        for session in unit_of_work(services.engine):
            records = service.list_records(session, services.vault, TEACHER, alex_vault)
            entries = service.list_entries(session, services.vault, TEACHER, alex_vault)
        assert [r.title for r in records] == ["Report"]
        assert [e.title for e in entries] == ["shared"]

    def test_out_of_scope_record_is_not_found(
        self, services: Services, alex_vault: VaultScope, client: TestClient
    ) -> None:
        health = next(
            r for r in client.get("/api/v1/me/records").json() if r["category"] == "health"
        )
        for session in unit_of_work(services.engine):
            with pytest.raises(NotFound):
                service.get_record(
                    session, services.vault, TEACHER, alex_vault, uuid.UUID(health["id"])
                )

    def test_reads_by_others_are_logged_with_agency_purpose_and_grant(
        self, services: Services, alex_vault: VaultScope, client: TestClient
    ) -> None:
        before = audit_actions(client)
        for session in unit_of_work(services.engine):
            service.list_records(session, services.vault, TEACHER, alex_vault)
            service.list_entries(session, services.vault, TEACHER, alex_vault)
        after = audit_actions(client)
        new = after[: len(after) - len(before)]
        assert sorted(new) == [
            ("entry:read", "Example High School", "education_support", "g-456"),
            ("record:read", "Example High School", "education_support", "g-456"),
        ]
        # The owner's own reads (the list above) are not logged.
        assert audit_actions(client) == after
