"""Engines and the per-request database session.

SQLite (the embedded default) runs in WAL mode with ``synchronous=FULL`` and foreign keys
on, and every transaction starts with ``BEGIN IMMEDIATE`` so two writers queue for the
lock instead of failing half-way (SECURITY.md, "Durability"). PostgreSQL goes through
psycopg 3 with ``synchronous_commit=on``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session

# SQLite's own default is 1,000 pages (4 MB); see WalCheckpointer.
AUTOCHECKPOINT_PAGES = 16_384
# The execution option that marks a read_snapshot's connection.
_SNAPSHOT = "storykeep_read_snapshot"


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            _create_private_file(Path(database))
        engine = create_engine(
            url, connect_args={"check_same_thread": False}, hide_parameters=True, **kwargs
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        hide_parameters=True,  # SQL errors must never quote values into logs
        connect_args={"options": "-c synchronous_commit=on"},
        **kwargs,
    )


def _create_private_file(path: Path) -> None:
    """The database holds metadata about children: owner-only, like the key file.
    SQLite gives its -wal and -shm files the same mode as the database file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so we can BEGIN IMMEDIATE.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA secure_delete=ON")  # erased content is overwritten, not left
        # 32 MB of page cache per connection instead of SQLite's 2 MB: a pilot's whole
        # working set (tokens, grants, audit heads, recent records) stays in memory.
        cursor.execute("PRAGMA cache_size=-32768")
        # Checkpoints normally run inside whichever commit fills the WAL, and stall it
        # (and every request waiting on it) while the database file is written and
        # flushed. WalCheckpointer does them in the background instead; this higher
        # threshold is only the safety net if it cannot keep up.
        cursor.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # SQLAlchemy's recipe for pysqlite (take the write lock at BEGIN, so a reader
        # never has to upgrade and deadlock), run on the driver itself: every hot batch
        # begins here, and the full execution path costs more than the statement. A
        # read_snapshot never writes, so it takes no lock (and blocks no writer).
        dbapi = conn.connection.dbapi_connection
        dbapi.execute("BEGIN" if conn.get_execution_options().get(_SNAPSHOT) else "BEGIN IMMEDIATE")


class WalCheckpointer:
    """Copies SQLite's WAL back into the database file every ``interval`` seconds, on its
    own thread and connection, with ``PRAGMA wal_checkpoint(PASSIVE)``: it never waits
    for, or blocks, a writer or a reader (https://sqlite.org/wal.html#ckpt). Durability
    does not depend on it: with ``synchronous=FULL`` every commit is already on disk in
    the WAL. Nothing to do for PostgreSQL, which checkpoints itself."""

    # Often, so each checkpoint has little to copy and flush: a commit's own flush of the
    # WAL can wait behind a checkpoint's flush of the database file on the same disk.
    def __init__(self, engine: Engine, interval: float = 0.25) -> None:
        self.engine = engine
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.engine.dialect.name != "sqlite" or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="storykeep-wal", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        database = self.engine.url.database
        if not database or database == ":memory:":
            return
        connection = sqlite3.connect(database, timeout=1, isolation_level=None)
        try:
            while not self._stop.wait(self.interval):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:  # busy or locked: the next round will do it
                    continue
        finally:
            connection.close()


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """``unit_of_work`` as a ``with`` block, for work outside a request's own session."""
    yield from unit_of_work(engine)


@contextmanager
def read_snapshot(engine: Engine) -> Iterator[Session]:
    """A read-only session that sees the database as it was at its first read, however
    long it runs, and holds up no writer. For a check whose reads must agree with each
    other while the app goes on writing, like ``storykeep audit verify`` reading a
    chain's entries and then its head: in one statement each, under READ COMMITTED, an
    append committed between the two looks like a broken chain.

    PostgreSQL: ``REPEATABLE READ`` and ``READ ONLY``, a snapshot taken at the first
    statement (https://www.postgresql.org/docs/current/transaction-iso.html). SQLite: a
    deferred ``BEGIN``, since in WAL mode a reader keeps the snapshot of its first read
    until it ends and never blocks a writer (https://sqlite.org/isolation.html), where
    the ``BEGIN IMMEDIATE`` of every other transaction here would stop all writes for as
    long as the check runs. Nothing is committed: the session only reads."""
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection.execution_options(**{_SNAPSHOT: True})
        else:
            connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        with Session(bind=connection) as session:
            try:
                yield session
            finally:
                session.rollback()


def unit_of_work(engine: Engine) -> Iterator[Session]:
    """One transaction: commit if the body succeeds, roll back if it raises.

    Errors that set ``keeps_changes`` commit what was written before they propagate: a
    failed sign-in still counts towards the throttle, and a CIBA poll answered
    ``authorization_pending`` still records when it was polled.
    """
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
        except BaseException as exc:
            if getattr(exc, "keeps_changes", False):
                session.commit()
            else:
                session.rollback()
            raise
        session.commit()
