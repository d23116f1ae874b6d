"""Prebuilt statements run straight on the database driver, for the hot path.

A resource call costs a handful of small, indexed statements. Through SQLAlchemy each
costs far more in Python (execution context, result set, row objects) than the driver
and the database together (docs/benchmarks.md). ``DriverStatement`` keeps the statement
written once in SQLAlchemy Core, compiles it once per dialect, and then runs it on the
session's own DB-API cursor, converting values with the column types' own processors
(the same code SQLAlchemy would run), so values read or written here are identical to
the ORM's. It runs in the session's transaction like any other statement.

Only for fixed statements: no ``expanding`` IN lists (compile one statement per shape).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlmodel import Session

Processor = Callable[[Any], Any] | None
# ``session.info`` key of a DB-API cursor on the session's connection, lent for reuse.
SHARED_CURSOR = "storykeep.driver_cursor"
# ``session.info`` key of a ``WriteCount``: every INSERT, UPDATE or DELETE run here adds one.
WRITE_COUNT = "storykeep.write_count"


class WriteCount:
    """How many writing statements a session ran (the group committer asks, app/group_commit.py)."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


@dataclass(frozen=True)
class _Compiled:
    sql: str
    positional: tuple[str, ...] | None  # parameter names in order, for qmark drivers
    binds: Mapping[str, Processor]
    results: tuple[Processor, ...]
    row: Any  # a namedtuple type, or None for statements that return nothing
    writes: bool  # an INSERT, UPDATE or DELETE


class DriverStatement:
    """A Core statement, compiled once per dialect, run on the driver's cursor."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def _compile(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is not None:
            return found
        compiled = cast(SQLCompiler, self.statement.compile(dialect=dialect))
        binds = {
            name: bind.type.dialect_impl(dialect).bind_processor(dialect)
            for name, bind in compiled.binds.items()
        }
        columns = list(getattr(self.statement, "selected_columns", ()))
        returning = getattr(compiled, "returning", None) or []
        columns = columns or list(returning)
        results = tuple(
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
        )
        row = namedtuple("Row", [c.key for c in columns], rename=True) if columns else None
        positional = tuple(compiled.positiontup or ()) if compiled.positional else None
        writes = bool(compiled.isinsert or compiled.isupdate or compiled.isdelete)
        found = _Compiled(compiled.string, positional, binds, results, row, writes)
        self._compiled[dialect.name] = found
        return found

    def _run(self, session: Session, params: Mapping[str, Any]) -> tuple[Any, _Compiled]:
        if session.autoflush:
            session.flush()  # as session.execute would: pending ORM changes first
        connection = session.connection()
        compiled = self._compile(connection.dialect)
        if compiled.writes and (count := session.info.get(WRITE_COUNT)) is not None:
            count.n += 1
        values = {
            name: (process(params[name]) if process is not None else params[name])
            for name, process in compiled.binds.items()
        }
        # A caller running many statements on one connection (the group committer) lends
        # its cursor; making one costs more than some of these statements.
        cursor = session.info.get(SHARED_CURSOR)
        if cursor is None:
            cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        if compiled.positional is not None:
            cursor.execute(compiled.sql, [values[name] for name in compiled.positional])
        else:
            cursor.execute(compiled.sql, values)
        return cursor, compiled

    def execute(self, session: Session, params: Mapping[str, Any]) -> None:
        cursor, _ = self._run(session, params)
        _done_with(session, cursor)

    def first(self, session: Session, params: Mapping[str, Any]) -> Any:
        cursor, compiled = self._run(session, params)
        raw = cursor.fetchone()
        _done_with(session, cursor)
        return None if raw is None else _convert(compiled, raw)

    def all(self, session: Session, params: Mapping[str, Any]) -> list[Any]:
        cursor, compiled = self._run(session, params)
        rows = cursor.fetchall()
        _done_with(session, cursor)
        return [_convert(compiled, raw) for raw in rows]


def _done_with(session: Session, cursor: Any) -> None:
    if cursor is not session.info.get(SHARED_CURSOR):
        cursor.close()  # our own; a lent cursor is its lender's to close


def _convert(compiled: _Compiled, raw: Sequence[Any]) -> Any:
    return compiled.row._make(
        value if process is None or value is None else process(value)
        for process, value in zip(compiled.results, raw, strict=True)
    )
