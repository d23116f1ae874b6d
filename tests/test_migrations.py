"""Models and migrations agree: autogenerate finds nothing to change. And the one data
migration that needs keys (0007) seals what the old code kept in clear, or changes nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.container import Services
from app.migrate import differences, downgrade, upgrade
from app.settings import Settings
from tests.conftest import PG_URL, run_sql, sign_up
from tests.grants.kit import agency_client, connection_code, decline_reason
from tests.vault.test_storage import database_text

KEPT = "I do not trust that school yet kx4"
ERASED = "Please forget I ever said this jw9"
DECLINED = "SELECT id, decline_reason FROM access_request WHERE status = 'declined'"


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database of the test's own: the PostgreSQL one the other tests share must never
    be seen at an old revision."""
    if backend == "sqlite":
        target = tmp_path / "data" / "storykeep.db"
        target.parent.mkdir(parents=True)
        shutil.copy(request.getfixturevalue("sqlite_template"), target)
        yield f"sqlite:///{target}"
        return
    assert PG_URL is not None
    name = f"storykeep_migration_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_models_match_migrations(services: Services) -> None:
    assert differences(services.engine) == []


def table_file(services: Services, table: str) -> bytes:
    """What PostgreSQL has written to disk for ``table`` (old row versions included)."""
    with services.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("CHECKPOINT"))
        path = conn.execute(text("SELECT pg_relation_filepath(:t)"), {"t": table}).scalar_one()
        return bytes(conn.execute(text("SELECT pg_read_binary_file(:p)"), {"p": path}).scalar_one())


def db_upgrade(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def decline(client: TestClient, services: Services, name: str, reason: str | None) -> str:
    """``name`` says yes to one request and no (with ``reason``) to another."""
    csrf = sign_up(client, name)
    school = agency_client(client, services, name=f"School of {name}")
    for answer in ("approve", "decline"):
        school.ask(connection_code(client, csrf))
        [request] = [
            r for r in client.get("/api/v1/me/requests").json() if r["status"] == "pending"
        ]
        said = client.post(
            f"/api/v1/me/requests/{request['id']}/{answer}",
            json={"reason": reason} if answer == "decline" else {},
            headers={"X-CSRF-Token": csrf},
        )
        assert said.status_code in (200, 201), said.text
    if reason == ERASED:
        assert client.delete("/api/v1/me", headers={"X-CSRF-Token": csrf}).status_code == 204
    client.cookies.clear()
    return str(request["id"])


def test_0007_seals_reasons_kept_in_clear_with_the_vaults_keys(
    client: TestClient, services: Services, settings: Settings, env: dict[str, str]
) -> None:
    alex = decline(client, services, "alex", KEPT)
    sam = decline(client, services, "sam", ERASED)
    kim = decline(client, services, "kim", None)
    grants = run_sql(services, "SELECT id, request_id FROM access_grant ORDER BY id")
    assert len(grants) == 3
    # Back to 0006, where the reason was a plain column: the downgrade opens what it can.
    downgrade(settings.resolved_database_url, "0006", open_keys=lambda: services.keys)
    plain = {str(uuid.UUID(str(i))): r for i, r in run_sql(services, DECLINED)}
    assert plain == {alex: KEPT, sam: None, kim: None}  # sam's was shredded already
    # What the old code did: sam's words stayed, in clear, after sam's erasure.
    run_sql(
        services,
        "UPDATE access_request SET decline_reason = :reason"
        " WHERE vault_id IN (SELECT id FROM vault WHERE erased_at IS NOT NULL)"
        " AND status = 'declined'",
        reason=ERASED,
    )

    # Without the keys the upgrade refuses, and changes nothing.
    keys = settings.resolved_key_file
    keys.rename(keys.with_name("away"))
    refused = db_upgrade(env)
    assert refused.returncode == 1 and "is not there" in refused.stderr, refused.stderr
    keys.with_name("away").rename(keys)
    assert run_sql(services, "SELECT version_num FROM alembic_version") == [("0006",)]
    kept = {str(uuid.UUID(str(i))): r for i, r in run_sql(services, DECLINED)}
    assert kept == {alex: KEPT, sam: ERASED, kim: None}

    done = db_upgrade(env)
    assert done.returncode == 0, done.stderr
    assert differences(services.engine) == []
    assert KEPT not in database_text(services) and ERASED not in database_text(services)
    if not services.settings.is_sqlite:  # the table's file too, not only its live rows
        stored = table_file(services, "access_request")
        assert KEPT.encode() not in stored and ERASED.encode() not in stored
    assert decline_reason(services, alex) == KEPT  # sealed as grants.service seals it
    assert decline_reason(services, sam) is None  # its vault was erased: not kept
    assert decline_reason(services, kim) is None
    assert db_upgrade(env).returncode == 0  # safe to run again
    # Moving the column must not touch the rows that point at requests (on SQLite, a
    # table rebuilt with foreign keys on would cascade its DROP to the grants).
    assert run_sql(services, "SELECT id, request_id FROM access_grant ORDER BY id") == grants
