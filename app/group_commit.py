"""Group commit for the agency-facing hot path: a writer thread (one per lane), one
transaction and one durable flush for the work of every request that arrived while the
last batch ran.

Why: every authorized read writes an audit row, and SECURITY.md wants that row durable
before the response (SQLite ``synchronous=FULL``, PostgreSQL ``synchronous_commit=on``).
One commit per request means one disk flush per request, and on SQLite every request
also queues for the write lock. Here the writer takes all the jobs waiting, runs them in
one transaction, commits once, and only then answers each request. The batch first runs
with no savepoints (two statements fewer a job); if a job fails after writing, or any
statement fails, it is rolled back whole and runs again with each job in its own
SAVEPOINT (a job alone needs none). So:

* each response is still sent only after its own audit row is durable (nothing is
  acknowledged that a crash could lose);
* the read, the policy check and the audit append of one request still run in one
  transaction, so "if the audit write fails, the read fails" holds;
* one request's error (a revoked token, a record outside the grant) undoes only its own
  work (it wrote nothing, or the batch runs again in savepoints), unless the error says
  its changes must stay (``keeps_changes``, e.g. a used client-assertion ``jti``);
* if the commit itself fails, every request of that batch gets the error: none of them
  is told its work landed;
* on PostgreSQL a job in a batch waits only briefly for a row another transaction has
  locked (``LOCK_WAIT_MS``). A batch holds the locks of the jobs before it, so two
  batches (two lanes, or two app processes) that want each other's rows would otherwise
  wait for PostgreSQL's deadlock check (``deadlock_timeout``, 1 s) to fail one of them.
  A job that gives up, or is chosen as a deadlock victim anyway, runs again as soon as
  its batch has committed, alone and waiting as long as it must: it then holds nobody
  else's locks, so its waiting cannot close a circle.

This is the technique databases use for their own logs (PostgreSQL's ``commit_delay``,
"group commit" in Gray and Reuter, *Transaction Processing*, 9.4.7). It does not wait to
fill a batch: a job that arrives at an idle writer runs at once.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from vault.driver_sql import SHARED_CURSOR, WRITE_COUNT, WriteCount

T = TypeVar("T")
Job = Callable[[Session], Any]
log = logging.getLogger("storykeep.group_commit")

# A bound on one transaction's size, so one batch cannot hold the lock for long.
MAX_BATCH = 64
# How long an idle writer keeps its connection, and then its thread.
IDLE_SECONDS = 1.0
# PostgreSQL: how long a job in a batch waits for another transaction's row lock before
# it gives up (lock_not_available) and runs again alone. Longer than a batch usually
# holds its locks, far shorter than the deadlock check.
LOCK_WAIT_MS = 50
# How often one job may run again alone after losing a lock conflict.
MAX_RERUNS = 3


@dataclass
class _Pending:
    job: Job
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    outcome: tuple[bool, Any] = field(default=(False, None))
    reruns: int = 0


class WriterStopped(RuntimeError):
    """The writer is not running (the server is shutting down)."""


class BatchNotCommitted(RuntimeError):
    """The batch's transaction did not commit, so this request's work did not land."""


class GroupCommitter:
    """Runs hot-path jobs on writer lanes, a batch per transaction.

    ``await committer.run(job, key)`` runs ``job(session)`` with a Session bound to the
    batch's connection, inside a savepoint, and returns its result once the batch has
    committed. SQLite has one lane (it has one writer anyway). PostgreSQL has several, so
    one lane's round trips to the server overlap another's; jobs with the same ``key``
    (the agency's handle for a young person) always share a lane, so one vault's audit
    appends queue in one place instead of waiting on each other's row locks.
    """

    def __init__(self, engine: Engine, lanes: int = 3) -> None:
        if engine.dialect.name == "sqlite":
            lanes = 1  # one writer at a time: more lanes would only queue for the lock
        self._lanes = [_Lane(engine) for _ in range(lanes)]
        self._next = 0

    @property
    def batches(self) -> int:
        return sum(lane.batches for lane in self._lanes)

    @property
    def jobs(self) -> int:
        return sum(lane.jobs for lane in self._lanes)

    def stop(self) -> None:
        """Finish the jobs already queued, then stop every lane (server shutdown)."""
        for lane in self._lanes:
            lane.stop()

    async def run(self, job: Callable[[Session], T], key: str | None = None) -> T:
        """Run ``job`` in its lane's next batch; its result once that batch has committed."""
        if key is not None:
            lane = self._lanes[zlib.crc32(key.encode()) % len(self._lanes)]
        else:
            self._next = (self._next + 1) % len(self._lanes)
            lane = self._lanes[self._next]
        return await lane.run(job)


class _Lane:
    """One writer thread with its own queue and connection."""

    def __init__(self, engine: Engine, max_batch: int = MAX_BATCH) -> None:
        self.engine = engine
        self.max_batch = max_batch
        # SimpleQueue: a C queue, cheaper to put to on every request than queue.Queue.
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = False
        # How many batches, how many jobs in them, how many batches ran twice, and how
        # many jobs ran again alone after a lock conflict (tests and diagnostics).
        self.batches = 0
        self.jobs = 0
        self.replays = 0
        self.reruns = 0
        self._writes = WriteCount()  # the running batch's

    # -- lifecycle -----------------------------------------------------------------------
    def stop(self) -> None:
        """Finish the jobs already queued, then stop the writer (server shutdown)."""
        with self._lock:
            self._stopping = True
            thread = self._thread
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            thread.join()
        with self._lock:
            self._stopping = False

    # -- submitting ----------------------------------------------------------------------
    async def run(self, job: Callable[[Session], T]) -> T:
        """Run ``job`` in the next batch; its result once the batch has committed."""
        loop = asyncio.get_running_loop()
        pending = _Pending(job=job, loop=loop, future=loop.create_future())
        with self._lock:
            if self._stopping:
                raise WriterStopped("the database writer is stopping")
            self._queue.put(pending)
            if self._thread is None:  # started on demand; it ends itself when idle
                self._thread = threading.Thread(
                    target=self._serve, name="storykeep-group-commit", daemon=True
                )
                self._thread.start()
        result: T = await pending.future
        return result

    # -- the writer thread -----------------------------------------------------------------
    def _next_batch(self, holding_connection: bool) -> list[_Pending] | None:
        """Wait for work. ``[]``: idle, give the connection back (tests build many apps,
        and an idle process should hold none). None: end the thread (stopped, or idle
        with no connection); ``run()`` starts a new one when work comes."""
        try:
            first = self._queue.get(timeout=IDLE_SECONDS)
        except queue.Empty:
            if holding_connection:
                return []
            with self._lock:  # run() puts under this lock, so nothing is stranded
                if self._queue.empty():
                    self._thread = None
                    return None
            first = self._queue.get_nowait()
        if first is None:  # stop()
            with self._lock:
                self._thread = None
            return None
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is None:  # stop after this batch
                self._queue.put(None)
                break
            batch.append(more)
        return batch

    def _serve(self) -> None:
        connection: Connection | None = None
        try:
            while (batch := self._next_batch(connection is not None)) is not None:
                if not batch:
                    if connection is not None:
                        self._release(connection)
                    connection = None
                    continue
                connection = self._commit(connection, batch)
                # Jobs that lost a lock conflict (gave up waiting, or a deadlock victim):
                # their savepoints were rolled back. Now that the batch has committed, each
                # runs again alone, allowed to wait (module docstring).
                again = self._settle_all_but_reruns(batch)
                while again:
                    alone = [again.pop(0)]
                    connection = self._commit(connection, alone, wait_for_locks=True)
                    again += self._settle_all_but_reruns(alone)
        finally:
            if connection is not None:
                self._release(connection)

    def _connect(self) -> Connection:
        connection = self.engine.connect()
        if connection.dialect.name == "postgresql":
            try:  # for this connection's life as a writer; _release puts it back
                connection.exec_driver_sql(f"SET lock_timeout = '{LOCK_WAIT_MS}ms'")
                connection.commit()
            except BaseException:
                connection.invalidate()
                connection.close()
                raise
        # Statements through SQLAlchemy (ORM and Core) count as writes unless they only
        # read; driver statements count themselves (vault/driver_sql).
        event.listen(connection, "before_cursor_execute", self._count_write)
        return connection

    def _release(self, connection: Connection) -> None:
        """Back to the pool as the pool gave it: other users wait for locks as usual."""
        if connection.dialect.name == "postgresql":
            try:
                connection.exec_driver_sql("RESET lock_timeout")
                connection.commit()
            except Exception:  # noqa: BLE001 - a writer must outlive a broken connection
                connection.invalidate()  # never lend out a connection in an unknown state
        connection.close()

    def _commit(
        self, connection: Connection | None, batch: list[_Pending], wait_for_locks: bool = False
    ) -> Connection | None:
        """Run and commit ``batch`` (connecting first if need be), setting each job's
        outcome; the connection to go on with, or None if there is none (it failed and
        was dropped, or connecting failed)."""
        try:
            if connection is None:
                connection = self._connect()
            if wait_for_locks:
                self._run_in_savepoints(connection, batch, wait_for_locks=True)
            else:
                self._run_batch(connection, batch)
        except Exception as exc:  # noqa: BLE001 - every waiter must hear of it
            # The transaction did not commit: nobody in this batch is told success.
            log.error("group commit failed: %s", type(exc).__name__)  # noqa: TRY400
            for pending in batch:
                failure = BatchNotCommitted("the database did not commit this work")
                failure.__cause__ = exc
                pending.outcome = (False, failure)
            if connection is not None:
                connection.invalidate()
                connection.close()
            return None
        return connection

    def _settle_all_but_reruns(self, batch: list[_Pending]) -> list[_Pending]:
        """Hand every job of a committed (or failed) batch its outcome, except those that
        lost a lock conflict and may run again: those are returned."""
        again: list[_Pending] = []
        done: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
        for pending in batch:
            ok, value = pending.outcome
            if not ok and pending.reruns < MAX_RERUNS and _lost_lock_conflict(value):
                pending.reruns += 1
                self.reruns += 1
                again.append(pending)
                continue
            done.setdefault(pending.loop, []).append(pending)
        for loop, settled in done.items():
            # One wake-up of each event loop for the whole batch, not one a job.
            loop.call_soon_threadsafe(_settle, settled)
        return again

    def _count_write(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.lstrip()[:6].upper().startswith(_READS_ONLY):
            self._writes.n += 1

    def _run_batch(self, connection: Connection, batch: list[_Pending]) -> None:
        self.batches += 1
        self.jobs += len(batch)
        if len(batch) > 1:
            if self._run_without_savepoints(connection, batch):
                return
            self.replays += 1  # rolled back whole; every job runs again, each in a savepoint
        self._run_in_savepoints(connection, batch)

    def _batch_session(self, connection: Connection) -> tuple[Session, Any]:
        """One ORM session for the batch, bound to its connection; it never commits or
        closes the transaction itself ("rollback_only"). And a cursor to lend it."""
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        session = Session(bind=connection, join_transaction_mode="rollback_only")
        session.info[SHARED_CURSOR] = cursor  # driver statements reuse it
        self._writes = WriteCount()
        session.info[WRITE_COUNT] = self._writes
        return session, cursor

    def _run_without_savepoints(self, connection: Connection, batch: list[_Pending]) -> bool:
        """The batch with no savepoints at all: two statements fewer a job (a round trip
        fewer on PostgreSQL). Most jobs succeed, and most that fail do so before they
        write (an unknown token, a record outside the grant), so there is nothing to
        undo. If a job fails after writing (and its error does not keep its changes), or
        any statement fails, the transaction is rolled back whole, nothing of it is kept,
        and False says to run the batch again with a savepoint for each job."""
        transaction = connection.begin()  # SQLite: BEGIN IMMEDIATE (app/db.py)
        try:
            session, cursor = self._batch_session(connection)
            try:
                clean = all(self._run_unguarded(session, connection, p) for p in batch)
            finally:
                session.close()
                cursor.close()
            if clean:
                transaction.commit()  # the batch is durable from here
            else:
                transaction.rollback()
        except BaseException:
            if transaction.is_active:
                transaction.rollback()
            raise
        return clean

    def _run_unguarded(self, session: Session, connection: Connection, pending: _Pending) -> bool:
        """One job with no savepoint. False: it left something that only a rollback of
        the whole transaction can undo (``all`` then stops at it)."""
        before = self._writes.n
        try:
            pending.outcome = (True, pending.job(session))
            session.flush()
        except Exception as exc:  # noqa: BLE001 - handed to the job's waiter
            pending.outcome = (False, exc)
            if _is_database_error(exc, connection):
                return False  # on PostgreSQL the transaction is aborted now
            if getattr(exc, "keeps_changes", False):
                try:
                    session.flush()  # its writes stay, as they would in a savepoint
                except Exception:  # noqa: BLE001 - the savepoint run will report it
                    return False
            elif self._writes.n != before or _has_pending(session):
                return False  # it wrote, then failed: its writes must not stay
            session.expunge_all()
        if not connection.in_transaction():
            raise RuntimeError("the batch transaction was rolled back")
        return True

    def _run_in_savepoints(
        self, connection: Connection, batch: list[_Pending], wait_for_locks: bool = False
    ) -> None:
        # A job alone in its batch needs no savepoint: the transaction is its own.
        alone = len(batch) == 1
        transaction = connection.begin()  # SQLite: BEGIN IMMEDIATE (app/db.py)
        try:
            if wait_for_locks and connection.dialect.name == "postgresql":
                connection.exec_driver_sql("SET LOCAL lock_timeout = 0")  # as long as it takes
            session, cursor = self._batch_session(connection)
            # PostgreSQL: no RELEASE after each job, one round trip fewer. A savepoint
            # left open is harmless: ROLLBACK TO names the newest one, the next job's own.
            release = connection.dialect.name == "sqlite"
            try:
                for pending in batch:
                    pending.outcome = _run_job(session, cursor, pending.job, not alone, release)
                    if not connection.in_transaction():
                        # The session rolled the whole transaction back: nothing of this
                        # batch can be reported as done.
                        raise RuntimeError("the batch transaction was rolled back")
            finally:
                session.close()
                cursor.close()
            ok, value = batch[0].outcome
            if alone and not ok and not getattr(value, "keeps_changes", False):
                transaction.rollback()  # its only job failed: nothing of it may stay
            else:
                transaction.commit()  # the batch is durable from here
        except BaseException:
            if transaction.is_active:
                transaction.rollback()
            raise


def _run_job(
    session: Session, cursor: Any, job: Job, savepoint: bool, release: bool = True
) -> tuple[bool, Any]:
    """One job, in its own savepoint when it shares the batch (released after it when
    ``release``). Plain driver SQL for the savepoint itself: it runs once or twice a
    request, at a fraction of SQLAlchemy's cost."""
    if savepoint:
        cursor.execute("SAVEPOINT hot_job")
    try:
        result = job(session)
        session.flush()
    except Exception as exc:  # noqa: BLE001 - handed to the job's waiter
        if getattr(exc, "keeps_changes", False):
            session.flush()
        elif savepoint:
            cursor.execute("ROLLBACK TO SAVEPOINT hot_job")
        # Objects loaded or changed by this job may not match the database any more.
        session.expunge_all()
        if savepoint and release:
            cursor.execute("RELEASE SAVEPOINT hot_job")
        return (False, exc)
    if savepoint and release:
        cursor.execute("RELEASE SAVEPOINT hot_job")
    return (True, result)


# Statements that change nothing in the batch's own tables (the write count ignores them).
_READS_ONLY = ("SELECT", "SAVEPO", "RELEAS", "ROLLBA", "PRAGMA")


def _is_database_error(exc: BaseException, connection: Connection) -> bool:
    """Whether a statement failed (on PostgreSQL that aborts the whole transaction), as
    the error or anything it was raised from."""
    dbapi_error = connection.dialect.loaded_dbapi.Error
    return any(isinstance(seen, DBAPIError | dbapi_error) for seen in _raised_from(exc))


def _raised_from(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what it was raised from or while handling, and so on."""
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def _has_pending(session: Session) -> bool:
    """Unflushed ORM changes (a job that failed between making them and a flush)."""
    return bool(session.new or session.dirty or session.deleted)


# PostgreSQL's deadlock_detected, serialization_failure and lock_not_available (a wait
# longer than LOCK_WAIT_MS): the statement was refused so that another transaction could
# go on; trying again is the documented remedy.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001", "55P03"})


def _lost_lock_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was raised from, one of RETRYABLE_SQLSTATES (the driver's
    error itself, or SQLAlchemy's wrapping it as ``orig``)."""
    return any(
        (getattr(seen, "sqlstate", None) or getattr(getattr(seen, "orig", None), "sqlstate", None))
        in RETRYABLE_SQLSTATES
        for seen in _raised_from(exc)
    )


def _settle(batch: list[_Pending]) -> None:
    """On the waiters' event loop: hand each its result or its error."""
    for pending in batch:
        if pending.future.cancelled():  # the client went away
            continue
        ok, value = pending.outcome
        if ok:
            pending.future.set_result(value)
        else:
            pending.future.set_exception(value)
