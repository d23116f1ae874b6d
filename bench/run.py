"""``make bench``: load the agency-facing hot paths of a real ``storykeep serve`` with wrk,
first on SQLite, then on PostgreSQL, and write the figures to docs/benchmarks.md.

Seeding, once for both databases: BENCH_YOUNG_PEOPLE young people (1,000) with
BENCH_RECORDS records each (50, about 2 KB of body each) through
``vault.service.create_young_person`` and ``add_record``, BENCH_SEED_BATCH young people per
transaction, in BENCH_SEED_WORKERS processes each writing its own SQLite file (one writer
per SQLite file, and the service path is CPU-bound); the files are merged into the SQLite
database and the same rows copied into PostgreSQL, and every backend gets a copy of the
one key file. Then, for each database, through the real code paths only:

* a fresh data directory and database, migrated with ``storykeep db upgrade``;
* one agency and its private_key_jwt client, registered in-process with
  ``grants.service.add_agency`` and ``add_client``, and a connection code per young
  person (``grants.service.make_code``); nothing of the grants domain is ever copied;
* ``storykeep serve`` as its own process, a real CIBA backchannel request over HTTP for
  each code, approved in-process with ``grants.service.approve`` (every
  BENCH_WRITE_EVERY-th grant is ``["read", "write"]`` on education, the rest ``["read"]``
  on education, health and care plan);
* access tokens from the real token endpoint (CIBA poll), fetched right before the
  load and refreshed through the token endpoint if a run would outlive them.

Then wrk (2 threads, pinned to core 1; the server to core 0) drives, at each of
BENCH_CONNECTIONS (8 and 64) for BENCH_SECONDS (10) each: GET /healthz, an authorized
record read, introspection with a fresh private_key_jwt assertion per request, and an
agency record write. Non-2xx responses and socket errors are counted and flagged.

The four run in turn BENCH_ROUNDS (3) times at each connection count, and each round's
ratios are to that round's own /healthz. On a shared virtual machine the throughput of
the very same code moves by a third within minutes (other tenants take CPU: "stolen"
time, which is recorded), so one run of each is a lottery near a target line. A
scenario's figure is its median round: the median ratio, and the median p50 and p99
across rounds; every round is in the document too.

Settings (environment): BENCH_SECONDS, BENCH_ROUNDS, BENCH_CONNECTIONS, BENCH_YOUNG_PEOPLE,
BENCH_RECORDS, BENCH_DATABASES (sqlite,postgresql), BENCH_PG_ADMIN_URL,
BENCH_WRITE_EVERY, BENCH_SEED_BATCH, BENCH_SEED_WORKERS,
BENCH_INTROSPECT_MAX_RPS, BENCH_SCENARIOS (healthz,read,introspect,write), BENCH_KEEP
(keep the temporary directory), BENCH_PYSPY (py-spy record the server during each run,
if py-spy is installed in the venv; the profiles stay in the kept temporary directory).
A run narrower than the issue's (fewer requests, databases or connection counts, fewer
young people or records, or with BENCH_PYSPY) writes its document into the kept
temporary directory, not docs/.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import SQLModel

from app.auth.service import hash_password
from app.container import Services, build_services
from app.db import transaction
from app.migrate import upgrade
from app.settings import Settings
from grants import models as grants_models
from grants import service as grants_service
from grants.schemas import ApproveBody
from vault import service as vault_service
from vault.actors import Actor
from vault.keys import LocalKeyFileProvider
from vault.models import Vault
from vault.schemas import RecordCreate

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LUA = ROOT / "bench" / "rotate.lua"
DOC = ROOT / "docs" / "benchmarks.md"
HOST = "127.0.0.1"
PG_DATABASE = "storykeep_bench"
DEFAULT_PG_ADMIN_URLS = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CIBA = "urn:openid:params:grant-type:ciba"
AGENCY = "Bench High School"
PURPOSE = "education_support"
PRACTITIONER = {"name": "Jo Bench", "role": "guidance teacher", "email": "jo.bench@example.org"}
# Records cycle through these; read grants cover the first three, so a quarter of each
# vault is outside every grant (and never asked for).
RECORD_CATEGORIES = ("education", "health", "care_plan", "social_work")
READ_CATEGORIES = ("education", "health", "care_plan")
WRITE_CATEGORIES = ("education",)
READS_PER_TOKEN = 10
WRK_THREADS = 2
ASSERTION_SECONDS = 540  # the server allows at most 600
SCENARIOS = ("healthz", "read", "introspect", "write")
# What the issue asks `make bench` to measure: the defaults, and the least a run must
# cover for its figures to be the record in docs/benchmarks.md (``Config.partial``).
DATABASES = ("sqlite", "postgresql")
CONNECTIONS = (8, 64)
YOUNG_PEOPLE = 1000
RECORDS = 50
LABELS = {
    "healthz": "GET /healthz",
    "read": "GET /api/v1/vaults/{h}/records/{id}",
    "introspect": "POST /oauth/introspect",
    "write": "POST /api/v1/vaults/{h}/records",
}
# The targets: throughput as a share of /healthz at the same database and
# connection count, and the authorized read's p99 at 8 connections.
RATIO_TARGETS = {"read": 0.40, "introspect": 0.60, "write": 0.30}
READ_P99_TARGET_MS = 25.0
READ_P99_CONNECTIONS = 8
# After each run the server must answer promptly again before the next run starts.
# Needing longer than DRAIN_FLAG_SECONDS means requests were still stuck when wrk
# stopped; after DRAIN_WAIT_SECONDS the server is restarted rather than waited for (its
# own lock and pool timeouts are 15 and 30 s), so one stuck run cannot spoil the next.
DRAIN_FLAG_SECONDS = 3.0
DRAIN_WAIT_SECONDS = 8.0


# Only failed client authentications are throttled (per client and per address); the bench
# never fails on purpose, so raising the limits only makes sure a failure shows as its own
# 401 rather than as a cascade of 429s from one client or one address.
RAISED_LIMITS = {
    "login_max_failures_per_account": "1000000",
    "login_max_failures_per_address": "1000000",
    "oauth_max_failures_per_client": "1000000",
    "oauth_max_failures_per_address": "1000000",
}


def raised_limits() -> dict[str, str]:
    return {
        f"STORYKEEP_{name.upper()}": value
        for name, value in RAISED_LIMITS.items()
        if name in Settings.model_fields
    }


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


class BenchError(Exception):
    """Something the benchmark needs is missing or did not work; the message says what."""


# -- configuration ---------------------------------------------------------------------------
def _env_int(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BenchError(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


@dataclass(frozen=True)
class Config:
    seconds: int
    connections: tuple[int, ...]
    rounds: int
    young_people: int
    records: int
    databases: tuple[str, ...]
    pg_admin_urls: tuple[str, ...]
    write_every: int
    seed_batch: int
    seed_workers: int
    introspect_max_rps: int
    keep: bool
    scenarios: tuple[str, ...] = SCENARIOS
    pyspy: bool = False
    tmp: Path | None = None

    @property
    def partial(self) -> bool:
        """Not what the issue asks `make bench` to record (fewer requests, databases or
        connection counts, less data, or a profiler taking CPU): a look, not a record."""
        return (
            set(self.scenarios) != set(SCENARIOS)
            or set(self.databases) != set(DATABASES)
            or not set(CONNECTIONS) <= set(self.connections)
            or self.young_people < YOUNG_PEOPLE
            or self.records < RECORDS
            or self.pyspy
        )

    @classmethod
    def from_env(cls) -> Config:
        listed = os.environ.get("BENCH_CONNECTIONS", ",".join(map(str, CONNECTIONS)))
        conns = tuple(int(c) for c in listed.split(",") if c.strip())
        if not conns or not all(WRK_THREADS <= c <= 1024 for c in conns):
            raise BenchError(f"BENCH_CONNECTIONS must be numbers from {WRK_THREADS} to 1024")
        databases = tuple(
            d.strip().lower()
            for d in os.environ.get("BENCH_DATABASES", ",".join(DATABASES)).split(",")
            if d.strip()
        )
        if not databases or not set(databases) <= set(DATABASES):
            raise BenchError("BENCH_DATABASES must list sqlite and/or postgresql")
        admin = os.environ.get("BENCH_PG_ADMIN_URL", "").strip()
        scenarios = tuple(
            x.strip() for x in os.environ.get("BENCH_SCENARIOS", ",".join(SCENARIOS)).split(",")
        )
        if not scenarios or not set(scenarios) <= set(SCENARIOS):
            raise BenchError(f"BENCH_SCENARIOS must list some of {', '.join(SCENARIOS)}")
        return cls(
            seconds=_env_int("BENCH_SECONDS", 10, 1, 300),
            connections=conns,
            rounds=_env_int("BENCH_ROUNDS", 3, 1, 20),
            young_people=_env_int("BENCH_YOUNG_PEOPLE", YOUNG_PEOPLE, 10, 100_000),
            records=_env_int("BENCH_RECORDS", RECORDS, 4, 1000),
            databases=databases,
            pg_admin_urls=(admin,) if admin else DEFAULT_PG_ADMIN_URLS,
            write_every=_env_int("BENCH_WRITE_EVERY", 10, 2, 1000),
            seed_batch=_env_int("BENCH_SEED_BATCH", 25, 1, 1000),
            seed_workers=_env_int("BENCH_SEED_WORKERS", len(os.sched_getaffinity(0)), 1, 8),
            introspect_max_rps=_env_int("BENCH_INTROSPECT_MAX_RPS", 1500, 10, 100_000),
            keep=os.environ.get("BENCH_KEEP", "0") not in {"", "0"},
            scenarios=scenarios,
            pyspy=os.environ.get("BENCH_PYSPY", "0") not in {"", "0"},
        )


@dataclass(frozen=True)
class Tools:
    wrk: str
    taskset: str | None
    cores: int

    def pinned(self, core: int, argv: Sequence[str]) -> list[str]:
        if self.taskset and self.cores >= 2:
            return [self.taskset, "-c", str(core), *argv]
        return list(argv)

    @property
    def pinning(self) -> str:
        if self.taskset and self.cores >= 2:
            return "server on core 0, wrk on core 1 (taskset)"
        return "none (taskset missing or fewer than 2 cores)"


def find_tools() -> Tools:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError(
            "wrk is not installed. On Debian or Ubuntu: sudo apt-get install -y wrk "
            "(`make bench` does this itself when run as root)"
        )
    return Tools(wrk=wrk, taskset=shutil.which("taskset"), cores=len(os.sched_getaffinity(0)))


def run_quiet(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run one of our own fixed command lines (no shell) and capture its output."""
    return subprocess.run(  # noqa: S603 - argv is built here from fixed parts, no shell
        list(argv), capture_output=True, text=True, check=False, **kwargs
    )


# -- one database under test ------------------------------------------------------------------
@dataclass
class Person:
    index: int
    person_id: str
    username: str
    vault_id: str
    records: list[tuple[str, str]]  # (record id, category)


@dataclass
class Token:
    person: Person
    write: bool
    handle: str
    access: str
    refresh: str
    expires_at: float


@dataclass
class Backend:
    kind: str  # "sqlite" or "postgresql"
    url: str
    data_dir: Path
    port: int
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    services: Services | None = None
    client_id: str = ""
    key: ECKey | None = None
    people: list[Person] = field(default_factory=list)
    codes: dict[int, str] = field(default_factory=dict, repr=False)
    timings: dict[str, float] = field(default_factory=dict)
    server_log: Path | None = None
    server_problems: list[str] = field(default_factory=list)
    access_logged: bool = False
    version: str = ""
    code: str = ""

    @property
    def name(self) -> str:
        return "SQLite" if self.kind == "sqlite" else "PostgreSQL"

    @property
    def issuer(self) -> str:
        return f"http://{HOST}:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "STORYKEEP_DATA_DIR": str(self.data_dir),
            "STORYKEEP_DATABASE_URL": self.url,
            "STORYKEEP_SECRET_KEY": self.secret,
            "STORYKEEP_ISSUER": self.issuer,
            **raised_limits(),
        }

    def settings(self) -> Settings:
        return settings_for(self.url, self.data_dir, self.secret, self.issuer)


def settings_for(url: str, data_dir: Path, secret: str, issuer: str) -> Settings:
    return Settings(data_dir=data_dir, database_url=url, secret_key=secret, issuer=issuer)


CODE_PATHS = ("app", "grants", "vault", "migrations", "templates", "pyproject.toml")


def code_state() -> str:
    """The commit the server runs, plus a digest and the names of uncommitted changes to
    the application (other people may be editing it while the bench runs)."""
    git = ["git", "-C", str(ROOT)]
    commit = run_quiet([*git, "rev-parse", "--short", "HEAD"]).stdout.strip() or "unknown"
    diff = run_quiet([*git, "diff", "HEAD", "--", *CODE_PATHS]).stdout
    changed = run_quiet([*git, "status", "--porcelain", "--", *CODE_PATHS]).stdout.splitlines()
    if not changed:
        return commit
    digest = hashlib.sha256(diff.encode())
    for line in changed:  # untracked files are not in the diff: hash their contents
        path = ROOT / line[3:]
        if line.startswith("??") and path.is_file():
            digest.update(path.read_bytes())
    names = ", ".join(line[3:] for line in changed)
    return f"{commit} + uncommitted changes {digest.hexdigest()[:10]} ({names})"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def pg_admin_engine(cfg: Config) -> tuple[Engine, str]:
    """An AUTOCOMMIT engine on the first admin URL that answers, and the server version."""
    problems = []
    for url in cfg.pg_admin_urls:
        if make_url(url).host != HOST:
            raise BenchError(f"BENCH_PG_ADMIN_URL must point at {HOST}")
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                version = str(conn.execute(text("SHOW server_version")).scalar())
                # What shapes the figures: autovacuum off (as on the CI machines) means no
                # table statistics, so every plan is one for a never-analysed database.
                shown = ", ".join(
                    f"{name} {conn.execute(text(f'SHOW {name}')).scalar()}"
                    for name in ("autovacuum", "synchronous_commit", "fsync")
                )
                version = f"{version}; {shown}"
        except Exception as exc:  # noqa: BLE001 - any failure means "try the next URL"
            problems.append(f"{make_url(url).render_as_string()}: {type(exc).__name__}")
            engine.dispose()
            continue
        return engine, version
    raise BenchError("cannot reach PostgreSQL: " + "; ".join(problems))


def recreate_pg_database(admin: Engine) -> None:
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{PG_DATABASE}"'))


def drop_pg_database(admin: Engine) -> None:
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)'))


def migrate(backend: Backend) -> None:
    result = run_quiet([str(BIN / "storykeep"), "db", "upgrade"], env=backend.env(), timeout=300)
    if result.returncode != 0:
        raise BenchError(f"storykeep db upgrade failed on {backend.name}:\n{result.stderr}")


def register_agency(backend: Backend) -> None:
    """One agency and its private_key_jwt client, in-process, through grants.service."""
    backend.services = build_services(backend.settings())  # the key file is a copy by now
    key = ECKey.generate_key("P-256", auto_kid=True)
    jwks = json.dumps(KeySet([key]).as_dict(private=False))
    with transaction(backend.services.engine) as session:
        agency = grants_service.add_agency(
            session, Actor.operator(), backend.services.keys, AGENCY, [PURPOSE], False, 90
        )
        client, _ = grants_service.add_client(
            session, backend.services.grants, Actor.operator(), backend.services.keys,
            agency.name, jwks, allow_secret=False,
        )  # fmt: skip
    backend.client_id, backend.key = client.client_id, key


# -- seeding --------------------------------------------------------------------------------------
# Every young person and record is made by vault.service, in worker processes, each into its
# own SQLite file (SQLite lets one writer at a time, and the service path is CPU-bound, so
# this is what uses every core). The shards are then merged into the SQLite database, and
# the same rows are copied into PostgreSQL, so both hold identical data under one set of
# keys (every backend gets a copy of the key file). Grant-domain rows (agency, client,
# connection codes, requests, grants, tokens) are never copied: they are made in each
# database through grants.service and the OAuth endpoints.
@dataclass(frozen=True)
class SeedJob:
    url: str  # this shard's own SQLite file
    key_file: Path  # the run's one key file
    start: int
    stop: int
    records: int
    batch: int


def record_body(index: int) -> str:
    sentence = (
        "Attended the review and took part in planning the next steps for the term; "
        "attendance is improving and the young person asked for more support with maths. "
    )
    return f"Record {index}. " + (sentence * 13)[:1990]


def seed_slice(job: SeedJob) -> list[Person]:
    """Young people ``start`` to ``stop`` with their records, ``batch`` young people per
    transaction, through vault.service (runs in a worker process)."""
    upgrade(job.url)
    services = build_services(Settings(database_url=job.url, key_file=job.key_file))
    password_hash = hash_password(secrets.token_urlsafe(16))  # nobody signs in as these
    operator = Actor.operator("bench seeding")
    people: list[Person] = []
    try:
        for first in range(job.start, job.stop, job.batch):
            with transaction(services.engine) as session:
                for index in range(first, min(first + job.batch, job.stop)):
                    username = f"bench{index:05d}"
                    person, vault = vault_service.create_young_person(
                        session, services.vault, operator, username, password_hash
                    )
                    records = []
                    for n in range(job.records):
                        category = RECORD_CATEGORIES[n % len(RECORD_CATEGORIES)]
                        data = RecordCreate(
                            agency=AGENCY, author_name="Records team", author_role="clerk",
                            category=category, shanarri=["achieving"],
                            title=f"{category.replace('_', ' ').title()} note {n}",
                            body=record_body(n),
                        )  # fmt: skip
                        record = vault_service.add_record(
                            session, services.vault, operator, vault.id, data
                        )
                        records.append((record.id.hex, category))
                    people.append(Person(index, person.id.hex, username, vault.id.hex, records))
    finally:
        services.engine.dispose()
    return people


def grant_tables() -> set[str]:
    return {
        obj.__table__.name
        for obj in vars(grants_models).values()
        if isinstance(obj, type) and obj.__module__ == grants_models.__name__
        and hasattr(obj, "__table__")
    }  # fmt: skip


def merge_shards(target: Path, shards: list[Path]) -> None:
    """Append every shard's rows to ``target`` (same migrations, so the same tables). A
    single INTEGER primary key (the audit log's row id) is left for SQLite to assign."""
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        for n, shard in enumerate(shards):
            conn.execute(f"ATTACH DATABASE ? AS shard{n}", (str(shard),))
        conn.execute("BEGIN IMMEDIATE")
        for table in SQLModel.metadata.sorted_tables:
            wanted = {r[1] for r in conn.execute(f'PRAGMA main.table_info("{table.name}")')}
            for n in range(len(shards)):
                info = list(conn.execute(f'PRAGMA shard{n}.table_info("{table.name}")'))
                keys = [r for r in info if r[5]]
                rowid = keys[0][1] if len(keys) == 1 and keys[0][2].upper() == "INTEGER" else None
                names = ", ".join(f'"{r[1]}"' for r in info if r[1] in wanted and r[1] != rowid)
                if names:  # every name comes from the schema, none from input
                    conn.execute(
                        f'INSERT INTO main."{table.name}" ({names}) '  # noqa: S608
                        f'SELECT {names} FROM shard{n}."{table.name}" ORDER BY rowid'
                    )
        conn.execute("COMMIT")
    finally:
        conn.close()


def copy_to_postgres(source_url: str, target_url: str) -> None:
    """The seeded rows, table by table in foreign-key order, through SQLAlchemy Core (so
    every column goes through the same types as the app's own writes)."""
    source, target = create_engine(source_url), create_engine(target_url)
    forbidden = grant_tables()
    try:
        with source.connect() as src, target.begin() as dst:
            for table in SQLModel.metadata.sorted_tables:
                columns = [c for c in table.columns if c.autoincrement is not True]
                query = select(*columns).order_by(*table.primary_key.columns)
                rows = src.execution_options(yield_per=2000).execute(query)
                for part in rows.partitions():
                    if table.name in forbidden:
                        raise BenchError(f"{table.name} has rows before seeding finished")
                    dst.execute(table.insert(), [dict(row._mapping) for row in part])
    finally:
        source.dispose()
        target.dispose()


def seed(cfg: Config, tmp: Path, backends: list[Backend]) -> tuple[list[Person], dict[str, float]]:
    """Seed once (vault.service, BENCH_SEED_WORKERS processes), then give every backend the
    same rows and a copy of the keys. Returns the people and the time each step took."""
    timings: dict[str, float] = {}
    keys = tmp / "keys" / "storykeep.keys"
    LocalKeyFileProvider(keys).load_or_create()
    sqlite_backend = next((b for b in backends if b.kind == "sqlite"), None)
    staging = (
        Path(make_url(sqlite_backend.url).database or "") if sqlite_backend
        else tmp / "staging.db"
    )  # fmt: skip
    if sqlite_backend is None:
        upgrade(f"sqlite:///{staging}")
    workers = min(cfg.seed_workers, cfg.young_people)
    bounds = [cfg.young_people * i // workers for i in range(workers + 1)]
    shards = [tmp / f"shard-{n}.db" for n in range(workers)]
    jobs = [
        SeedJob(f"sqlite:///{shards[n]}", keys, bounds[n], bounds[n + 1], cfg.records,
                cfg.seed_batch)
        for n in range(workers)
    ]  # fmt: skip
    log(f"seeding {cfg.young_people} young people x {cfg.records} records through "
        f"vault.service in {workers} processes")  # fmt: skip
    started = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        people = [p for part in pool.map(seed_slice, jobs) for p in part]
    timings["services"] = time.perf_counter() - started
    started = time.perf_counter()
    merge_shards(staging, shards)
    timings["merge"] = time.perf_counter() - started
    for shard in shards:
        shard.unlink()
    for backend in backends:
        shutil.copytree(keys.parent, backend.data_dir / "keys")
        if backend.kind == "postgresql":
            started = time.perf_counter()
            copy_to_postgres(f"sqlite:///{staging}", backend.url)
            timings["postgresql copy"] = time.perf_counter() - started
    records = sum(len(p.records) for p in people)
    log(f"seeded {len(people)} young people and {records} records in "
        + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))  # fmt: skip
    return sorted(people, key=lambda p: p.index), timings


def make_codes(cfg: Config, backend: Backend) -> None:
    """A connection code per young person, in-process through grants.service.make_code."""
    assert backend.services is not None  # noqa: S101 - set by register_agency
    services = backend.services
    started = time.perf_counter()
    for first in range(0, len(backend.people), cfg.seed_batch * 4):
        with transaction(services.engine) as session:
            for person in backend.people[first : first + cfg.seed_batch * 4]:
                vault = session.get(Vault, uuid.UUID(person.vault_id))
                if vault is None:
                    raise BenchError(f"vault of {person.username} is missing")
                actor = Actor.young_person(uuid.UUID(person.person_id), person.username)
                code = grants_service.make_code(
                    session, services.grants, services.vault, actor, vault
                )
                backend.codes[person.index] = code.code
    backend.timings["codes"] = time.perf_counter() - started


# -- the agency's side, over HTTP ----------------------------------------------------------------
class AgencyHttp:
    """The agency's system: signs a fresh client assertion for every call."""

    def __init__(self, backend: Backend) -> None:
        assert backend.key is not None  # noqa: S101 - set by register_agency
        self.key = backend.key
        self.client_id = backend.client_id
        self.issuer = backend.issuer
        self.http = httpx.Client(
            base_url=backend.issuer,
            timeout=60,
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=8),
        )

    def close(self) -> None:
        self.http.close()

    def assertion(self) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_id, "sub": self.client_id, "aud": self.issuer,
            "iat": now, "exp": now + ASSERTION_SECONDS, "jti": uuid.uuid4().hex,
        }  # fmt: skip
        return jwt.encode({"alg": "ES256", "kid": self.key.kid}, claims, self.key)

    def form(self, data: dict[str, str]) -> dict[str, str]:
        return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": self.assertion(),
                **data}  # fmt: skip

    def post(self, path: str, data: dict[str, str]) -> dict[str, Any]:
        response = self.http.post(path, data=self.form(data))
        if response.status_code != 200:
            raise BenchError(f"POST {path} answered {response.status_code}: {response.text[:300]}")
        return dict(response.json())


def in_threads(func: Callable[[Any], Any], items: Iterable[Any], threads: int = 4) -> list[Any]:
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(func, items))


def is_writer(cfg: Config, person: Person) -> bool:
    return person.index % cfg.write_every == 0


def ask_all(cfg: Config, agency: AgencyHttp, backend: Backend) -> dict[int, str]:
    """A real CIBA backchannel request per young person, with their connection code."""

    def ask(person: Person) -> tuple[int, str]:
        write = is_writer(cfg, person)
        details = [{
            "type": "storykeep_records",
            "actions": ["read", "write"] if write else ["read"],
            "categories": list(WRITE_CATEGORIES if write else READ_CATEGORIES),
            "purpose": PURPOSE,
            "duration_days": 30,
        }]  # fmt: skip
        body = agency.post("/oauth/backchannel", {
            "login_hint": backend.codes[person.index],
            "authorization_details": json.dumps(details),
            "practitioner": json.dumps(PRACTITIONER),
        })  # fmt: skip
        return person.index, str(body["auth_req_id"])

    return dict(in_threads(ask, backend.people))


def approve_all(cfg: Config, backend: Backend) -> None:
    """Each young person says yes, in-process, through grants.service.approve."""
    assert backend.services is not None  # noqa: S101 - set by register_agency
    services = backend.services
    for first in range(0, len(backend.people), cfg.seed_batch * 4):
        with transaction(services.engine) as session:
            for person in backend.people[first : first + cfg.seed_batch * 4]:
                vault = session.get(Vault, uuid.UUID(person.vault_id))
                if vault is None:
                    raise BenchError(f"vault of {person.username} is missing")
                pending = [
                    r for r in grants_service.list_requests(session, vault) if r.status == "pending"
                ]
                if len(pending) != 1:
                    raise BenchError(f"{person.username} has {len(pending)} pending requests")
                actor = Actor.young_person(uuid.UUID(person.person_id), person.username)
                grants_service.approve(
                    session, services.vault, actor, vault, pending[0].id, ApproveBody()
                )


def fetch_tokens(
    cfg: Config, agency: AgencyHttp, people: list[Person], auth_req_ids: dict[int, str]
) -> list[Token]:
    """Access tokens from the real token endpoint: one CIBA poll per approved request."""

    def poll(person: Person) -> Token:
        body = agency.post(
            "/oauth/token", {"grant_type": CIBA, "auth_req_id": auth_req_ids[person.index]}
        )
        write = is_writer(cfg, person)
        actions = body["authorization_details"][0]["actions"]
        if ("write" in actions) != write:
            raise BenchError(f"{person.username}: token has actions {actions}")
        return Token(
            person, write, str(body["vault_handle"]), str(body["access_token"]),
            str(body["refresh_token"]), time.time() + int(body["expires_in"]),
        )  # fmt: skip

    return in_threads(poll, people)


def refresh_tokens(agency: AgencyHttp, tokens: list[Token]) -> None:
    """New access tokens through the refresh_token grant of the real token endpoint."""

    def refresh(token: Token) -> None:
        body = agency.post(
            "/oauth/token", {"grant_type": "refresh_token", "refresh_token": token.refresh}
        )
        token.access, token.refresh = str(body["access_token"]), str(body["refresh_token"])
        token.expires_at = time.time() + int(body["expires_in"])

    in_threads(refresh, tokens)


# -- request files for wrk -------------------------------------------------------------------------
def tsv(method: str, path: str, auth: str = "-", content_type: str = "-", body: str = "-") -> str:
    for part in (method, path, auth, content_type, body):
        if "\t" in part or "\n" in part:
            raise BenchError("request fields must not hold tabs or newlines")
    return "\t".join((method, path, auth, content_type, body)) + "\n"


def write_lines(path: Path, lines: Iterable[str]) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for line in lines:
            out.write(line)
            count += 1
    return count


def read_lines(tokens: list[Token], rng: random.Random) -> list[str]:
    lines = []
    for token in tokens:
        if token.write:
            continue
        readable = [r for r, category in token.person.records if category in READ_CATEGORIES]
        for record_id in rng.sample(readable, min(READS_PER_TOKEN, len(readable))):
            path = f"/api/v1/vaults/{token.handle}/records/{uuid.UUID(record_id)}"
            lines.append(tsv("GET", path, f"Bearer {token.access}"))
    rng.shuffle(lines)
    return lines


def write_request_lines(tokens: list[Token]) -> list[str]:
    lines = []
    for n, token in enumerate(t for t in tokens if t.write):
        body = json.dumps({
            "category": "education",
            "title": f"Progress note from the bench {n}",
            "body": record_body(n),
        })  # fmt: skip
        path = f"/api/v1/vaults/{token.handle}/records"
        lines.append(tsv("POST", path, f"Bearer {token.access}", "application/json", body))
    return lines


def introspect_count(cfg: Config, results: list[Result], connections: int, round_: int) -> int:
    """How many assertions to sign for one introspection run. Each is accepted once, so
    running out would turn the rest of the run into replays (401s): enough for
    BENCH_INTROSPECT_MAX_RPS, or for a quarter more than /healthz managed in this round
    when that is more (nothing here is served faster than /healthz). A fast machine ran
    past 1,500 a second."""
    healthz = [
        r.rps
        for r in results
        if r.scenario == "healthz" and r.connections == connections and r.round == round_
    ]
    rate = max([cfg.introspect_max_rps, *(math.ceil(1.25 * x) for x in healthz)])
    return rate * cfg.seconds + 1000


def introspect_lines(agency: AgencyHttp, tokens: list[Token], count: int) -> list[str]:
    """``count`` requests, each with its own freshly signed assertion (unused jti)."""
    readers = [t for t in tokens if not t.write]
    form = "application/x-www-form-urlencoded"
    return [
        tsv("POST", "/oauth/introspect", "-", form,
            urlencode(agency.form({"token": readers[n % len(readers)].access})))
        for n in range(count)
    ]  # fmt: skip


# -- the server ------------------------------------------------------------------------------------
class Server:
    def __init__(self, backend: Backend, tools: Tools) -> None:
        self.backend = backend
        self.tools = tools
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        backend = self.backend
        backend.code = backend.code or code_state()
        backend.server_log = backend.data_dir / "server.log"
        argv = [str(BIN / "storykeep"), "serve", "--host", HOST, "--port", str(backend.port)]
        # For a look afterwards with BENCH_KEEP=1 (a throwaway secret in a 0700 directory).
        (backend.data_dir / "server.env").write_text(
            "".join(f"{k}={v}\n" for k, v in backend.env().items() if k.startswith("STORYKEEP_"))
        )
        with backend.server_log.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                self.tools.pinned(0, argv), env=backend.env(), stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"storykeep serve exited; see {backend.server_log}")
            try:
                if httpx.get(f"{backend.issuer}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise BenchError(f"storykeep serve did not answer /healthz; see {backend.server_log}")

    def stop(self, grace: float = 20) -> None:
        """SIGINT (uvicorn finishes requests in flight), then SIGKILL after ``grace`` s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.stop(grace=2)
        self.start()


ACCESS_LINE = re.compile(r'"[A-Z]+ (\S+) HTTP/[\d.]+" (\d{3})')
NOTE_MARK = "wrk hung up at the end of a run"
UNEXPECTED_LINE = re.compile(r"ERROR storykeep\.errors unexpected (\w+) on (\w+) (\S+)")


def _shape(path: str) -> str:
    """A path with its handle and id replaced, so like requests count together."""
    path = re.sub(r"/vh_[^/]+", "/{h}", path)
    return re.sub(r"/[0-9a-f-]{32,36}$", "/{id}", path)


def server_problems(log_path: Path) -> list[str]:
    """5xx responses, the app's "unexpected error" lines and tracebacks, summarised."""
    counts: dict[str, int] = {}
    tracebacks = 0
    first_traceback: list[str] = []
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    for n, line in enumerate(lines):
        access = ACCESS_LINE.search(line)
        if access and access.group(2).startswith("5"):
            key = f"answered {access.group(2)}: {_shape(access.group(1))}"
            counts[key] = counts.get(key, 0) + 1
        unexpected = UNEXPECTED_LINE.search(line)
        if unexpected:
            error, method, path = unexpected.groups()
            key = f"logged unexpected {error}: {method} {_shape(path)}"
            if error == "ClientDisconnect":
                key = f"{key} ({NOTE_MARK}, with requests still queued)"
            counts[key] = counts.get(key, 0) + 1
        if line.startswith("Traceback"):
            tracebacks += 1
            if not first_traceback:
                first_traceback = lines[max(0, n - 1) : n + 40]
    problems = [f"{count} x {what}" for what, count in sorted(counts.items())]
    if tracebacks:
        problems.append(f"{tracebacks} traceback(s) in the server log; the first:")
        problems.append("\n".join(first_traceback))
    return problems


@dataclass(frozen=True)
class CpuUse:
    server_cores: float  # the server's CPU time over wall time (1.0 = one core flat out)
    server_ms_per_request: float
    other_cores: float  # the rest of the machine: PostgreSQL, and anything else running
    # CPU the hypervisor gave to other tenants while this machine wanted it ("steal" in
    # /proc/stat), in cores: high means the figures of this run are pessimistic.
    stolen_cores: float = 0.0

    @classmethod
    def between(cls, before: CpuSample, after: CpuSample, requests: int) -> CpuUse:
        wall = max(after.wall - before.wall, 1e-9)
        server = after.server - before.server
        wrk = after.children - before.children
        others = after.machine_busy - before.machine_busy - server - wrk
        stolen = max(after.stolen - before.stolen, 0)
        return cls(
            server / wall, server * 1000 / max(requests, 1), max(others, 0) / wall, stolen / wall
        )


# -- wrk -----------------------------------------------------------------------------------------
@dataclass
class Result:
    database: str
    connections: int
    scenario: str
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int
    timeouts: int
    wraps: int
    sample: str
    ratio: float | None = None
    round: int = 1
    # Set on a median row (``medians``): how many rounds, and the lowest and highest ratio.
    rounds: int = 1
    ratio_range: tuple[float, float] | None = None
    drain_seconds: float = 0.0
    restarted: bool = False
    cpu: CpuUse | None = None

    @property
    def flagged(self) -> bool:
        return bool(
            self.non_2xx or self.socket_errors or self.timeouts or self.wraps
            or not self.requests or self.drain_seconds > DRAIN_FLAG_SECONDS or self.restarted
        )  # fmt: skip


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds so far: the server process, this process's finished children (wrk),
    and the whole machine (busy = everything but idle and iowait), at a wall time."""

    wall: float
    server: float
    children: float
    machine_busy: float
    stolen: float

    @classmethod
    def take(cls, server_pid: int | None) -> CpuSample:
        server = 0.0
        if server_pid is not None:
            fields = Path(f"/proc/{server_pid}/stat").read_text().rsplit(")", 1)[1].split()
            server = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
        cpu = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        # user nice system idle iowait irq softirq steal: busy is all but idle, iowait
        # and steal (steal is time the machine wanted and another tenant got).
        busy = (sum(cpu[:7]) - cpu[3] - cpu[4]) / CLOCK_TICKS
        stolen = (cpu[7] if len(cpu) > 7 else 0) / CLOCK_TICKS
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return cls(time.monotonic(), server, children.ru_utime + children.ru_stime, busy, stolen)


def run_wrk(
    tools: Tools, cfg: Config, backend: Backend, scenario: str, connections: int, file: Path,
    mode: str, server_pid: int | None,
) -> Result:  # fmt: skip
    argv = tools.pinned(1, [
        tools.wrk, "-t", str(WRK_THREADS), "-c", str(connections), "-d", f"{cfg.seconds}s",
        "--timeout", "30s", "-s", str(LUA), backend.issuer, "--", str(file), str(WRK_THREADS),
        mode,
    ])  # fmt: skip
    before = CpuSample.take(server_pid)
    done = run_quiet(argv, timeout=cfg.seconds + 180)
    after = CpuSample.take(server_pid)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    seconds = data["duration_us"] / 1e6
    return Result(
        database=backend.name, connections=connections, scenario=scenario,
        requests=data["requests"], rps=data["requests"] / seconds,
        p50_ms=data["p50_us"] / 1000, p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000, max_ms=data["max_us"] / 1000,
        non_2xx=data["s1xx"] + data["s3xx"] + data["s4xx"] + data["s5xx"],
        socket_errors=data["connect_errors"] + data["read_errors"] + data["write_errors"],
        timeouts=data["timeouts"], wraps=data["wraps"], sample=data["sample"],
        cpu=CpuUse.between(before, after, data["requests"]),
    )  # fmt: skip


def drain(agency: AgencyHttp, reader: Token, limit: float) -> float | None:
    """Wait until the server answers promptly again: /healthz (a thread pool trip) and an
    authorized read (a database transaction) three times in a row, each within 0.2 s.
    Requests wrk left behind must not run into the next measurement. Returns the seconds
    it took, or None if the server was not prompt within ``limit`` seconds."""
    record_id = next(r for r, c in reader.person.records if c in READ_CATEGORIES)
    read_path = f"/api/v1/vaults/{reader.handle}/records/{uuid.UUID(record_id)}"
    headers = {"Authorization": f"Bearer {reader.access}"}
    started = time.monotonic()
    prompt = 0
    while prompt < 3:
        left = limit - (time.monotonic() - started)
        if left <= 0:
            return None
        t = time.monotonic()
        try:
            ok = agency.http.get("/healthz", timeout=left).status_code == 200
            ok = ok and agency.http.get(read_path, headers=headers, timeout=left).is_success
        except httpx.HTTPError:
            ok = False
        prompt = prompt + 1 if ok and time.monotonic() - t < 0.2 else 0
        time.sleep(0.05)
    return time.monotonic() - started


def sanity_check(agency: AgencyHttp, tokens: list[Token]) -> None:
    """One of each request before the load, so a broken setup fails loudly, not as 4xx."""
    reader = next(t for t in tokens if not t.write)
    writer = next(t for t in tokens if t.write)
    record_id = next(r for r, c in reader.person.records if c in READ_CATEGORIES)
    read = agency.http.get(
        f"/api/v1/vaults/{reader.handle}/records/{uuid.UUID(record_id)}",
        headers={"Authorization": f"Bearer {reader.access}"},
    )
    if read.status_code != 200:
        raise BenchError(f"authorized read answered {read.status_code}: {read.text[:300]}")
    if not agency.post("/oauth/introspect", {"token": reader.access}).get("active"):
        raise BenchError("introspection says the reader's token is not active")
    wrote = agency.http.post(
        f"/api/v1/vaults/{writer.handle}/records",
        headers={"Authorization": f"Bearer {writer.access}"},
        json={"category": "education", "title": "Bench check", "body": "Checked."},
    )
    if wrote.status_code != 201:
        raise BenchError(f"record write answered {wrote.status_code}: {wrote.text[:300]}")


def obtain_tokens(cfg: Config, agency: AgencyHttp, backend: Backend) -> list[Token]:
    """Backchannel request (HTTP), approval (in-process), CIBA poll (HTTP), timed."""
    started = time.perf_counter()
    auth_req_ids = ask_all(cfg, agency, backend)
    backend.timings["backchannel"] = time.perf_counter() - started
    started = time.perf_counter()
    approve_all(cfg, backend)
    backend.timings["approve"] = time.perf_counter() - started
    started = time.perf_counter()
    tokens = fetch_tokens(cfg, agency, backend.people, auth_req_ids)
    backend.timings["tokens"] = time.perf_counter() - started
    log(f"{backend.name}: {len(auth_req_ids)} backchannel requests in "
        f"{backend.timings['backchannel']:.1f} s, approved in "
        f"{backend.timings['approve']:.1f} s, {len(tokens)} tokens in "
        f"{backend.timings['tokens']:.1f} s")  # fmt: skip
    return tokens


def cpu_text(result: Result) -> str:
    if result.cpu is None:
        return ""
    c = result.cpu
    return (f"server CPU {c.server_cores:.0%} ({c.server_ms_per_request:.2f} ms/request), "
            f"rest of machine {c.other_cores:.2f} cores, stolen {c.stolen_cores:.2f}")  # fmt: skip


def start_profiler(cfg: Config, server: Server, out: Path) -> subprocess.Popen[bytes] | None:
    """``py-spy record`` of the server for the length of one run (BENCH_PYSPY=1)."""
    if not cfg.pyspy or server.process is None:
        return None
    argv = [str(BIN / "py-spy"), "record", "--pid", str(server.process.pid),
            "--duration", str(cfg.seconds), "--rate", "200", "--nonblocking", "--gil",
            "--format", "raw", "--output", str(out)]  # fmt: skip
    return subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def summarise_profile(path: Path, top: int = 14) -> None:
    """Log the project's frames (and the database driver's) by share of samples."""
    if not path.exists():
        log(f"no profile in {path}")
        return
    inclusive: dict[str, int] = {}
    total = unreadable = 0
    # py-spy --nonblocking reads the server's memory while it runs, so now and then a
    # frame's name is garbage, even one holding a newline that splits its stack in two.
    # Such a line has no sample count at its end: skip it rather than lose the profile.
    for line in path.read_text(encoding="utf-8", errors="replace").split("\n"):
        stack, _, raw = line.rpartition(" ")
        if not stack or not raw.isdigit():
            unreadable += bool(line)
            continue
        samples = int(raw)
        total += samples
        for frame in {re.sub(r":\d+\)$", ")", f) for f in stack.split(";")}:
            if re.search(r"\((app|grants|vault)/|do_execute|do_commit|Condition\.wait", frame):
                inclusive[frame] = inclusive.get(frame, 0) + samples
    skipped = f", {unreadable} unreadable line(s) skipped" if unreadable else ""
    log(f"profile {path.name}: {total} samples (threads not idle){skipped}")
    for frame, samples in sorted(inclusive.items(), key=lambda x: -x[1])[:top]:
        log(f"   {samples / max(total, 1):6.1%}  {frame}")


def settle(server: Server, agency: AgencyHttp, reader: Token, result: Result) -> None:
    """Before the next run: wait for the server to be prompt again, or restart it."""
    drained = drain(agency, reader, DRAIN_WAIT_SECONDS)
    result.drain_seconds = DRAIN_WAIT_SECONDS if drained is None else drained
    if drained is None:
        result.restarted = True
        log(f"{result.database}: the server was still stuck {DRAIN_WAIT_SECONDS:.0f} s "
            "after the run; restarting it")  # fmt: skip
        server.restart()
        if drain(agency, reader, 30) is None:
            raise BenchError(f"{result.database}: the server is stuck after a restart")


def measure(
    cfg: Config, tools: Tools, backend: Backend, server: Server, agency: AgencyHttp,
    tokens: list[Token],
) -> list[Result]:  # fmt: skip
    work = backend.data_dir / "wrk"
    work.mkdir(exist_ok=True)
    rng = random.Random(20260101)  # noqa: S311 - picks records to read, not a secret
    files = {"healthz": work / "healthz.tsv", "read": work / "read.tsv",
             "write": work / "write.tsv"}  # fmt: skip

    def prepare_token_files() -> None:
        write_lines(files["healthz"], [tsv("GET", "/healthz")])
        write_lines(files["read"], read_lines(tokens, rng))
        write_lines(files["write"], write_request_lines(tokens))

    prepare_token_files()
    reader = next(t for t in tokens if not t.write)
    results = []
    # Round after round of every scenario, so that each round's ratios compare runs made
    # minutes apart at most, and a slow spell of the machine spoils one round, not a figure.
    runs = [
        (connections, round_, scenario)
        for connections in cfg.connections
        for round_ in range(1, cfg.rounds + 1)
        for scenario in cfg.scenarios
    ]
    for connections, round_, scenario in runs:
        # Every token must outlive the run, with a margin.
        if min(t.expires_at for t in tokens) < time.time() + cfg.seconds + 60:
            log(f"{backend.name}: refreshing {len(tokens)} access tokens")
            refresh_tokens(agency, tokens)
            prepare_token_files()
        file, mode = files.get(scenario), "cycle"
        if scenario == "introspect":
            file, mode = work / f"introspect-{connections}.tsv", "once"
            count = introspect_count(cfg, results, connections, round_)
            write_lines(file, introspect_lines(agency, tokens, count))
        assert file is not None  # noqa: S101 - every scenario has a file
        profile = work / f"profile-{scenario}-{connections}-round{round_}.txt"
        profiler = start_profiler(cfg, server, profile)
        pid = server.process.pid if server.process else None
        result = run_wrk(tools, cfg, backend, scenario, connections, file, mode, pid)
        result.round = round_
        if profiler is not None:
            profiler.wait(timeout=60)
            summarise_profile(profile)
        results.append(result)
        settle(server, agency, reader, result)
        log(f"{backend.name} c={connections:<3} r{round_} {scenario:<10} "
            f"{result.rps:8.1f} req/s  p50 {result.p50_ms:7.2f} ms  "
            f"p99 {result.p99_ms:8.2f} ms  non-2xx {result.non_2xx}  "
            f"socket errors {result.socket_errors + result.timeouts}  "
            f"{cpu_text(result)}" + ("  [FLAGGED]" if result.flagged else ""))  # fmt: skip
    return results


def bench_backend(cfg: Config, tools: Tools, backend: Backend) -> list[Result]:
    server = Server(backend, tools)
    agency: AgencyHttp | None = None
    try:
        server.start()
        agency = AgencyHttp(backend)
        tokens = obtain_tokens(cfg, agency, backend)
        sanity_check(agency, tokens)
        return measure(cfg, tools, backend, server, agency, tokens)
    finally:
        if agency is not None:
            agency.close()
        server.stop()
        if backend.server_log and backend.server_log.exists():
            backend.server_problems = server_problems(backend.server_log)
            with backend.server_log.open(encoding="utf-8", errors="replace") as lines:
                backend.access_logged = any(ACCESS_LINE.search(line) for line in lines)


# -- reporting -----------------------------------------------------------------------------------
def add_ratios(results: list[Result]) -> None:
    """Each run's throughput as a share of /healthz in the same round (same database and
    connection count)."""
    base = {(r.database, r.connections, r.round): r.rps for r in results if r.scenario == "healthz"}
    for r in results:
        healthz = base.get((r.database, r.connections, r.round))
        r.ratio = r.rps / healthz if healthz else None


def medians(results: list[Result]) -> list[Result]:
    """One row per database, connection count and request: its median round (by ratio to
    /healthz; /healthz itself by req/s), with p50 and p99 the medians over the rounds,
    and the range of the ratios. A median, not the best round: half the rounds did at
    least this well and half at most."""
    groups: dict[tuple[str, int, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.database, r.connections, r.scenario), []).append(r)
    rows = []
    for runs in groups.values():
        by = sorted(runs, key=lambda r: r.rps if r.scenario == "healthz" else (r.ratio or 0.0))
        ratios = [r.ratio for r in runs if r.ratio is not None]
        rows.append(dataclasses.replace(
            by[(len(by) - 1) // 2],  # the lower median of an even count: no flattery
            p50_ms=statistics.median(r.p50_ms for r in runs),
            p99_ms=statistics.median(r.p99_ms for r in runs),
            rounds=len(runs),
            ratio_range=(min(ratios), max(ratios)) if ratios else None,
            non_2xx=sum(r.non_2xx for r in runs),
            socket_errors=sum(r.socket_errors for r in runs),
            timeouts=sum(r.timeouts for r in runs),
            wraps=sum(r.wraps for r in runs),
            restarted=any(r.restarted for r in runs),
            drain_seconds=max(r.drain_seconds for r in runs),
        ))  # fmt: skip
    return rows


def _cpu_cells(r: Result) -> str:
    if r.cpu is None:
        return "- | - | - | - |"
    c = r.cpu
    return (f"{c.server_cores:.0%} | {c.server_ms_per_request:.2f} | {c.other_cores:.2f} | "
            f"{c.stolen_cores:.2f} |")  # fmt: skip


def results_table(rows: list[Result]) -> str:
    """The median rows (``medians``): one a database, connection count and request."""
    lines = [
        "| Database | Conns | Request | req/s | p50 ms | p99 ms | vs /healthz | range over "
        "rounds | non-2xx | socket errors | server CPU | CPU ms/req | rest of machine "
        "(cores) | stolen (cores) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = f"{r.ratio:.0%}" if r.ratio is not None else "-"
        spread = (
            f"{r.ratio_range[0]:.0%} to {r.ratio_range[1]:.0%}"
            if r.ratio_range and r.scenario != "healthz" else "-"
        )  # fmt: skip
        errors = r.socket_errors + r.timeouts
        flag = " **(errors)**" if r.flagged else ""
        lines.append(
            f"| {r.database} | {r.connections} | `{LABELS[r.scenario]}`{flag} | {r.rps:,.0f} "
            f"| {r.p50_ms:.1f} | {r.p99_ms:.1f} | {ratio} | {spread} | {r.non_2xx} | {errors} | "
            + _cpu_cells(r)
        )
    return "\n".join(lines)


def rounds_table(results: list[Result]) -> str:
    """Every run, round by round."""
    lines = [
        "| Database | Conns | Round | Request | req/s | p50 ms | p99 ms | vs /healthz "
        "| server CPU | CPU ms/req | rest of machine (cores) | stolen (cores) |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio = f"{r.ratio:.0%}" if r.ratio is not None else "-"
        flag = " **(errors)**" if r.flagged else ""
        lines.append(
            f"| {r.database} | {r.connections} | {r.round} | `{LABELS[r.scenario]}`{flag} "
            f"| {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {ratio} | " + _cpu_cells(r)
        )
    return "\n".join(lines)


def target_lines(results: list[Result]) -> tuple[list[str], int, int]:
    lines, met, total = [], 0, 0
    names = {"read": "Authorized read", "introspect": "Introspection", "write": "Record write"}
    for scenario, share in RATIO_TARGETS.items():
        for r in (x for x in results if x.scenario == scenario and x.ratio is not None):
            ok = r.ratio is not None and r.ratio >= share
            met, total = met + ok, total + 1
            lines.append(
                f"- {names[scenario]} >= {share:.0%} of /healthz, {r.database}, "
                f"{r.connections} connections: {r.ratio:.0%} — **{'met' if ok else 'NOT met'}**"
            )
    for r in results:
        if r.scenario == "read" and r.connections == READ_P99_CONNECTIONS:
            ok = r.requests > 0 and r.p99_ms <= READ_P99_TARGET_MS
            met, total = met + ok, total + 1
            lines.append(
                f"- Authorized read p99 <= {READ_P99_TARGET_MS:.0f} ms at "
                f"{READ_P99_CONNECTIONS} connections, {r.database}: {r.p99_ms:.1f} ms — "
                f"**{'met' if ok else 'NOT met'}**"
            )
    return lines, met, total


def run_problems(r: Result) -> list[str]:
    """What went wrong in one run, in words."""
    what = [f"{r.non_2xx} non-2xx"] if r.non_2xx else []
    if r.socket_errors:
        what.append(f"{r.socket_errors} socket errors")
    if r.timeouts:
        what.append(f"{r.timeouts} timeouts (> 30 s)")
    if r.wraps:
        what.append(f"{r.wraps} assertions reused (the prepared file ran out)")
    if not r.requests:
        what.append(f"no request completed within the {r.connections}-connection run")
    if r.restarted:
        what.append(
            f"{DRAIN_WAIT_SECONDS:.0f} s after the run the server still did not answer "
            "promptly (requests stuck), so it was restarted before the next run"
        )
    elif r.drain_seconds > DRAIN_FLAG_SECONDS:
        what.append(
            f"after the run the server needed {r.drain_seconds:.0f} s to answer "
            "promptly again (requests were still stuck)"
        )
    return what


def error_lines(results: list[Result], backends: list[Backend], skipped: list[str]) -> list[str]:
    lines = []
    for r in (x for x in results if x.flagged):
        sample = f"; first non-2xx: `{r.sample}`" if r.sample else ""
        lines.append(
            f"- {r.database}, {r.connections} connections, `{LABELS[r.scenario]}`: "
            f"{', '.join(run_problems(r))}{sample}"
        )
    for backend in backends:
        for problem in (x for x in backend.server_problems if NOTE_MARK not in x):
            if "\n" in problem:
                lines.append(f"- {backend.name} server log:\n\n```\n{problem}\n```")
            else:
                lines.append(f"- {backend.name} server log: {problem}")
    lines.extend(f"- {reason}" for reason in skipped)
    if len({b.code for b in backends if b.code}) > 1:
        lines.append(
            "- The application code changed between the databases' runs (see Code above): "
            "the SQLite and PostgreSQL figures are not of the same code."
        )
    return lines


BUSY_CORES = 0.5  # the rest of the machine, beyond PostgreSQL's own share


def busy_notes(results: list[Result]) -> list[str]:
    """Runs during which something other than the server and wrk was busy."""
    busy = [
        f"{r.database} {r.connections}/{r.scenario} ({r.cpu.other_cores:.2f})"
        for r in results
        if r.cpu and r.cpu.other_cores > (BUSY_CORES if r.database == "SQLite" else 0.8)
    ]
    if not busy:
        return []
    return [
        "- Other processes were busy during these runs (rest of machine, in cores; "
        "PostgreSQL's own share is about 0.3): " + ", ".join(busy) + ". Their figures are "
        "likely pessimistic."
    ]


def machine_info(backends: list[Backend], tools: Tools) -> list[tuple[str, str]]:
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    model = next(
        (x.split(":", 1)[1].strip() for x in cpuinfo.splitlines() if x.startswith("model name")),
        "unknown",
    )
    meminfo = Path("/proc/meminfo").read_text(encoding="utf-8")
    kib = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))  # type: ignore[union-attr]
    wrk_version = run_quiet([tools.wrk, "--version"]).stdout.split(" [")[0].strip()
    info = [
        ("Date", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("nproc", str(tools.cores)),
        ("CPU", model),
        ("Memory", f"{kib / 1024 / 1024:.1f} GiB"),
        ("Python", sys.version.split()[0]),
        ("SQLite", sqlite3.sqlite_version),
    ]
    info += [(f"{b.name} server", b.version) for b in backends if b.kind == "postgresql"]
    threads = getattr(Settings(), "worker_threads", None)
    server_settings = "defaults" + (f" (worker_threads {threads})" if threads else "")
    if raised_limits():
        server_settings += "; " + ", ".join(f"{k}={v}" for k, v in raised_limits().items())
    info += [
        ("Server settings", server_settings),
        ("wrk", wrk_version),
        ("Pinning", tools.pinning),
    ]
    codes = {b.code for b in backends if b.code}
    if len(codes) == 1:
        info.append(("Code", codes.pop()))
    else:
        info += [(f"Code for the {b.name} runs", b.code or "-") for b in backends]
    return info


def doc_path(cfg: Config) -> Path:
    """docs/benchmarks.md, except for a partial run (``Config.partial``), whose document
    goes into the kept temporary directory instead."""
    if cfg.partial and cfg.tmp is not None:
        return cfg.tmp / "benchmarks.md"
    return DOC


def write_doc(cfg: Config, tools: Tools, backends: list[Backend], results: list[Result],
              skipped: list[str], seed_timings: dict[str, float],
              ) -> tuple[str, int, int, list[str]]:  # fmt: skip
    summary = medians(results)
    targets, met, total = target_lines(summary)
    errors = error_lines(results, backends, skipped)
    notes = [
        f"- {b.name} server log: {problem}"
        for b in backends
        for problem in b.server_problems
        if NOTE_MARK in problem
    ] + busy_notes(results)
    records = sum(len(p.records) for p in backends[0].people) if backends else 0
    people = len(backends[0].people) if backends else 0
    services = seed_timings.get("services", 0)
    rate = f"{records / services:,.0f} records a second" if services else "-"
    shared = (
        f"Once for both databases: {people:,} young people and {records:,} records through "
        f"`vault.service` in {cfg.seed_workers} processes: **{services:.1f} s** ({rate}); "
        f"merging the shards into the SQLite database: {seed_timings.get('merge', 0):.1f} s"
    )
    if "postgresql copy" in seed_timings:
        shared += f"; copying the rows into PostgreSQL: {seed_timings['postgresql copy']:.1f} s"
    seeding = [
        f"| Then, in each database | {' | '.join(b.name for b in backends)} |",
        f"|---|{'---:|' * len(backends)}",
    ]
    for step, label in (
        ("codes", "Connection codes (`grants.service.make_code`, in-process)"),
        ("backchannel", "CIBA backchannel requests (HTTP)"),
        ("approve", "Approvals (`grants.service.approve`, in-process)"),
        ("tokens", "Token polls (HTTP, CIBA grant)"),
    ):
        seeding.append(
            f"| {label} | " + " | ".join(f"{b.timings.get(step, 0):.1f} s" for b in backends) + " |"
        )
    access_log = any(b.access_logged for b in backends)
    verdict = f"**{met} of {total} targets met.**" if total else "No targets could be evaluated."
    machine = "\n".join(f"| {k} | {v} |" for k, v in machine_info(backends, tools))
    doc = f"""# Benchmarks

Written by `make bench` (`bench/run.py`); the next run replaces this file.

## Machine

| | |
|---|---|
{machine}

## What was run

For each database, a fresh data directory and database migrated with `storykeep db
upgrade`, then `storykeep serve` on {HOST} as its own process. {cfg.young_people:,} young
people with {cfg.records} records each (about 2 KB of body; categories education, health,
care plan and social work in turn) were made once through `vault.service`
(`create_young_person`, `add_record`), {cfg.seed_batch} young people per transaction, in
{cfg.seed_workers} processes each writing its own SQLite file; the files were merged into
the SQLite database and the same rows copied into PostgreSQL (SQLAlchemy Core, table by
table), so both databases hold identical vaults under one set of keys. Nothing of the
grants domain was copied: in each database one agency and its private_key_jwt (ES256)
client were registered through `grants.service`, each young person got a connection code
(`grants.service.make_code`), each code went into a real CIBA backchannel request over
HTTP, and each young person approved in-process (`grants.service.approve`): every
{cfg.write_every}th grant `["read", "write"]` on education, the rest `["read"]` on
education, health and care plan. Access tokens came from the real token endpoint (CIBA
poll) just before the load.

wrk ({WRK_THREADS} threads, `--timeout 30s`, script `bench/rotate.lua`) ran each request for
{cfg.seconds} s at each connection count, all four in turn, {cfg.rounds} round(s) of them:

- `GET /healthz`: the baseline (no database or key work);
- authorized read: `GET /api/v1/vaults/{{handle}}/records/{{id}}` with a bearer token,
  rotating over {READS_PER_TOKEN} readable records for each read-only token;
- introspection: `POST /oauth/introspect` with a freshly signed client assertion (unused
  jti, aud = the issuer) per request, rotating over the read tokens;
- record write: `POST /api/v1/vaults/{{handle}}/records` (JSON, about 2 KB body) with the
  write grants' tokens.

"vs /healthz" is throughput as a share of `/healthz` at the same database, connection
count and round. The table below gives each request's median round: its median ratio
(the range over the rounds beside it), with p50 and p99 the medians over the rounds. Every
round is listed further down. On a shared virtual machine the same code's throughput can
move by a third within minutes, `/healthz` included, so one run of each would be a
lottery near a target line. Latencies are wrk's (p50 and p99 from its latency distribution). "server CPU" is
the server process's CPU time over the run's wall time (100% = one core flat out; it is
pinned to one core), "CPU ms/req" that CPU time per completed request, and "rest of
machine" the busy CPU of everything else but wrk (PostgreSQL and any other process), in
cores. "stolen" is CPU time the machine wanted but the hypervisor gave to another tenant
(`steal` in `/proc/stat`), in cores: where it is high, that run's figures are pessimistic.
{"The server logged every request (uvicorn's access log), as `storykeep serve` does. " if access_log else ""}PostgreSQL itself is not pinned and shares the cores with the server and wrk. Its
settings that matter are in the Machine table: with autovacuum off no table is ever
analysed, so PostgreSQL plans every statement without statistics. The hot path's
statements find their rows by key whatever the statistics
(`tests/grants/test_hot_path_plans.py`). Other processes on the machine were not stopped:
see the load averages above.

## Seeding

{shared}.

{chr(10).join(seeding)}

Backchannel requests and token polls are HTTP calls to the running server, 4 at a time.

## Results

{results_table(summary)}

## Targets (from the issue)

{chr(10).join(targets) if targets else "- none evaluated"}

{verdict}

## Every round

{rounds_table(results)}

## Errors

{chr(10).join(errors) if errors else "None: every response was 2xx, wrk saw no socket errors or timeouts, and the server logged no 5xx or traceback."}
{chr(10) + "Not counted as errors:" + chr(10) + chr(10) + chr(10).join(notes) + chr(10) if notes else ""}"""  # noqa: E501 - one long sentence reads better than a broken f-string
    doc_path(cfg).write_text(doc, encoding="utf-8")
    return verdict, met, total, errors


# -- main ----------------------------------------------------------------------------------------
def prepare_backends(cfg: Config, tmp: Path) -> tuple[list[Backend], Engine | None, list[str]]:
    backends: list[Backend] = []
    skipped: list[str] = []
    admin: Engine | None = None
    for kind in cfg.databases:
        data_dir = tmp / kind
        data_dir.mkdir(mode=0o700)
        if kind == "sqlite":
            url = f"sqlite:///{data_dir / 'storykeep.db'}"
            backends.append(Backend(kind, url, data_dir, free_port()))
            continue
        try:
            admin, version = pg_admin_engine(cfg)
        except BenchError as exc:
            skipped.append(f"PostgreSQL was skipped: {exc}")
            log(skipped[-1])
            continue
        recreate_pg_database(admin)
        url = make_url(admin.url).set(database=PG_DATABASE).render_as_string(hide_password=False)
        backend = Backend(kind, url, data_dir, free_port())
        backend.version = version
        backends.append(backend)
    return backends, admin, skipped


def clean_up(backends: list[Backend], admin: Engine | None, tmp: Path, keep: bool) -> None:
    for backend in backends:
        if backend.services is not None:
            backend.services.engine.dispose()
    if admin is not None:
        drop_pg_database(admin)
        admin.dispose()
    if keep:
        log(f"kept {tmp} (server logs, databases, request files, profiles)")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def print_report(cfg: Config, results: list[Result], verdict: str, errors: list[str]) -> int:
    summary = medians(results)
    print()
    print(results_table(summary))
    print()
    for line in target_lines(summary)[0]:
        print(line)
    print(verdict)
    print(f"\nWritten to {doc_path(cfg)}.")
    if not errors:
        return 0
    print("\nERRORS were seen (also in the Errors section of the document):")
    for line in errors:
        print(line)
    return 1


def main() -> int:
    cfg = Config.from_env()
    tools = find_tools()
    if cfg.pyspy and not (BIN / "py-spy").exists():
        raise BenchError("BENCH_PYSPY=1 needs py-spy in the venv: .venv/bin/pip install py-spy")
    tmp = Path(tempfile.mkdtemp(prefix="storykeep-bench-"))
    cfg = dataclasses.replace(cfg, tmp=tmp)
    log(
        f"working in {tmp}; {cfg.seconds} s per run at {cfg.connections} connections, "
        f"{cfg.rounds} round(s)"
    )
    admin: Engine | None = None
    backends: list[Backend] = []
    results: list[Result] = []
    keep = cfg.keep or cfg.pyspy or cfg.partial
    try:
        backends, admin, skipped = prepare_backends(cfg, tmp)
        for backend in backends:
            migrate(backend)
        people, seed_timings = seed(cfg, tmp, backends)
        for backend in backends:
            backend.people = people
            register_agency(backend)
            make_codes(cfg, backend)
        for backend in backends:
            results += bench_backend(cfg, tools, backend)
        add_ratios(results)
        verdict, _, _, errors = write_doc(cfg, tools, backends, results, skipped, seed_timings)
        keep = keep or bool(errors)
    except BaseException:
        keep = True
        raise
    finally:
        clean_up(backends, admin, tmp, keep)
    return print_report(cfg, results, verdict, errors)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        sys.exit(1)
