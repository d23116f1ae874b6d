"""SECURITY.md, "Durability": kill -9 the server mid-write, mid-revoke or mid-append;
nothing acknowledged is lost, a revocation and its audit entry land together or not at
all, and the integrity check and `audit verify` pass afterwards."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import text

from app.container import Services
from tests.conftest import PASSWORD, add_record
from tests.live import signed_in_headers, start_server

AGENCY = "Example High School"
PURPOSE = "education_support"
CIBA = "urn:openid:params:grant-type:ciba"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TEACHER = {"name": "Jo Bloggs", "role": "guidance teacher", "email": "jo.bloggs@example.org"}


def test_kill_9_mid_write_loses_nothing_acknowledged(
    env: dict[str, str], services: Services, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    process, base = start_server(env, log)
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    with httpx.Client(base_url=base, timeout=10) as http:
        http.post("/api/v1/accounts", json={"username": "robin", "password": PASSWORD})
        headers = signed_in_headers(http, "robin", PASSWORD)

    def writer(worker: int) -> None:
        with httpx.Client(base_url=base, timeout=5) as client:
            for n in range(10_000):  # bounded; the kill ends it long before
                if stop.is_set():
                    return
                try:
                    response = client.post(
                        "/api/v1/me/entries",
                        json={"title": f"w{worker}-{n}", "body": "durable?"},
                        headers=headers,
                    )
                except httpx.TransportError:
                    return  # the server died under us, as intended
                if response.status_code == 201:
                    with lock:
                        acknowledged.append(response.json()["id"])

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.kill()  # SIGKILL: no shutdown handlers, no flush, mid-request
    process.wait(timeout=10)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    assert len(acknowledged) >= 40, log.read_text()

    process, base = start_server(env, log)
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            headers = signed_in_headers(http, "robin", PASSWORD)
            stored = {e["id"] for e in http.get("/api/v1/me/entries", headers=headers).json()}
            assert set(acknowledged) <= stored
            events = audit_events(http, headers)
    finally:
        process.terminate()
        process.wait(timeout=15)
    created = [e for e in events if e["action"] == "entry:created"]
    assert len(created) == len(stored)  # every stored entry has its audit event, and vice versa
    assert_verify_and_integrity(env, services)


# -- an agency's system and young people over real HTTP, as in tests/grants/test_live_oauth.py ----
def cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


@dataclass
class Agency:
    """The agency's system: a private_key_jwt client the operator registered by the CLI."""

    issuer: str
    client_id: str
    key: ECKey

    def post(self, http: httpx.Client, path: str, data: dict[str, str]) -> httpx.Response:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.issuer,
            "iat": now,
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
        }
        assertion = jwt.encode({"alg": "ES256", "kid": self.key.kid}, claims, self.key)
        form = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion, **data}
        return http.post(path, data=form)


def register_agency(env: dict[str, str], services: Services, tmp_path: Path) -> Agency:
    key = ECKey.generate_key("P-256")
    jwks = tmp_path / "agency-jwks.json"
    jwks.write_text(json.dumps(KeySet([key]).as_dict(private=False)), encoding="utf-8")
    cli(env, "agency", "add", AGENCY, "--purpose", PURPOSE)
    registered = cli(env, "client", "add", "--agency", AGENCY, "--jwks", str(jwks))
    return Agency(services.settings.issuer, str(registered["client_id"]), key)


def connect(
    http: httpx.Client, agency: Agency, headers: dict[str, str], actions: list[str]
) -> dict[str, Any]:
    """Connection code, CIBA backchannel request, the young person's OK, poll: tokens."""
    made = http.post("/api/v1/me/connection-codes", headers=headers)
    assert made.status_code == 201, made.text
    details = [
        {
            "type": "storykeep_records",
            "actions": actions,
            "categories": ["education"],
            "purpose": PURPOSE,
            "duration_days": 30,
        }
    ]
    asked = agency.post(
        http,
        "/oauth/backchannel",
        {
            "login_hint": made.json()["code"],
            "authorization_details": json.dumps(details),
            "practitioner": json.dumps(TEACHER),
        },
    )
    assert asked.status_code == 200, asked.text
    pending = [
        r
        for r in http.get("/api/v1/me/requests", headers=headers).json()
        if r["status"] == "pending"
    ]
    assert len(pending) == 1, pending
    approved = http.post(
        f"/api/v1/me/requests/{pending[0]['id']}/approve", json={}, headers=headers
    )
    assert approved.status_code == 200, approved.text
    tokens = agency.post(
        http, "/oauth/token", {"grant_type": CIBA, "auth_req_id": asked.json()["auth_req_id"]}
    )
    assert tokens.status_code == 200, tokens.text
    return dict(tokens.json())


def audit_events(http: httpx.Client, headers: dict[str, str]) -> list[dict[str, Any]]:
    """The young person's whole audit log, every page."""
    events: list[dict[str, Any]] = []
    params: dict[str, int] = {"limit": 200}
    while True:
        page = http.get("/api/v1/me/audit", params=params, headers=headers).json()
        events += page["events"]
        if page["next_before"] is None:
            return events
        params["before"] = page["next_before"]


def assert_verify_and_integrity(env: dict[str, str], services: Services) -> None:
    verify = subprocess.run(
        [sys.executable, "-m", "app.cli", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    if services.settings.is_sqlite:
        with services.engine.connect() as conn:
            assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"


def hex_id(value: str) -> str:
    return uuid.UUID(value).hex


PEOPLE = ("robin", "sam")
GRANTS_EACH = 8


def test_kill_9_mid_revoke_keeps_each_revocation_with_its_audit_entry(
    env: dict[str, str], services: Services, tmp_path: Path
) -> None:
    """Young people stop sharing one grant after another while the agency's system keeps
    reading through the group committer; the server is killed partway. Afterwards each
    revocation and its `grant:revoked` entry are both there or both missing, every
    acknowledged revocation is there, and every acknowledged read has its `record:read`."""
    server_env = {**env, "STORYKEEP_CIBA_POLL_INTERVAL_SECONDS": "1"}
    log = tmp_path / "serve.log"
    agency = register_agency(env, services, tmp_path)
    process, base = start_server(server_env, log)
    # person -> [(grant id hex, vault handle, access token)]
    grants: dict[str, list[tuple[str, str, str]]] = {}
    headers_of: dict[str, dict[str, str]] = {}
    with httpx.Client(base_url=base, timeout=10) as http:
        for person in PEOPLE:
            made = http.post("/api/v1/accounts", json={"username": person, "password": PASSWORD})
            assert made.status_code == 201, made.text
            headers_of[person] = signed_in_headers(http, person, PASSWORD)
            # One record in the grant's category, so each list read logs one record:read.
            add_record(services, person, category="education", title=f"{person}'s report")
            grants[person] = []
            for _ in range(GRANTS_EACH):
                tokens = connect(http, agency, headers_of[person], ["read"])
                grants[person].append(
                    (hex_id(tokens["grant_id"]), tokens["vault_handle"], tokens["access_token"])
                )
    every = [g for person in PEOPLE for g in grants[person]]

    revoked_ok: list[str] = []  # acknowledged revocations (200)
    took_s: list[float] = []  # how long each acknowledged revocation took
    sent_at: dict[str, float | None] = dict.fromkeys(PEOPLE)  # a revocation in flight since
    reads_ok: Counter[str] = Counter()  # acknowledged reads (200), per grant
    lock = threading.Lock()
    stop = threading.Event()

    def revoker(person: str) -> None:
        with httpx.Client(base_url=base, timeout=5) as client:
            for grant_id, _handle, _token in grants[person]:
                if stop.is_set():
                    return
                started = sent_at[person] = time.monotonic()
                try:
                    response = client.post(
                        f"/api/v1/me/grants/{uuid.UUID(grant_id)}/revoke",
                        headers=headers_of[person],
                    )
                except httpx.TransportError:
                    return  # the server died under us, as intended
                took, sent_at[person] = time.monotonic() - started, None
                if response.status_code == 200:
                    with lock:
                        revoked_ok.append(grant_id)
                        took_s.append(took)
                time.sleep(0.05)  # leave reads time to run between revocations

    def reader(worker: int) -> None:
        with httpx.Client(base_url=base, timeout=5) as client:
            for n in range(100_000):  # bounded; the kill ends it long before
                if stop.is_set():
                    return
                grant_id, handle, token = every[(n + worker * 5) % len(every)]
                try:
                    response = client.get(
                        f"/api/v1/vaults/{handle}/records",
                        headers={"authorization": f"Bearer {token}"},
                    )
                except httpx.TransportError:
                    return
                if response.status_code == 200:
                    with lock:
                        reads_ok[grant_id] += 1

    threads = [threading.Thread(target=revoker, args=(p,)) for p in PEOPLE]
    threads += [threading.Thread(target=reader, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    half = len(every) // 2
    while len(revoked_ok) < half and time.monotonic() < deadline:
        time.sleep(0.01)

    # Kill halfway through a revocation: one in flight for half as long as a revocation
    # usually takes, so the server is inside it (the lock, the update, the audit append).
    halfway = statistics.median(took_s) / 2 if took_s else 0.0

    def revoking() -> bool:
        now = time.monotonic()
        return any(t is not None and now - t > halfway for t in sent_at.values())

    while not revoking() and time.monotonic() < deadline:
        time.sleep(0.002)
    process.kill()  # SIGKILL mid-revoke and mid-read: no shutdown handlers, no flush
    process.wait(timeout=10)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    assert len(revoked_ok) >= half, log.read_text()
    assert sum(reads_ok.values()) >= 20, log.read_text()

    # What the database holds, read straight from it (the young person's list below too).
    with services.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, revoked_at FROM access_grant")).all()
    revoked_in_db = {uuid.UUID(str(r[0])).hex for r in rows if r[1] is not None}
    assert len(rows) == len(every)

    process, base = start_server(server_env, log)
    try:
        events: list[dict[str, Any]] = []
        listed_revoked: set[str] = set()
        with httpx.Client(base_url=base, timeout=10) as http:
            for person in PEOPLE:
                headers = signed_in_headers(http, person, PASSWORD)
                for grant in http.get("/api/v1/me/grants", headers=headers).json():
                    if grant["revoked_at"] is not None:
                        listed_revoked.add(hex_id(grant["id"]))
                events += audit_events(http, headers)
            # Tokens of revoked grants are dead after the restart; the others still work.
            for grant_id, handle, token in every:
                call = http.get(
                    f"/api/v1/vaults/{handle}/records",
                    headers={"authorization": f"Bearer {token}"},
                )
                assert call.status_code == (401 if grant_id in revoked_in_db else 200), call.text
    finally:
        process.terminate()
        process.wait(timeout=15)

    assert listed_revoked == revoked_in_db
    assert set(revoked_ok) <= revoked_in_db  # nothing acknowledged is lost
    assert len(revoked_in_db) < len(every), "the kill came after every revocation"
    logged = Counter(e["object_id"] for e in events if e["action"] == "grant:revoked")
    # Together or not at all: each revoked grant has exactly one entry, no other has one.
    assert {g: logged[g] for g in revoked_in_db} == dict.fromkeys(revoked_in_db, 1)
    assert set(logged) == revoked_in_db
    reads_logged = Counter(e["grant_id"] for e in events if e["action"] == "record:read")
    for grant_id, acknowledged in reads_ok.items():
        assert reads_logged[grant_id] >= acknowledged, grant_id
    assert_verify_and_integrity(env, services)


def test_kill_9_mid_agency_write_loses_no_acknowledged_record(
    env: dict[str, str], services: Services, tmp_path: Path
) -> None:
    """An agency's system adds records through the group committer; kill -9 partway. Every
    record it was told was added (201) is there after the restart, with its `record:added`."""
    server_env = {**env, "STORYKEEP_CIBA_POLL_INTERVAL_SECONDS": "1"}
    log = tmp_path / "serve.log"
    agency = register_agency(env, services, tmp_path)
    process, base = start_server(server_env, log)
    with httpx.Client(base_url=base, timeout=10) as http:
        made = http.post("/api/v1/accounts", json={"username": "robin", "password": PASSWORD})
        assert made.status_code == 201, made.text
        headers = signed_in_headers(http, "robin", PASSWORD)
        tokens = connect(http, agency, headers, ["read", "write"])
    handle, bearer = tokens["vault_handle"], {"authorization": f"Bearer {tokens['access_token']}"}
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(worker: int) -> None:
        with httpx.Client(base_url=base, timeout=5) as client:
            for n in range(10_000):  # bounded; the kill ends it long before
                if stop.is_set():
                    return
                try:
                    response = client.post(
                        f"/api/v1/vaults/{handle}/records",
                        json={"category": "education", "title": f"w{worker}-{n}", "body": "ok?"},
                        headers=bearer,
                    )
                except httpx.TransportError:
                    return  # the server died under us, as intended
                if response.status_code == 201:
                    with lock:
                        acknowledged.append(hex_id(response.json()["id"]))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.kill()  # SIGKILL: no shutdown handlers, no flush, mid-request
    process.wait(timeout=10)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    assert len(acknowledged) >= 40, log.read_text()

    process, base = start_server(server_env, log)
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            headers = signed_in_headers(http, "robin", PASSWORD)
            stored = {
                hex_id(r["id"]) for r in http.get("/api/v1/me/records", headers=headers).json()
            }
            events = audit_events(http, headers)
    finally:
        process.terminate()
        process.wait(timeout=15)
    assert set(acknowledged) <= stored
    added = Counter(e["object_id"] for e in events if e["action"] == "record:added")
    assert added == Counter(stored)  # every stored record has one audit entry, and vice versa
    assert_verify_and_integrity(env, services)
