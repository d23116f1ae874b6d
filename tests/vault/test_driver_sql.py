"""Statements run on the driver (vault/driver_sql.py) must read and write exactly what
the ORM does, on SQLite and PostgreSQL alike: same UUIDs, the same timezone-aware
times, the same JSON. Otherwise audit hashes or grant checks would quietly differ."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from app.container import Services
from app.db import transaction
from tests.conftest import add_record, run_sql
from vault import audit, service
from vault import repository as repo
from vault.actors import Actor
from vault.errors import NotFound
from vault.models import AgencyRecord, AuditEvent, Vault
from vault.repository import VaultScope
from vault.schemas import NoteCreate, RecordCreate


def _vault_of(session: Session, username: str) -> Vault:
    person = repo.get_young_person_by_username(session, username)
    assert person is not None
    return service.vault_of(session, person)


def _person(services: Services, username: str) -> None:
    with transaction(services.engine) as session:
        service.create_young_person(session, services.vault, None, username, "x" * 20)


def test_a_record_written_on_the_driver_reads_back_the_same_through_the_orm(
    services: Services,
) -> None:
    _person(services, "kim")
    when = datetime(2026, 3, 3, 10, 14, 5, 123456, tzinfo=UTC)
    record_id = add_record(
        services, "kim", shanarri=["safe", "achieving"], occurred_at=when, title="Report"
    )
    with transaction(services.engine) as session:
        orm = session.get(AgencyRecord, record_id)
        assert orm is not None
        assert orm.occurred_at == when and orm.occurred_at.tzinfo is not None
        assert orm.shanarri == ["achieving", "safe"]
        assert orm.created_at.tzinfo is not None
        row = repo.record_row(session, VaultScope.owner(orm.vault_id), record_id)
    for column in ("id", "vault_id", "shanarri", "occurred_at", "created_at", "version"):
        assert getattr(row, column) == getattr(orm, column), column
    assert bytes(row.body_sealed) == orm.body_sealed


def test_a_scoped_row_is_only_found_inside_the_scope(services: Services) -> None:
    _person(services, "kim")
    education = add_record(services, "kim", category="education")
    health = add_record(services, "kim", category="health")
    with transaction(services.engine) as session:
        vault_id = _vault_of(session, "kim").id
        only_education = VaultScope(vault_id, categories=frozenset({"education"}))
        assert repo.record_row(session, only_education, education) is not None
        assert repo.record_row(session, only_education, health) is None
        named = VaultScope(vault_id, categories=None, record_ids=frozenset({health}))
        assert repo.record_row(session, named, education) is None
        assert repo.record_row(session, named, health) is not None
        nothing = VaultScope(vault_id, categories=frozenset())
        assert repo.record_row(session, nothing, education) is None
        other_vault = VaultScope(uuid.uuid4())
        assert repo.record_row(session, other_vault, education) is None


def test_a_record_fetched_without_its_scope_is_held_to_the_same_filters(
    services: Services,
) -> None:
    """A record read by id (with the token check, or by fetch_record) is held to the
    grant's scope in Python (VaultScope.admits_record): it must agree with the SQL
    filters that list records (VaultScope.records)."""
    _person(services, "kim")
    _person(services, "sam")
    education = add_record(services, "kim", category="education")
    health = add_record(services, "kim", category="health")
    elsewhere = add_record(services, "sam", category="education")
    with transaction(services.engine) as session:
        vault_id = _vault_of(session, "kim").id
        scopes = [
            VaultScope(vault_id),
            VaultScope(vault_id, categories=frozenset({"education"})),
            VaultScope(vault_id, categories=frozenset()),
            VaultScope(vault_id, record_ids=frozenset({health})),
            VaultScope(
                vault_id, categories=frozenset({"education"}), record_ids=frozenset({health})
            ),
            VaultScope(uuid.uuid4()),
        ]
        sam = VaultScope.owner(_vault_of(session, "sam").id)
        kims = VaultScope.owner(vault_id)
        for record_id, owner in ((education, kims), (health, kims), (elsewhere, sam)):
            row = repo.record_row(session, owner, record_id)
            fetched = repo.FetchedRecord(record_id, row)
            for scope in scopes:
                in_sql = record_id in {r.id for r in repo.list_records(session, scope)}
                assert scope.admits_record(row) is in_sql, (scope, record_id)
                assert (repo.record_row(session, scope, record_id) is not None) is in_sql
                if in_sql:
                    got = service.get_record(
                        session, services.vault, Actor.operator(), scope, record_id, fetched
                    )
                    assert got.id == record_id
                else:
                    with pytest.raises(NotFound):
                        service.get_record(
                            session, services.vault, Actor.operator(), scope, record_id, fetched
                        )
        # Fetched and found missing: missing, whatever the scope.
        with pytest.raises(NotFound):
            service.get_record(
                session, services.vault, Actor.operator(), kims, education,
                repo.FetchedRecord(education, None),
            )  # fmt: skip


def test_audit_entries_appended_on_the_driver_verify(services: Services) -> None:
    _person(services, "kim")
    with transaction(services.engine) as session:
        vault = _vault_of(session, "kim")
        for n in range(3):
            audit.append(
                session, services.keys, vault.id.hex, Actor.operator(), "record:read",
                object_type="agency_record", object_id=f"{n:032x}",
            )  # fmt: skip
    with transaction(services.engine) as session:
        reports = {r.chain: r for r in audit.verify_all(session, services.keys)}
        events = session.exec(select(AuditEvent).where(AuditEvent.chain == vault.id.hex)).all()
    assert reports[vault.id.hex].problem is None
    assert reports[vault.id.hex].entries == 4  # vault:created, then three reads
    assert all(e.occurred_at.tzinfo is not None for e in events)
    # Stored times are UTC and recent, whatever the database's own time zone.
    newest = max(e.occurred_at for e in events)
    assert abs(datetime.now(UTC) - newest) < timedelta(minutes=1)
    assert (
        run_sql(services, "SELECT COUNT(*) FROM audit_event WHERE chain = :c", c=vault.id.hex)[0][0]
        == 4
    )


def test_a_record_goes_only_into_an_open_vault(services: Services) -> None:
    """add_record's insert checks the vault itself: missing or erased, nothing is written,
    even while this process still holds the vault's key in memory."""
    _person(services, "kim")
    add_record(services, "kim", title="first")  # the vault's key is now cached
    data = RecordCreate(
        agency="Example High School", author_name="Jo", author_role="teacher",
        category="education", title="late", body="after the end",
    )  # fmt: skip
    with transaction(services.engine) as session:
        vault_id = _vault_of(session, "kim").id
    run_sql(services, "UPDATE vault SET erased_at = CURRENT_TIMESTAMP")
    for target in (vault_id, uuid.uuid4()):
        with pytest.raises(NotFound), transaction(services.engine) as session:
            service.add_record(session, services.vault, Actor.operator(), target, data)
    rows = run_sql(services, "SELECT COUNT(*) FROM agency_record")
    assert rows[0][0] == 1


def test_a_records_notes_hint_is_its_own_and_asked_by_record(services: Services) -> None:
    """``has_notes`` on a fetched record says whether that record has notes (so its notes
    are read, or the query skipped), and SQLite answers it from the record's index: asked
    by vault as well, it walked every note in the vault for each record read."""
    _person(services, "kim")
    noted = add_record(services, "kim", title="noted")
    plain = add_record(services, "kim", title="plain")
    with transaction(services.engine) as session:
        vault = _vault_of(session, "kim")
        service.add_note(
            session, services.vault, Actor.operator(), vault, noted, NoteCreate(body="mine")
        )
    with transaction(services.engine) as session:
        scope = VaultScope.owner(vault.id)
        assert repo.record_row(session, scope, noted).has_notes
        assert not repo.record_row(session, scope, plain).has_notes
        assert not repo.record_row(session, scope, plain).has_statements
        got = service.get_record(session, services.vault, Actor.operator(), scope, noted)
        assert [n.body for n in got.notes] == ["mine"]
        assert (
            service.get_record(session, services.vault, Actor.operator(), scope, plain).notes == []
        )
        if session.get_bind().dialect.name != "sqlite":
            return  # PostgreSQL plans from its own statistics
        statement = repo._RECORD_BY_ID_ROW.statement.compile(dialect=session.get_bind().dialect)
        plan = " ".join(
            str(step[-1])
            for step in session.connection().exec_driver_sql(
                f"EXPLAIN QUERY PLAN {statement}", (vault.id.hex, noted.hex)
            )
        )
    assert "ix_view_note_record_time" in plan and "ix_view_note_vault_id" not in plan, plan
    assert "ix_correction_request_record_time" in plan, plan
