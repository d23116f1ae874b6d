"""The group committer (app/group_commit.py): many requests, one transaction and one
durable commit, and still each request's own outcome.

These drive the committer directly, because what they attack (a failing job among good
ones, a commit that fails) cannot be arranged through HTTP; the HTTP behaviour of the
routes that use it is covered in tests/grants/test_flow.py and test_live_oauth.py.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlmodel import Session

from app.container import Services
from app.db import unit_of_work
from app.group_commit import LOCK_WAIT_MS, BatchNotCommitted, GroupCommitter
from tests.conftest import PG_URL, run_sql
from vault import audit
from vault.actors import Actor
from vault.errors import NotFound


class KeptFailure(Exception):
    keeps_changes = True


def _remember(session: Session, marker: str) -> str:
    """A write the tests can look for afterwards: a sign-in throttle row."""
    session.execute(
        text(
            "INSERT INTO sign_in_throttle (key, window_started_at, failures) "
            "VALUES (:key, CURRENT_TIMESTAMP, 1)"
        ),
        {"key": marker},
    )
    return marker


def _written(services: Services, prefix: str) -> set[str]:
    rows = run_sql(services, "SELECT key FROM sign_in_throttle WHERE key LIKE :p", p=f"{prefix}%")
    return {row[0] for row in rows}


def _writes_then_raises(marker: str, error: Exception) -> Any:
    def job(session: Session) -> None:
        _remember(session, marker)
        raise error

    return job


async def _gather(committer: GroupCommitter, jobs: list[Any]) -> list[Any]:
    return await asyncio.gather(*(committer.run(job) for job in jobs), return_exceptions=True)


def test_jobs_submitted_together_share_batches_and_each_gets_its_own_result(
    services: Services,
) -> None:
    committer = GroupCommitter(services.engine, lanes=1)
    prefix = uuid.uuid4().hex[:8]
    release = threading.Event()

    def slow_first(session: Session) -> str:
        release.wait(5)  # hold the writer so the others queue up behind it
        return _remember(session, f"{prefix}-first")

    def job(n: int) -> Any:
        return lambda session: _remember(session, f"{prefix}-{n}")

    async def scenario() -> list[Any]:
        first = asyncio.ensure_future(committer.run(slow_first))
        await asyncio.sleep(0.05)
        rest = asyncio.ensure_future(_gather(committer, [job(n) for n in range(20)]))
        await asyncio.sleep(0.05)
        release.set()
        return [await first, *(await rest)]

    results = asyncio.run(scenario())
    committer.stop()
    assert results == [f"{prefix}-first", *(f"{prefix}-{n}" for n in range(20))]
    assert _written(services, prefix) == set(results)
    # 21 jobs, but the 20 that waited went in together: far fewer commits than jobs.
    assert committer.jobs == 21
    assert committer.batches <= 3


def test_a_failing_job_rolls_back_only_its_own_work(services: Services) -> None:
    committer = GroupCommitter(services.engine)
    prefix = uuid.uuid4().hex[:8]

    fails_after_writing = _writes_then_raises(f"{prefix}-lost", NotFound("no such record"))
    keeps = _writes_then_raises(f"{prefix}-kept", KeptFailure())

    jobs = [
        lambda s: _remember(s, f"{prefix}-a"),
        fails_after_writing,
        keeps,
        lambda s: _remember(s, f"{prefix}-b"),
    ]
    results = asyncio.run(_gather(committer, jobs))
    committer.stop()
    assert results[0] == f"{prefix}-a" and results[3] == f"{prefix}-b"
    assert isinstance(results[1], NotFound)
    assert isinstance(results[2], KeptFailure)
    # The failed job's write is gone; the one whose error keeps changes stayed.
    assert _written(services, prefix) == {f"{prefix}-a", f"{prefix}-b", f"{prefix}-kept"}


def test_when_the_commit_fails_nobody_is_told_their_work_landed(services: Services) -> None:
    committer = GroupCommitter(services.engine)
    prefix = uuid.uuid4().hex[:8]

    def refuse(*_args: Any) -> None:
        raise OSError("disk full")

    event.listen(services.engine, "commit", refuse)
    try:
        results = asyncio.run(
            _gather(committer, [lambda s, n=n: _remember(s, f"{prefix}-{n}") for n in range(5)])
        )
    finally:
        event.remove(services.engine, "commit", refuse)
    assert all(isinstance(r, BatchNotCommitted) for r in results), results
    assert _written(services, prefix) == set()
    # The writer recovers: the next batch commits normally.
    assert asyncio.run(committer.run(lambda s: _remember(s, f"{prefix}-after"))) == (
        f"{prefix}-after"
    )
    committer.stop()
    assert _written(services, prefix) == {f"{prefix}-after"}


def test_when_the_database_cannot_be_reached_each_request_hears_so_and_the_writer_recovers(
    services: Services,
) -> None:
    committer = GroupCommitter(services.engine, lanes=1)
    lane = committer._lanes[0]
    prefix = uuid.uuid4().hex[:8]

    class Unreachable:
        """The engine, but its first connect fails as a database that is down would."""

        def __init__(self) -> None:
            self.failed = False

        def connect(self) -> Any:
            if not self.failed:
                self.failed = True
                raise OSError("connection refused")
            return services.engine.connect()

    lane.engine = Unreachable()  # type: ignore[assignment]

    async def bounded(jobs: list[Any]) -> list[Any]:
        # Before, the writer thread died here and these waited for ever.
        return await asyncio.wait_for(_gather(committer, jobs), timeout=10)

    [result] = asyncio.run(bounded([lambda s: _remember(s, f"{prefix}-lost")]))
    assert isinstance(result, BatchNotCommitted)
    assert asyncio.run(bounded([lambda s: _remember(s, f"{prefix}-after")])) == [f"{prefix}-after"]
    committer.stop()
    assert _written(services, prefix) == {f"{prefix}-after"}


def test_the_writer_ends_when_idle_and_starts_again_on_demand(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.group_commit.IDLE_SECONDS", 0.05)
    committer = GroupCommitter(services.engine)
    assert asyncio.run(committer.run(lambda _s: 1)) == 1
    for _ in range(100):
        if committer._lanes[0]._thread is None:
            break
        threading.Event().wait(0.02)
    assert committer._lanes[0]._thread is None  # no thread, no connection held while idle
    assert asyncio.run(committer.run(lambda _s: 2)) == 2
    committer.stop()


def test_lanes_run_side_by_side_and_a_key_always_picks_the_same_lane(
    services: Services, backend: str
) -> None:
    committer = GroupCommitter(services.engine, lanes=2)
    if backend == "sqlite":
        # SQLite has one writer: asking for more lanes still gives one, so nothing
        # queues for its lock behind another lane.
        assert len(committer._lanes) == 1
        return
    assert len(committer._lanes) == 2
    first_started, second_done = threading.Event(), threading.Event()
    keys = [f"handle-{n}" for n in range(50)]
    lane_of = {k: zlib.crc32(k.encode()) % 2 for k in keys}
    key_a = next(k for k in keys if lane_of[k] == 0)
    key_b = next(k for k in keys if lane_of[k] == 1)

    def waits_for_the_other_lane(_session: Session) -> str:
        first_started.set()
        # With one writer this would wait forever: the other job queues behind it.
        assert second_done.wait(10)
        return "a"

    def runs_meanwhile(_session: Session) -> str:
        assert first_started.wait(10)
        second_done.set()
        return "b"

    async def scenario() -> list[Any]:
        a = asyncio.ensure_future(committer.run(waits_for_the_other_lane, key=key_a))
        b = asyncio.ensure_future(committer.run(runs_meanwhile, key=key_b))
        return [await a, await b]

    assert asyncio.run(scenario()) == ["a", "b"]
    committer.stop()


def test_a_job_alone_in_its_batch_is_rolled_back_or_kept_as_its_error_says(
    services: Services,
) -> None:
    committer = GroupCommitter(services.engine, lanes=1)
    prefix = uuid.uuid4().hex[:8]

    fails_after_writing = _writes_then_raises(f"{prefix}-lost", NotFound("no such record"))
    keeps = _writes_then_raises(f"{prefix}-kept", KeptFailure())

    # One at a time, so each is alone in its batch (no savepoint is used then).
    for job, error in ((fails_after_writing, NotFound), (keeps, KeptFailure)):
        with pytest.raises(error):
            asyncio.run(committer.run(job))
    assert asyncio.run(committer.run(lambda s: _remember(s, f"{prefix}-next"))) == (
        f"{prefix}-next"
    )
    committer.stop()
    assert committer.batches == committer.jobs == 3
    assert _written(services, prefix) == {f"{prefix}-kept", f"{prefix}-next"}


async def _as_one_batch(committer: GroupCommitter, jobs: list[Any]) -> list[Any]:
    """Submit ``jobs`` so they run together in one batch: a first job holds the writer
    until all of them have queued behind it."""
    release = threading.Event()
    gate = asyncio.ensure_future(committer.run(lambda _s: release.wait(5)))
    await asyncio.sleep(0.05)
    rest = asyncio.ensure_future(_gather(committer, jobs))
    await asyncio.sleep(0.05)
    release.set()
    await gate
    return list(await rest)


def _in_one_batch(committer: GroupCommitter, jobs: list[Any]) -> list[Any]:
    """``_as_one_batch``, then stop the writer and check there were just the two batches."""
    results = asyncio.run(_as_one_batch(committer, jobs))
    committer.stop()
    assert committer.batches == 2 and committer.jobs == 1 + len(jobs)  # gate, then the rest
    return results


class TestBatchesWithoutSavepoints:
    """A batch first runs with no savepoints; only a job that fails after writing (or a
    failing statement) makes it roll back whole and run again, a savepoint a job."""

    def test_a_job_failing_before_it_writes_costs_no_second_run(self, services: Services) -> None:
        committer = GroupCommitter(services.engine, lanes=1)
        prefix = uuid.uuid4().hex[:8]

        def refuses(_session: Session) -> None:
            raise NotFound("no such record")

        results = _in_one_batch(
            committer,
            [lambda s: _remember(s, f"{prefix}-a"), refuses, lambda s: _remember(s, f"{prefix}-b")],
        )
        assert results[0] == f"{prefix}-a" and results[2] == f"{prefix}-b"
        assert isinstance(results[1], NotFound)
        assert committer._lanes[0].replays == 0
        assert _written(services, prefix) == {f"{prefix}-a", f"{prefix}-b"}

    def test_an_error_that_keeps_changes_keeps_them_with_no_second_run(
        self, services: Services
    ) -> None:
        committer = GroupCommitter(services.engine, lanes=1)
        prefix = uuid.uuid4().hex[:8]
        results = _in_one_batch(
            committer,
            [
                lambda s: _remember(s, f"{prefix}-a"),
                _writes_then_raises(f"{prefix}-kept", KeptFailure()),
                lambda s: _remember(s, f"{prefix}-b"),
            ],
        )
        assert isinstance(results[1], KeptFailure)
        assert committer._lanes[0].replays == 0
        assert _written(services, prefix) == {f"{prefix}-a", f"{prefix}-kept", f"{prefix}-b"}

    def test_a_job_failing_after_it_wrote_sends_the_batch_round_again(
        self, services: Services
    ) -> None:
        committer = GroupCommitter(services.engine, lanes=1)
        prefix = uuid.uuid4().hex[:8]
        runs: list[str] = []

        def counted(marker: str) -> Any:
            def job(session: Session) -> str:
                runs.append(marker)
                return _remember(session, marker)

            return job

        results = _in_one_batch(
            committer,
            [
                counted(f"{prefix}-a"),
                _writes_then_raises(f"{prefix}-lost", NotFound("no such record")),
                counted(f"{prefix}-b"),
            ],
        )
        assert results[0] == f"{prefix}-a" and results[2] == f"{prefix}-b"
        assert isinstance(results[1], NotFound)
        assert committer._lanes[0].replays == 1
        # The first run was rolled back whole: each good job's write landed once.
        assert runs == [f"{prefix}-a", f"{prefix}-a", f"{prefix}-b"]
        assert _written(services, prefix) == {f"{prefix}-a", f"{prefix}-b"}

    def test_a_failing_statement_sends_the_batch_round_again(self, services: Services) -> None:
        committer = GroupCommitter(services.engine, lanes=1)
        prefix = uuid.uuid4().hex[:8]
        run_sql(
            services,
            "INSERT INTO sign_in_throttle (key, window_started_at, failures) "
            "VALUES (:key, CURRENT_TIMESTAMP, 1)",
            key=f"{prefix}-taken",
        )
        # The middle job's insert hits a taken key: on PostgreSQL that aborts the
        # transaction, so only a second run, a savepoint a job, can keep the others.
        results = _in_one_batch(
            committer,
            [
                lambda s: _remember(s, f"{prefix}-a"),
                lambda s: _remember(s, f"{prefix}-taken"),
                lambda s: _remember(s, f"{prefix}-b"),
            ],
        )
        assert results[0] == f"{prefix}-a" and results[2] == f"{prefix}-b"
        assert "IntegrityError" in type(results[1]).__name__
        assert committer._lanes[0].replays == 1
        assert _written(services, prefix) == {f"{prefix}-taken", f"{prefix}-a", f"{prefix}-b"}


def _sqlstates(exc: BaseException | None) -> list[str]:
    """The SQLSTATEs of ``exc`` and what it was raised from (SQLAlchemy keeps the
    driver's error as ``orig``)."""
    found = []
    while exc is not None:
        driver_error = getattr(exc, "orig", None)
        state = getattr(exc, "sqlstate", None) or getattr(driver_error, "sqlstate", None)
        if state:
            found.append(str(state))
        exc = exc.__cause__ or exc.__context__
    return found


@pytest.mark.skipif(PG_URL is None, reason="row locks between writers: PostgreSQL only")
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
class TestRowLocksBetweenBatches:
    """Two writers (two lanes, or two app processes behind a load balancer, DESIGN.md
    "Scale and deployment") whose batches lock the same rows in opposite orders. Before,
    each waited on the other until PostgreSQL's deadlock check (1 s) failed one; now a
    job in a batch gives up waiting almost at once and runs again alone, after its batch
    has committed."""

    def _cross(
        self, services: Services, x: str, y: str, lock: Callable[[Session, str], None]
    ) -> tuple[list[list[Any]], list[str]]:
        """Writer A's batch runs ``lock(x)`` then ``lock(y)``, writer B's ``lock(y)`` then
        ``lock(x)``; each first job waits until both hold their first row. The results
        of both batches, and the SQLSTATEs of every failed ``lock``."""
        first_a, first_b = (
            GroupCommitter(services.engine, lanes=1),
            GroupCommitter(services.engine, lanes=1),
        )
        a_holds_x, b_holds_y = threading.Event(), threading.Event()
        seen: list[str] = []

        def locks(key: str, mine: threading.Event | None = None,
                  theirs: threading.Event | None = None) -> Any:  # fmt: skip
            def job(session: Session) -> str:
                try:
                    lock(session, key)
                except Exception as exc:
                    seen.extend(_sqlstates(exc))
                    raise
                if mine is not None and theirs is not None:
                    mine.set()
                    assert theirs.wait(10)  # both now hold a row the other's next job wants
                return key

            return job

        async def scenario() -> list[list[Any]]:
            return list(
                await asyncio.gather(
                    _as_one_batch(first_a, [locks(x, a_holds_x, b_holds_y), locks(y)]),
                    _as_one_batch(first_b, [locks(y, b_holds_y, a_holds_x), locks(x)]),
                )
            )

        results = asyncio.run(scenario())
        first_a.stop()
        first_b.stop()
        return results, seen

    def test_opposite_lock_orders_finish_without_a_deadlock_and_lose_nothing(
        self, services: Services
    ) -> None:
        prefix = uuid.uuid4().hex[:8]
        x, y = f"{prefix}-x", f"{prefix}-y"
        for key in (x, y):
            run_sql(
                services,
                "INSERT INTO sign_in_throttle (key, window_started_at, failures) "
                "VALUES (:key, CURRENT_TIMESTAMP, 0)",
                key=key,
            )

        def bump(session: Session, key: str) -> None:
            session.execute(
                text("UPDATE sign_in_throttle SET failures = failures + 1 WHERE key = :k"),
                {"k": key},
            )

        results, seen = self._cross(services, x, y, bump)
        assert results == [[x, y], [y, x]]
        assert "40P01" not in seen  # nobody waited for the deadlock check
        assert "55P03" in seen  # a job gave up waiting for a lock, then ran again
        counts = run_sql(
            services, "SELECT key, failures FROM sign_in_throttle WHERE key LIKE :p", p=f"{prefix}%"
        )
        assert dict(counts) == {x: 2, y: 2}  # every job's write landed once

    def test_audit_chains_appended_in_opposite_orders_stay_whole(self, services: Services) -> None:
        """The hot path's own conflict: reads of two vaults appending to their audit
        chains. Rolled-back and re-run appends leave each chain gapless, each entry once,
        and verifiable (SECURITY.md, "Audit")."""
        prefix = uuid.uuid4().hex[:8]
        x, y = f"{prefix}-x", f"{prefix}-y"

        def append(session: Session, chain: str, label: str = "read") -> None:
            audit.append(session, services.keys, chain, Actor.operator(), "test:read",
                         object_id=label)  # fmt: skip

        for chain in (x, y):  # each chain has a head row to lock
            for session in unit_of_work(services.engine):
                append(session, chain, "first")
        results, seen = self._cross(services, x, y, append)
        assert results == [[x, y], [y, x]]
        assert "40P01" not in seen
        for chain in (x, y):
            rows = run_sql(services, "SELECT seq FROM audit_event WHERE chain = :c", c=chain)
            assert sorted(row[0] for row in rows) == [1, 2, 3]
        for session in unit_of_work(services.engine):
            reports = {r.chain: r.problem for r in audit.verify_all(session, services.keys)}
        assert reports[x] is None and reports[y] is None

    def test_a_writer_gives_its_connection_back_waiting_as_long_as_any_other(
        self, services: Services
    ) -> None:
        committer = GroupCommitter(services.engine, lanes=1)
        shown = asyncio.run(committer.run(lambda s: s.execute(text("SHOW lock_timeout")).scalar()))
        assert shown == f"{LOCK_WAIT_MS}ms"  # a writer gives up waiting soon
        committer.stop()
        # Every pooled connection, the writer's included, is back to the server's default.
        pooled = services.engine.pool.checkedin()
        connections = [services.engine.connect() for _ in range(max(pooled, 1))]
        try:
            timeouts = {c.execute(text("SHOW lock_timeout")).scalar() for c in connections}
        finally:
            for connection in connections:
                connection.close()
        assert timeouts == {"0"}
