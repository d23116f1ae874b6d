"""Encryption at rest, attacked through the database and observed through HTTP and the CLI."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.container import Services, build_services
from app.main import create_app
from app.settings import Settings
from tests.conftest import add_record, run_sql, sign_in, sign_up
from vault.crypto import FieldContext
from vault.errors import IntegrityFailure, KeyUnavailable
from vault.keys import LocalKeyFileProvider, WrappedKey

MARKERS = ("Zebra-marker-title", "Quokka-marker-body", "Narwhal-record-body", "Axolotl-view")


def new_entry(client: TestClient, csrf: str, title: str, body: str = "body") -> str:
    response = client.post(
        "/api/v1/me/entries", json={"title": title, "body": body}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status_code == 201
    return str(response.json()["id"])


def sealed_of(services: Services, entry_id: str, column: str = "body_sealed") -> bytes:
    (value,) = run_sql(
        services, f"SELECT {column} FROM story_entry WHERE id = :id", id=_db_id(services, entry_id)
    )[0]
    return bytes(value)


def _db_id(services: Services, entry_id: str) -> Any:
    # SQLite stores UUIDs as 32 hex chars; PostgreSQL has a uuid type.
    return uuid.UUID(entry_id).hex if services.settings.is_sqlite else uuid.UUID(entry_id)


def put_sealed(
    services: Services, entry_id: str, value: bytes, column: str = "body_sealed"
) -> None:
    run_sql(
        services,
        f"UPDATE story_entry SET {column} = :v WHERE id = :id",
        v=value,
        id=_db_id(services, entry_id),
    )


class TestCiphertextPlacement:
    def test_swapped_between_rows_fails_closed(
        self, client: TestClient, services: Services, csrf: str
    ) -> None:
        first = new_entry(client, csrf, "first", "first body")
        second = new_entry(client, csrf, "second", "second body")
        original = sealed_of(services, second)
        put_sealed(services, second, sealed_of(services, first))
        response = client.get(f"/api/v1/me/entries/{second}")
        assert response.status_code == 409
        assert response.json()["error"] == "integrity_failure"
        assert "first body" not in response.text
        # Fail closed, change nothing: the first entry still reads, the list refuses whole.
        assert client.get(f"/api/v1/me/entries/{first}").json()["body"] == "first body"
        put_sealed(services, second, original)
        assert client.get(f"/api/v1/me/entries/{second}").json()["body"] == "second body"

    def test_swapped_between_fields_fails(
        self, client: TestClient, services: Services, csrf: str
    ) -> None:
        entry = new_entry(client, csrf, "title", "body")
        put_sealed(services, entry, sealed_of(services, entry, "title_sealed"))
        assert client.get(f"/api/v1/me/entries/{entry}").status_code == 409

    def test_swapped_between_vaults_fails(self, client: TestClient, services: Services) -> None:
        sams = new_entry(client, sign_up(client, "sam"), "sam's", "sam's words")
        client.cookies.clear()
        alex_csrf = sign_up(client, "alex")
        alexs = new_entry(client, alex_csrf, "alex's", "alex's words")
        put_sealed(services, alexs, sealed_of(services, sams))
        response = client.get(f"/api/v1/me/entries/{alexs}")
        assert response.status_code == 409 and "sam's words" not in response.text

    def test_tampered_byte_fails(self, client: TestClient, services: Services, csrf: str) -> None:
        entry = new_entry(client, csrf, "t", "some words")
        sealed = bytearray(sealed_of(services, entry))
        sealed[-5] ^= 0xFF
        put_sealed(services, entry, bytes(sealed))
        assert client.get(f"/api/v1/me/entries/{entry}").status_code == 409
        assert client.get("/api/v1/me/entries").status_code == 409


class TestNoPlaintextAtRest:
    def test_database_holds_no_content(
        self, client: TestClient, services: Services, csrf: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        entry = new_entry(client, csrf, MARKERS[0], MARKERS[1])
        record = add_record(services, "alex", body=MARKERS[2], title="Record " + MARKERS[2])
        client.post(
            f"/api/v1/me/records/{record}/notes",
            json={"body": MARKERS[3]},
            headers={"X-CSRF-Token": csrf},
        )
        client.patch(
            f"/api/v1/me/entries/{entry}",
            json={"body": MARKERS[1] + " edited"},
            headers={"X-CSRF-Token": csrf},
        )
        for marker in MARKERS:
            assert marker not in database_text(services), marker
            assert marker not in caplog.text


def database_text(services: Services) -> str:
    """Every byte the database keeps: the files for SQLite, every row for PostgreSQL."""
    if services.settings.is_sqlite:
        base = Path(services.settings.resolved_database_url.removeprefix("sqlite:///"))
        return "".join(
            path.read_bytes().decode("latin-1") for path in base.parent.glob(base.name + "*")
        )
    chunks = []
    with services.engine.connect() as conn:
        for (table,) in conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        ):
            for (row,) in conn.execute(text(f'SELECT row_to_json(t)::text FROM "{table}" t')):
                chunks.append(row)
    return "\n".join(chunks)


class TestRotation:
    def test_cli_rotation_rewraps_every_key_and_data_still_reads(
        self, client: TestClient, services: Services, env: dict[str, str]
    ) -> None:
        csrf = sign_up(client, "alex")
        entry = new_entry(client, csrf, "before rotation", "still here")
        client.cookies.clear()
        sign_up(client, "sam")
        before = run_sql(services, "SELECT id, wrapped_key, kek_version FROM vault_data_key")
        assert {row[2] for row in before} == {1}
        result = subprocess.run(
            [sys.executable, "-m", "app.cli", "keys", "rotate"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"kek_version": 2, "rewrapped": 2}
        after = {
            row[0]: row
            for row in run_sql(services, "SELECT id, wrapped_key, kek_version FROM vault_data_key")
        }
        for key_id, wrapped, _version in before:
            assert after[key_id][2] == 2 and bytes(after[key_id][1]) != bytes(wrapped)
        # Content is untouched (only wraps change). The server that was already running
        # picks the new KEK up from the key file without a restart.
        services.keyring._cache.clear()
        sign_in(client, "alex")
        assert client.get(f"/api/v1/me/entries/{entry}").json()["body"] == "still here"
        client.cookies.clear()
        sign_up(client, "newcomer")
        versions = run_sql(services, "SELECT kek_version FROM vault_data_key")
        assert sorted(v[0] for v in versions) == [2, 2, 2]


class TestErasure:
    def test_copy_taken_before_erasure_cannot_be_decrypted(
        self, client: TestClient, services: Services, csrf: str, tmp_path: Path
    ) -> None:
        entry = new_entry(client, csrf, "to be erased", "gone forever")
        # The "backup": every row an attacker would need, taken before erasure.
        (vault_id,) = run_sql(services, "SELECT id FROM vault")[0]
        key_row = run_sql(services, "SELECT id, kek_version, wrapped_key FROM vault_data_key")[0]
        entry_row = run_sql(services, "SELECT id, body_sealed, version FROM story_entry")[0]
        if services.settings.is_sqlite:
            backup = tmp_path / "backup.db"
            source = sqlite3.connect(
                services.settings.resolved_database_url.removeprefix("sqlite:///")
            )
            with sqlite3.connect(backup) as target:
                source.backup(target)
            source.close()
        # Sanity: with the key material as it is now, the backup rows DO decrypt.
        assert (
            _decrypt_with_remaining_keys(services, vault_id, key_row, entry_row) == b"gone forever"
        )

        assert client.delete("/api/v1/me", headers={"X-CSRF-Token": csrf}).status_code == 204

        with pytest.raises(IntegrityFailure):
            _decrypt_with_remaining_keys(services, vault_id, key_row, entry_row)
        if services.settings.is_sqlite:
            with sqlite3.connect(backup) as conn:  # the old file really does hold the wrap
                assert conn.execute("SELECT count(*) FROM vault_data_key").fetchone()[0] == 1
        assert uuid.UUID(str(entry)) is not None


def _decrypt_with_remaining_keys(
    services: Services, vault_id: Any, key_row: Any, entry_row: Any
) -> bytes:
    """Try what an attacker with a backup and today's key files could do."""
    provider = LocalKeyFileProvider(services.settings.resolved_key_file).load_or_create()
    vid = vault_id if isinstance(vault_id, uuid.UUID) else uuid.UUID(hex=vault_id)
    kid = key_row[0] if isinstance(key_row[0], uuid.UUID) else uuid.UUID(hex=key_row[0])
    eid = entry_row[0] if isinstance(entry_row[0], uuid.UUID) else uuid.UUID(hex=entry_row[0])
    material = provider.unwrap_data_key(vid, kid, WrappedKey(key_row[1], bytes(key_row[2])))
    from vault.crypto import DataKey, open_sealed

    return open_sealed(
        DataKey(kid, 1, material),
        FieldContext(vid, "story_entry", eid, "body", entry_row[2]),
        bytes(entry_row[1]),
    )


class FlakyProvider:
    """The real provider, with a switch that makes it unreachable (like a KMS outage)."""

    def __init__(self, real: LocalKeyFileProvider) -> None:
        self.real = real
        self.down = False
        self.signing_down = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.real, name)
        if name in {"wrap_data_key", "unwrap_data_key", "create_vault_secret"}:

            def guarded(*args: Any) -> Any:
                if self.down:
                    raise KeyUnavailable()
                return attr(*args)

            return guarded
        if name == "sign":

            def sign(message: bytes) -> bytes:
                if self.signing_down:
                    raise RuntimeError("signer crashed")
                return bytes(attr(message))

            return sign
        return attr


@pytest.fixture
def flaky(settings: Settings) -> Any:
    provider = FlakyProvider(LocalKeyFileProvider(settings.resolved_key_file).load_or_create())
    built = build_services(settings, keys=provider)  # type: ignore[arg-type]
    with TestClient(create_app(settings, built), base_url="https://testserver") as test_client:
        yield provider, built, test_client
    from tests.conftest import _empty_all_tables

    _empty_all_tables(built)
    built.engine.dispose()


class TestFailures:
    def test_key_provider_down_gives_503_and_writes_nothing(self, flaky: Any) -> None:
        provider, built, client = flaky
        csrf = sign_up(client, "alex")
        built.keyring._cache.clear()
        provider.down = True
        response = client.post(
            "/api/v1/me/entries", json={"title": "t", "body": "b"}, headers={"X-CSRF-Token": csrf}
        )
        assert response.status_code == 503 and response.json()["error"] == "key_unavailable"
        signup = client.post("/api/v1/accounts", json={"username": "sam", "password": "x" * 10})
        assert signup.status_code == 503
        provider.down = False
        assert client.get("/api/v1/me/entries").json() == []
        assert run_sql(built, "SELECT count(*) FROM young_person")[0][0] == 1
        assert run_sql(built, "SELECT count(*) FROM audit_event")[0][0] == 1  # vault:created only

    def test_failed_audit_write_fails_the_action(
        self, flaky: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        provider, built, client = flaky
        csrf = sign_up(client, "alex")
        provider.signing_down = True
        response = client.post(
            "/api/v1/me/entries",
            json={"title": "Secret-ish title", "body": "b"},
            headers={"X-CSRF-Token": csrf},
        )
        assert response.status_code == 500
        assert "Secret-ish" not in response.text and "Secret-ish" not in caplog.text
        assert "Traceback" not in caplog.text
        provider.signing_down = False
        assert client.get("/api/v1/me/entries").json() == []
        assert run_sql(built, "SELECT count(*) FROM story_entry")[0][0] == 0

    def test_failed_audit_write_fails_an_agency_read_and_write(
        self, flaky: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The agencies' routes are group-committed (app/group_commit.py): a read or write
        whose audit append fails must fail, show nothing and leave nothing behind."""
        from tests.grants.kit import agency_client
        from tests.grants.test_flow import bearer, granted, records_url

        provider, built, client = flaky
        csrf = sign_up(client, "alex")
        record_id = add_record(built, "alex", title="Secret-ish report")
        school = agency_client(client, built)
        tokens = granted(client, school, {"csrf": csrf}, actions=["read", "write"])
        events = run_sql(built, "SELECT count(*) FROM audit_event")[0][0]
        provider.signing_down = True
        read = client.get(f"{records_url(tokens)}/{record_id}", headers=bearer(tokens))
        assert read.status_code == 500 and "Secret-ish" not in read.text
        wrote = client.post(
            records_url(tokens),
            json={"category": "education", "title": "Secret-ish new", "body": "b"},
            headers=bearer(tokens),
        )
        assert wrote.status_code == 500 and "Secret-ish" not in wrote.text
        assert "Secret-ish" not in caplog.text and "Traceback" not in caplog.text
        provider.signing_down = False
        assert run_sql(built, "SELECT count(*) FROM audit_event")[0][0] == events
        assert run_sql(built, "SELECT count(*) FROM agency_record")[0][0] == 1
        again = client.get(f"{records_url(tokens)}/{record_id}", headers=bearer(tokens))
        assert again.status_code == 200 and again.json()["title"] == "Secret-ish report"
        assert run_sql(built, "SELECT count(*) FROM audit_event")[0][0] == events + 1


def test_sqlite_runs_wal_full_with_foreign_keys(services: Services) -> None:
    if not services.settings.is_sqlite:
        with services.engine.connect() as conn:
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"
        return
    with services.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
