"""The busiest call's statement finds the agency's handle by its primary key, whatever the
database knows about its tables.

The token check (``grants.repository``'s bearer statement) once joined the handle on
``handle = :handle AND agency_id = <the grant's agency>``. PostgreSQL, before its first
ANALYZE of ``pairwise_handle`` (and the benchmark machine's PostgreSQL runs with
autovacuum off, so never), planned that join with the (agency_id, vault_id) index and
walked every handle of the agency on every read: 1,000 in the benchmark, more for a
council. Now the handle is joined on its key alone and whose it is is checked in the
select list, so no plan can find it another way. Checked here with the plan a prepared
statement gets (PostgreSQL's generic plan, which psycopg's prepared statements use), with
no statistics and after ANALYZE, on an agency with many handles.
"""

from __future__ import annotations

import re
import uuid

from sqlalchemy import text
from sqlalchemy.engine import Connection

from app.container import Services
from app.db import transaction
from grants import repository as grants_repo
from grants import service as grants_service
from grants.models import PairwiseHandle
from vault import service as vault_service
from vault.actors import Actor

HANDLES = 200
HANDLE_KEY = {"postgresql": "pairwise_handle_pkey", "sqlite": "sqlite_autoindex_pairwise_handle_1"}


def one_agency_with_many_handles(services: Services) -> None:
    with transaction(services.engine) as session:
        agency = grants_service.add_agency(
            session, Actor.operator(), services.keyring.provider, "Example Council",
            ["education_support"], statutory=True, max_duration_days=90,
        )  # fmt: skip
        for i in range(HANDLES):
            _, vault = vault_service.create_young_person(
                session, services.vault, None, f"young{i}", "not-a-real-hash"
            )
            session.add(
                PairwiseHandle(handle=f"vh_{i:04d}", agency_id=agency.id, vault_id=vault.id)
            )


# Both token checks (listing records; one record by id) join the handle the same way.
TOKEN_CHECKS = {"bearer": grants_repo._BEARER, "bearer_and_record": grants_repo._BEARER_AND_RECORD}


def bearer_plan(conn: Connection, check: str) -> str:
    """The plan of one token check, as a prepared statement gets it."""
    statement = TOKEN_CHECKS[check].statement
    params = {"handle": "vh_0001", "record_id": str(uuid.uuid4()), "token_hash": "0" * 64}
    if conn.dialect.name == "sqlite":
        compiled = statement.compile(dialect=conn.dialect)
        values = tuple(params[name] for name in compiled.positiontup or ())
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", values).all()
        return "\n".join(str(row[-1]) for row in rows)
    sql = str(statement.compile(dialect=conn.dialect))
    order: list[str] = []

    def numbered(match: re.Match[str]) -> str:
        if match.group(1) not in order:
            order.append(match.group(1))
        return f"${order.index(match.group(1)) + 1}"

    sql = re.sub(r"%\((\w+)\)s", numbered, sql)
    conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
    # Which index, if any: a small table analysed is rightly read whole instead.
    conn.exec_driver_sql("SET enable_seqscan = off")
    conn.exec_driver_sql(f"PREPARE bearer_plan AS {sql}")
    try:
        values = ", ".join(f"'{params[name]}'" for name in order)
        rows = conn.exec_driver_sql(f"EXPLAIN EXECUTE bearer_plan({values})").all()
    finally:
        conn.exec_driver_sql("DEALLOCATE bearer_plan")
        conn.exec_driver_sql("RESET plan_cache_mode")
        conn.exec_driver_sql("RESET enable_seqscan")
    return "\n".join(row[0] for row in rows)


def handle_lookups(plan: str) -> list[str]:
    """The plan's reads of ``pairwise_handle`` (PostgreSQL: "… Scan … on pairwise_handle";
    SQLite: "SEARCH pairwise_handle …" or "SCAN pairwise_handle")."""
    reads = re.compile(r"Scan .*\bon pairwise_handle\b|(SEARCH|SCAN) pairwise_handle\b")
    return [line.strip() for line in plan.splitlines() if reads.search(line)]


def test_the_token_check_finds_the_handle_by_its_key(services: Services) -> None:
    one_agency_with_many_handles(services)
    key = HANDLE_KEY[services.engine.dialect.name]
    with services.engine.connect() as conn:
        before = [bearer_plan(conn, check) for check in TOKEN_CHECKS]
        conn.execute(text("ANALYZE pairwise_handle"))
        conn.commit()
        after = [bearer_plan(conn, check) for check in TOKEN_CHECKS]
    for plan in (*before, *after):
        lookups = handle_lookups(plan)
        assert lookups, plan
        assert all(key in line for line in lookups), plan
