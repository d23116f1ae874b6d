"""Running and checking Alembic migrations from code (the CLI and the tests use this)."""

from __future__ import annotations

from collections.abc import Callable

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlmodel import SQLModel

import app.auth.models
import vault.models
from app.db import make_engine
from app.main import PROJECT_ROOT
from vault.keys import KeyProvider

_MODELS = (app.auth.models, vault.models)  # imported so every table is on the metadata


def alembic_config(database_url: str, open_keys: Callable[[], KeyProvider] | None = None) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    if open_keys is not None:
        config.attributes["open_keys"] = open_keys
    return config


def upgrade(
    database_url: str, revision: str = "head", open_keys: Callable[[], KeyProvider] | None = None
) -> list[str]:
    """Migrate, then scrub. A migration that must seal (or open) existing content calls
    ``open_keys``, and only when there is some: a new database needs no keys (see 0007).
    Returns what the operator should know (nothing, normally)."""
    config = alembic_config(database_url, open_keys)
    command.upgrade(config, revision)
    return scrub(database_url, config.attributes.get("scrub", set()))


def scrub(database_url: str, tables: set[str]) -> list[str]:
    """Leave no old copy of what a migration took out of ``tables`` (SECURITY.md: no
    plaintext content in the database file).

    SQLite zeroes freed pages (``secure_delete``, app/db.py) but keeps old page images in
    its write-ahead log until they are written over: a TRUNCATE checkpoint empties it
    (https://sqlite.org/pragma.html#pragma_wal_checkpoint), after every upgrade, as it
    costs nothing. PostgreSQL keeps old row versions, and a dropped column's values, in
    the table's files: ``VACUUM FULL`` rewrites the tables a migration names. Copies
    outside the database (backups, PostgreSQL's WAL archive, the disk) are beyond it.
    """
    engine = make_engine(database_url)
    try:
        if engine.dialect.name == "sqlite":
            raw = engine.raw_connection()  # no transaction: a checkpoint cannot run in one
            try:
                busy = raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            finally:
                raw.close()
            if busy:
                return [
                    "The database's write-ahead log could not be emptied while something "
                    "else was using it: stop the service and run `storykeep db upgrade` again."
                ]
            return []
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in sorted(tables):
                conn.execute(text(f'VACUUM FULL "{table}"'))
        return []
    finally:
        engine.dispose()


def downgrade(
    database_url: str, revision: str, open_keys: Callable[[], KeyProvider] | None = None
) -> None:
    command.downgrade(alembic_config(database_url, open_keys), revision)


def differences(engine: Engine) -> list[object]:
    """What autogenerate would change: empty when models and migrations agree."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))
