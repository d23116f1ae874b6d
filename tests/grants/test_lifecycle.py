"""The lifecycle job: lapses, reminders and endings are logged and told once, however
often the job runs, and a grant ends at its time even when the job has not run."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlmodel import Session, select
from starlette.testclient import TestClient

from app.container import Services
from grants import lifecycle
from grants.models import AccessRequest, Agency, Grant, Notification
from tests.conftest import sign_up
from vault import repository as vault_repo
from vault.db_types import utcnow
from vault.models import AuditEvent

PRACTITIONER = {"name": "Jo Bloggs", "role": "teacher", "email": "jo@school.example"}


def _vault_id(services: Services, client: TestClient) -> uuid.UUID:
    sign_up(client, "lifecyclekid")
    with Session(services.engine) as session:
        person = vault_repo.get_young_person_by_username(session, "lifecyclekid")
        assert person is not None
        vault = vault_repo.get_vault_of(session, person.id)
        assert vault is not None
        return vault.id


def _seed(services: Services, vault_id: uuid.UUID) -> dict[str, uuid.UUID]:
    now = utcnow()
    ids: dict[str, uuid.UUID] = {}
    with Session(services.engine) as session, session.begin():
        agency = Agency(name="Example High School", purposes=["education_support"])
        session.add(agency)
        session.flush()

        def request(name: str, decide_in: timedelta, status: str = "pending") -> AccessRequest:
            row = AccessRequest(
                auth_req_hash=uuid.uuid4().hex, client_id="c", agency_id=agency.id,
                vault_id=vault_id, practitioner=PRACTITIONER, status=status,
                details={"categories": ["education"], "duration_days": 30,
                         "actions": ["read"], "purpose": "education_support"},
                created_at=now - timedelta(days=1), decide_by=now + decide_in,
            )  # fmt: skip
            session.add(row)
            session.flush()
            ids[name] = row.id
            return row

        request("lapsing", -timedelta(minutes=1))
        request("due_soon", timedelta(hours=12))
        request("far_off", timedelta(days=6))
        for name, ends_in in (("ending", timedelta(days=2)), ("ended", -timedelta(hours=1)),
                              ("long", timedelta(days=20))):  # fmt: skip
            parent = request(name + "_request", timedelta(days=1), status="approved")
            grant = Grant(
                request_id=parent.id, vault_id=vault_id, agency_id=agency.id, client_id="c",
                categories=["education"], actions=["read"], purpose="education_support",
                practitioner=PRACTITIONER, created_at=now - timedelta(days=5),
                expires_at=now + ends_in,
            )  # fmt: skip
            session.add(grant)
            session.flush()
            ids[name] = grant.id
    return ids


def test_one_run_tells_everyone_once_and_a_second_run_adds_nothing(
    services: Services, client: TestClient
) -> None:
    vault_id = _vault_id(services, client)
    ids = _seed(services, vault_id)
    notifier = lifecycle.Notifier(app_secret=services.grants.secret, email_channel="smtp")

    first = lifecycle.run(services.engine, services.keys, notifier)
    assert first == lifecycle.LifecycleReport(
        requests_lapsed=1, request_reminders=1, grant_reminders=1, grants_ended=1
    )
    second = lifecycle.run(services.engine, services.keys, notifier)
    assert second == lifecycle.LifecycleReport()

    with Session(services.engine) as session:
        lapsed = session.get(AccessRequest, ids["lapsing"])
        assert lapsed is not None and lapsed.status == "lapsed"
        far = session.get(AccessRequest, ids["far_off"])
        assert far is not None and far.status == "pending"
        ended = session.get(Grant, ids["ended"])
        assert ended is not None and ended.end_noted_at is not None
        long = session.get(Grant, ids["long"])
        assert long is not None and long.end_noted_at is None
        notes = list(session.exec(select(Notification)))
        kinds = sorted((n.recipient_kind, n.kind, n.channel) for n in notes)
        assert kinds == [
            ("practitioner", "expiry", "smtp"),  # the lapsed request
            ("practitioner", "expiry", "smtp"),  # the ended grant
            ("young_person", "grant_ending", "console"),
            ("young_person", "request_reminder", "console"),
        ]
        actions = [
            e.action
            for e in session.exec(select(AuditEvent).where(AuditEvent.chain == vault_id.hex))
        ]
        assert actions.count("request:lapsed") == 1 and actions.count("grant:expired") == 1


def test_an_ended_grant_is_refused_even_before_the_job_runs(
    services: Services, client: TestClient
) -> None:
    vault_id = _vault_id(services, client)
    ids = _seed(services, vault_id)
    with Session(services.engine) as session:
        grant = session.get(Grant, ids["ended"])
        assert grant is not None and grant.end_noted_at is None
        assert not grant.is_active(utcnow())
