"""Shared fixtures.

Every test that touches the database runs on SQLite, and again on PostgreSQL when
``STORYKEEP_TEST_DATABASE_URL`` is set. SQLite tests get a fresh copy of a migrated
template file; PostgreSQL tests share one freshly created, migrated database per run
and every table is emptied after each test. Each test gets its own key file.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from app.container import Services, build_services
from app.main import create_app
from app.migrate import upgrade
from app.settings import Settings

PG_URL = os.environ.get("STORYKEEP_TEST_DATABASE_URL")
BACKENDS = ["sqlite", "postgresql"] if PG_URL else ["sqlite"]
PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "storykeep.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    assert PG_URL is not None
    name = f"storykeep_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "data" / "storykeep.db"
        target.parent.mkdir(parents=True)
        shutil.copy(template, target)
        return f"sqlite:///{target}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        environment="test",
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key="test-secret-key-that-is-long-enough-000",
    )


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    """Environment for running the CLI against the same database and keys."""
    return {
        **os.environ,
        "STORYKEEP_ENVIRONMENT": "test",
        "STORYKEEP_DATA_DIR": str(settings.data_dir),
        "STORYKEEP_DATABASE_URL": settings.resolved_database_url,
        "STORYKEEP_SECRET_KEY": settings.secret_key.get_secret_value(),
    }


def _empty_all_tables(services: Services) -> None:
    if services.engine.dialect.name != "postgresql":
        return
    names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with services.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} CASCADE"))


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build_services(settings)
    yield built
    _empty_all_tables(built)
    built.engine.dispose()


@pytest.fixture
def app(settings: Settings, services: Services) -> Any:
    return create_app(settings, services)


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    # https so the Secure session cookie is stored and sent back, as a browser would.
    with TestClient(app, base_url="https://testserver") as test_client:
        yield test_client


def sign_up(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Make an account and sign in. Returns the CSRF token and sets the cookie."""
    response = client.post("/api/v1/accounts", json={"username": username, "password": password})
    assert response.status_code == 201, response.text
    return sign_in(client, username, password)


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> str:
    response = client.post("/api/v1/me/session", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["csrf_token"])


@pytest.fixture
def csrf(client: TestClient) -> str:
    """A signed-in young person called 'alex'."""
    return sign_up(client, "alex")


def add_record(services: Services, username: str, **overrides: Any) -> uuid.UUID:
    """The operator's path for adding a record (the same service the CLI calls)."""
    from app.db import unit_of_work
    from vault import repository, service
    from vault.actors import Actor
    from vault.schemas import RecordCreate

    fields: dict[str, Any] = {
        "agency": "Example High School",
        "author_name": "Jo Bloggs",
        "author_role": "guidance teacher",
        "category": "education",
        "shanarri": ["achieving"],
        "title": "School report, June",
        "body": "Doing well in art.",
    }
    fields.update(overrides)
    for session in unit_of_work(services.engine):
        person = repository.get_young_person_by_username(session, username)
        assert person is not None
        vault = service.vault_of(session, person)
        record = service.add_record(
            session, services.vault, Actor.operator(), vault.id, RecordCreate(**fields)
        )
    return record.id


def run_sql(services: Services, statement: str, **params: Any) -> list[Any]:
    with services.engine.begin() as conn:
        result = conn.execute(text(statement), params)
        return list(result) if result.returns_rows else []
