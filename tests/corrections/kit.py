"""Helpers for the corrections tests: the agency API calls, and snapshots of the store
to show that a refused call changed nothing."""

from __future__ import annotations

from typing import Any

from app.container import Services
from app.db import transaction
from tests.conftest import run_sql
from tests.corrections.conftest import ASKED, BODY, TITLE
from tests.grants.kit import AgencyClient
from vault import audit

API = "/api/v1/agency/corrections"


def inbox(agency: AgencyClient, **form: str) -> Any:
    return agency.post(f"{API}/list", form)


def read(agency: AgencyClient, correction_id: str) -> Any:
    return agency.post(f"{API}/{correction_id}/read", {})


def accept(agency: AgencyClient, correction_id: str, **form: str) -> Any:
    return agency.post(f"{API}/{correction_id}/accept", form)


def decline(agency: AgencyClient, correction_id: str, **form: str) -> Any:
    return agency.post(f"{API}/{correction_id}/decline", form)


def snapshot(services: Services) -> dict[str, Any]:
    """Everything a decision may change: the request, the record, its versions, the
    audit log and the outbox."""
    return {
        "corrections": run_sql(
            services,
            "SELECT id, status, decided_at, decided_by, decline_reason_sealed, statement_sealed "
            "FROM correction_request ORDER BY id",
        ),
        "records": run_sql(
            services, "SELECT id, version, title_sealed, body_sealed FROM agency_record ORDER BY id"
        ),
        "versions": run_sql(services, "SELECT count(*) FROM agency_record_version"),
        "audit": run_sql(services, "SELECT count(*) FROM audit_event"),
        "outbox": run_sql(services, "SELECT count(*) FROM notification"),
    }


def actions(services: Services) -> list[str]:
    return [r[0] for r in run_sql(services, "SELECT action FROM audit_event ORDER BY id")]


def outbox(services: Services) -> list[tuple[str, str, str, str]]:
    rows = run_sql(
        services, "SELECT recipient_kind, kind, subject, body FROM notification ORDER BY created_at"
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def assert_no_content_in_outbox(services: Services, *more: str) -> None:
    """Notifications say that something happened and who did it; never what a record,
    a request, a reason or a statement says."""
    markers = ("MARKER", TITLE, BODY, ASKED, *more)
    for row in outbox(services):
        for marker in markers:
            assert marker not in row[2] and marker not in row[3], (marker, row)


def assert_audit_verifies(services: Services) -> None:
    with transaction(services.engine) as session:
        problems = [r for r in audit.verify_all(session, services.keys) if r.problem]
    assert problems == []
