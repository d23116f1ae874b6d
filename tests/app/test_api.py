"""The young person's JSON API, over HTTP, including the attacks SECURITY.md names."""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.container import Services
from tests.conftest import PASSWORD, add_record, run_sql, sign_in, sign_up
from vault.db_types import utcnow


def tiny_png() -> bytes:
    """A real 1x1 PNG, built here so the test ships no binary files."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


def entry(client: TestClient, csrf: str, **fields: object) -> dict[str, object]:
    body = {"title": "My first day", "body": "It went fine.", "shareable": False, **fields}
    response = client.post("/api/v1/me/entries", json=body, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 201, response.text
    return dict(response.json())


def count(services: Services, table: str) -> int:
    return int(run_sql(services, f"SELECT count(*) FROM {table}")[0][0])


class TestSignUpAndIn:
    def test_sign_up_needs_only_username_and_password(self, client: TestClient) -> None:
        response = client.post("/api/v1/accounts", json={"username": "Robin", "password": PASSWORD})
        assert response.status_code == 201
        assert response.json()["username"] == "robin"
        assert set(response.json()) == {"id", "username", "created_at"}

    def test_taken_username(self, client: TestClient) -> None:
        sign_up(client, "robin")
        response = client.post("/api/v1/accounts", json={"username": "ROBIN", "password": PASSWORD})
        assert response.status_code == 409
        assert "taken" in response.json()["detail"]

    @pytest.mark.parametrize(
        ("username", "password"),
        [("ab", PASSWORD), ("has space", PASSWORD), ("ok_name", "short"), ("-dash", PASSWORD)],
    )
    def test_bad_credentials_rejected_and_nothing_made(
        self, client: TestClient, services: Services, username: str, password: str
    ) -> None:
        response = client.post(
            "/api/v1/accounts", json={"username": username, "password": password}
        )
        assert response.status_code == 422
        assert response.json()["error"] == "invalid_input"
        assert count(services, "young_person") == 0
        assert count(services, "vault") == 0

    def test_cookie_is_secure_httponly_samesite(self, client: TestClient) -> None:
        client.post("/api/v1/accounts", json={"username": "robin", "password": PASSWORD})
        response = client.post(
            "/api/v1/me/session", json={"username": "robin", "password": PASSWORD}
        )
        cookie = response.headers["set-cookie"].lower()
        assert "storykeep_session=" in cookie
        assert "secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie

    def test_wrong_password_and_unknown_user_look_the_same(self, client: TestClient) -> None:
        sign_up(client, "robin")
        client.cookies.clear()
        wrong = client.post(
            "/api/v1/me/session", json={"username": "robin", "password": "nope-nope"}
        )
        unknown = client.post(
            "/api/v1/me/session", json={"username": "nobody", "password": "nope-nope"}
        )
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json() == unknown.json()
        assert "set-cookie" not in wrong.headers

    def test_password_hashed_with_argon2id(self, client: TestClient, services: Services) -> None:
        sign_up(client, "robin")
        (stored,) = run_sql(services, "SELECT password_hash FROM young_person")[0]
        assert stored.startswith("$argon2id$") and PASSWORD not in stored

    def test_sign_in_is_rate_limited_per_account(
        self, client: TestClient, services: Services
    ) -> None:
        services.settings.login_max_failures_per_account = 3
        sign_up(client, "robin")
        client.cookies.clear()
        for _ in range(3):
            bad = client.post(
                "/api/v1/me/session", json={"username": "robin", "password": "wrong-one"}
            )
            assert bad.status_code == 401
        blocked = client.post(
            "/api/v1/me/session", json={"username": "robin", "password": PASSWORD}
        )
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) > 0
        # The counter lives in the database (shared by every worker), keyed by HMAC.
        keys = [row[0] for row in run_sql(services, "SELECT key FROM sign_in_throttle")]
        assert keys and all("robin" not in key and "testclient" not in key for key in keys)

    def test_sign_in_is_rate_limited_per_address(
        self, client: TestClient, services: Services
    ) -> None:
        services.settings.login_max_failures_per_address = 4
        for name in ("one", "two", "three", "four"):
            response = client.post(
                "/api/v1/me/session", json={"username": name, "password": "x" * 9}
            )
            assert response.status_code == 401
        assert (
            client.post(
                "/api/v1/me/session", json={"username": "five", "password": "x" * 9}
            ).status_code
            == 429
        )

    def test_sign_in_failures_from_one_ipv6_network_count_together(
        self, app: Any, services: Services
    ) -> None:
        """A host may use any address in its /64 (RFC 7934), so a fresh IPv6 address for
        every guess must not reset the count; another /64 has its own."""
        services.settings.login_max_failures_per_address = 4

        def sign_in_from(address: str, name: str) -> int:
            with TestClient(app, base_url="https://testserver", client=(address, 5000)) as http:
                body = {"username": name, "password": "x" * 9}
                return http.post("/api/v1/me/session", json=body).status_code

        for n, name in enumerate(("one", "two", "three", "four"), start=1):
            assert sign_in_from(f"2001:db8:1:2::{n}", name) == 401
        assert sign_in_from("2001:db8:1:2:ffff:ffff:ffff:ffff", "five") == 429
        assert sign_in_from("2001:db8:1:3::1", "five") == 401  # the next /64 along
        # One IPv4 client is one counter, written either way.
        for n in range(4):
            assert sign_in_from("::ffff:203.0.113.7" if n % 2 else "203.0.113.7", "six") == 401
        assert sign_in_from("203.0.113.7", "seven") == 429
        assert sign_in_from("203.0.113.8", "seven") == 401

    def test_sign_out_ends_the_session(self, client: TestClient, csrf: str) -> None:
        assert (
            client.delete("/api/v1/me/session", headers={"X-CSRF-Token": csrf}).status_code == 204
        )
        cookie = "storykeep_session"
        assert cookie not in client.cookies
        # Even if someone kept the old cookie, it no longer works.
        assert client.get("/api/v1/me").status_code == 401

    def test_old_cookie_refused_after_sign_out(self, client: TestClient, csrf: str) -> None:
        token = client.cookies["storykeep_session"]
        client.delete("/api/v1/me/session", headers={"X-CSRF-Token": csrf})
        response = client.get("/api/v1/me", headers={"cookie": f"storykeep_session={token}"})
        assert response.status_code == 401

    def test_idle_session_expires(self, client: TestClient, services: Services, csrf: str) -> None:
        old = utcnow() - timedelta(minutes=services.settings.session_idle_minutes + 1)
        run_sql(
            services,
            "UPDATE web_session SET last_seen_at = :old",
            old=old.replace(tzinfo=None) if services.settings.is_sqlite else old,
        )
        assert client.get("/api/v1/me").status_code == 401

    def test_session_token_stored_only_as_hmac(
        self, client: TestClient, services: Services, csrf: str
    ) -> None:
        token = client.cookies["storykeep_session"]
        (stored,) = run_sql(services, "SELECT token_hash FROM web_session")[0]
        assert token not in stored and len(stored) == 64


class TestCsrf:
    def test_unsafe_call_without_token_is_refused_and_changes_nothing(
        self, client: TestClient, services: Services, csrf: str
    ) -> None:
        response = client.post("/api/v1/me/entries", json={"title": "x", "body": "y"})
        assert response.status_code == 403
        assert response.json()["error"] == "csrf_failed"
        wrong = client.post(
            "/api/v1/me/entries",
            json={"title": "x", "body": "y"},
            headers={"X-CSRF-Token": "0" * 64},
        )
        assert wrong.status_code == 403
        # A header is Latin-1 text on the wire: not ASCII, so no match (and no crash).
        latin = client.post(
            "/api/v1/me/entries",
            json={"title": "x", "body": "y"},
            headers={"X-CSRF-Token": "caf\u00e9".encode("latin-1")},  # type: ignore[dict-item]
        )
        assert latin.status_code == 403 and latin.json()["error"] == "csrf_failed"
        assert count(services, "story_entry") == 0

    def test_token_of_another_session_does_not_work(self, client: TestClient, app: object) -> None:
        other_csrf = sign_up(client, "sam")
        client.cookies.clear()
        sign_up(client, "alex")
        response = client.post(
            "/api/v1/me/entries", json={"title": "x"}, headers={"X-CSRF-Token": other_csrf}
        )
        assert response.status_code == 403


class TestEntries:
    def test_create_read_update_delete(self, client: TestClient, csrf: str) -> None:
        created = entry(client, csrf, title="Football", body="We won", shareable=True)
        entry_id = created["id"]
        assert created["shareable"] is True and created["version"] == 1
        assert client.get(f"/api/v1/me/entries/{entry_id}").json()["body"] == "We won"
        patched = client.patch(
            f"/api/v1/me/entries/{entry_id}",
            json={"body": "We won 3-2", "shareable": False},
            headers={"X-CSRF-Token": csrf},
        )
        assert patched.status_code == 200
        assert patched.json() | {"updated_at": None} == patched.json() | {
            "title": "Football",
            "body": "We won 3-2",
            "shareable": False,
            "version": 2,
            "updated_at": None,
        }
        listed = client.get("/api/v1/me/entries").json()
        assert [e["title"] for e in listed] == ["Football"]
        deleted = client.delete(f"/api/v1/me/entries/{entry_id}", headers={"X-CSRF-Token": csrf})
        assert deleted.status_code == 204
        assert client.get(f"/api/v1/me/entries/{entry_id}").status_code == 404

    def test_another_young_persons_entry_is_not_found(self, client: TestClient) -> None:
        sam_csrf = sign_up(client, "sam")
        sams = entry(client, sam_csrf, title="Sam's secret")
        client.cookies.clear()
        alex_csrf = sign_up(client, "alex")
        unknown = client.get("/api/v1/me/entries/00000000-0000-4000-8000-000000000000")
        for response in (
            client.get(f"/api/v1/me/entries/{sams['id']}"),
            client.patch(
                f"/api/v1/me/entries/{sams['id']}",
                json={"title": "mine now"},
                headers={"X-CSRF-Token": alex_csrf},
            ),
            client.delete(f"/api/v1/me/entries/{sams['id']}", headers={"X-CSRF-Token": alex_csrf}),
        ):
            assert response.status_code == 404
            assert response.json() == unknown.json()
        client.cookies.clear()
        sign_in(client, "sam")
        assert client.get(f"/api/v1/me/entries/{sams['id']}").json()["title"] == "Sam's secret"

    @pytest.mark.parametrize(
        "body",
        [
            {"title": "", "body": "x"},
            {"title": "x" * 201},
            {"title": "ok", "body": "x" * 20_001},
            {"title": "ok", "shareable": "perhaps"},
            {"title": "bad\x00byte"},
            {"body": "no title"},
        ],
    )
    def test_bad_entries_rejected_clearly(
        self, client: TestClient, services: Services, csrf: str, body: dict[str, object]
    ) -> None:
        response = client.post("/api/v1/me/entries", json=body, headers={"X-CSRF-Token": csrf})
        assert response.status_code == 422
        assert response.json()["detail"]
        for value in body.values():  # nothing that was sent is echoed back
            if isinstance(value, str) and len(value) > 5:
                assert value not in response.text
        assert count(services, "story_entry") == 0

    def test_malformed_json_and_bad_ids(self, client: TestClient, csrf: str) -> None:
        response = client.post(
            "/api/v1/me/entries",
            content=b"{not json",
            headers={"X-CSRF-Token": csrf, "content-type": "application/json"},
        )
        assert response.status_code == 422
        assert client.get("/api/v1/me/entries/not-a-uuid").status_code == 422

    def test_oversized_body_refused(
        self, client: TestClient, services: Services, csrf: str
    ) -> None:
        huge = b"x" * (services.settings.max_request_bytes + 1)
        response = client.post(
            "/api/v1/me/entries",
            content=huge,
            headers={"X-CSRF-Token": csrf, "content-type": "application/json"},
        )
        assert response.status_code == 413
        assert response.headers["content-security-policy"]

    def test_oversized_body_refused_while_streaming(
        self, client: TestClient, services: Services, csrf: str
    ) -> None:
        """No Content-Length, and up to ten times the limit on offer: the server must stop
        pulling chunks just past the limit, not read everything and check afterwards."""
        limit = services.settings.max_request_bytes
        body = CountingBody(64 * 1024, chunks=10 * limit // (64 * 1024))
        headers = {"X-CSRF-Token": csrf, "content-type": "application/json"}
        assert stream_to_app(client, "POST", "/api/v1/me/entries", headers, body) == [413]
        assert limit < body.pulled <= limit + 2 * body.size
        assert count(services, "story_entry") == 0


def stream_to_app(
    client: TestClient, method: str, path: str, headers: dict[str, str], body: CountingBody
) -> list[int]:
    """Send ``body`` to the app the way an HTTP server does: one chunk per ``receive()``,
    pulled only when the app asks. (TestClient reads the whole body before it calls the
    app, so it cannot tell a server that stops early from one that reads everything.)
    Returns the statuses the app answered with, in the app's own event loop."""
    cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": method, "scheme": "https", "path": path, "raw_path": path.encode(),
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
        "server": ("testserver", 443),
        "headers": [
            (b"host", b"testserver"), (b"cookie", cookie.encode()),
            *((name.lower().encode(), value.encode()) for name, value in headers.items()),
        ],
    }  # fmt: skip
    chunks = iter(body)
    statuses: list[int] = []

    async def receive() -> dict[str, object]:
        chunk = next(chunks, None)
        return {"type": "http.request", "body": chunk or b"", "more_body": chunk is not None}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(int(message["status"]))  # type: ignore[call-overload]

    assert client.portal is not None  # inside the fixture's ``with TestClient(...)``
    client.portal.call(client.app, scope, receive, send)
    return statuses


class CountingBody:
    """A request body that counts the bytes the server pulled from it."""

    def __init__(self, size: int, chunks: int, first: bytes = b"") -> None:
        self.size, self.chunks, self.first, self.pulled = size, chunks, first, 0

    def __iter__(self) -> Iterator[bytes]:
        if self.first:
            self.pulled += len(self.first)
            yield self.first
        for _ in range(self.chunks):
            self.pulled += self.size
            yield b"\x00" * self.size


class TestPhotos:
    def test_upload_and_read_back(self, client: TestClient, csrf: str) -> None:
        created = entry(client, csrf)
        png = tiny_png()
        put = client.put(
            f"/api/v1/me/entries/{created['id']}/photo",
            content=png,
            headers={"X-CSRF-Token": csrf, "content-type": "image/png"},
        )
        assert put.status_code == 204, put.text
        got = client.get(f"/api/v1/me/entries/{created['id']}/photo")
        assert got.content == png and got.headers["content-type"] == "image/png"
        assert client.get(f"/api/v1/me/entries/{created['id']}").json()["has_photo"] is True
        # Editing the entry re-seals the photo (its associated data binds the version).
        client.patch(
            f"/api/v1/me/entries/{created['id']}",
            json={"title": "New"},
            headers={"X-CSRF-Token": csrf},
        )
        assert client.get(f"/api/v1/me/entries/{created['id']}/photo").content == png

    @pytest.mark.parametrize(
        ("content_type", "data"),
        [
            ("image/png", b"GIF89a not a png at all"),
            ("image/jpeg", tiny_png()),
            ("text/html", b"<script>alert(1)</script>"),
            ("image/svg+xml", b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
        ],
    )
    def test_wrong_type_refused(
        self, client: TestClient, services: Services, csrf: str, content_type: str, data: bytes
    ) -> None:
        created = entry(client, csrf)
        response = client.put(
            f"/api/v1/me/entries/{created['id']}/photo",
            content=data,
            headers={"X-CSRF-Token": csrf, "content-type": content_type},
        )
        assert response.status_code == 415
        assert count(services, "story_photo") == 0

    def test_oversized_refused_while_streaming(
        self, client: TestClient, services: Services, csrf: str
    ) -> None:
        services.settings.max_photo_bytes = 4096
        created = entry(client, csrf)

        # No Content-Length, so only streaming can catch it; a thousand times the limit on
        # offer, so a server reading it all before checking would pull every chunk.
        body = CountingBody(1024, chunks=4096, first=tiny_png())
        headers = {"X-CSRF-Token": csrf, "content-type": "image/png"}
        path = f"/api/v1/me/entries/{created['id']}/photo"
        assert stream_to_app(client, "PUT", path, headers, body) == [413]
        assert 4096 < body.pulled <= 4096 + 2 * 1024 + len(tiny_png())
        assert count(services, "story_photo") == 0

    def test_photo_of_another_persons_entry(self, client: TestClient) -> None:
        sams = entry(client, sign_up(client, "sam"))
        client.cookies.clear()
        csrf = sign_up(client, "alex")
        response = client.put(
            f"/api/v1/me/entries/{sams['id']}/photo",
            content=tiny_png(),
            headers={"X-CSRF-Token": csrf, "content-type": "image/png"},
        )
        assert response.status_code == 404


class TestRecords:
    def test_list_read_and_add_my_view(
        self, client: TestClient, services: Services, csrf: str
    ) -> None:
        record_id = add_record(services, "alex", body="Alex settled in well.")
        add_record(services, "alex", category="health", title="Check-up", body="All fine.")
        listed = client.get("/api/v1/me/records").json()
        assert {r["title"] for r in listed} == {"School report, June", "Check-up"}
        only_health = client.get("/api/v1/me/records", params={"category": "health"}).json()
        assert [r["title"] for r in only_health] == ["Check-up"]
        one = client.get(f"/api/v1/me/records/{record_id}").json()
        assert one["body"] == "Alex settled in well."
        assert one["agency"] == "Example High School" and one["shanarri"] == ["achieving"]
        note = client.post(
            f"/api/v1/me/records/{record_id}/notes",
            json={"body": "I worked hard for that."},
            headers={"X-CSRF-Token": csrf},
        )
        assert note.status_code == 201
        again = client.get(f"/api/v1/me/records/{record_id}").json()
        assert [n["body"] for n in again["notes"]] == ["I worked hard for that."]
        assert again["body"] == "Alex settled in well."  # the record itself is unchanged

    def test_records_are_read_only_for_young_person(
        self, client: TestClient, services: Services, csrf: str
    ) -> None:
        record_id = add_record(services, "alex")
        for method in ("put", "patch", "delete"):
            response = client.request(
                method,
                f"/api/v1/me/records/{record_id}",
                json={"body": "x"},
                headers={"X-CSRF-Token": csrf},
            )
            assert response.status_code == 405

    def test_another_persons_record(self, client: TestClient, services: Services) -> None:
        sign_up(client, "sam")
        sams_record = add_record(services, "sam")
        client.cookies.clear()
        csrf = sign_up(client, "alex")
        assert client.get(f"/api/v1/me/records/{sams_record}").status_code == 404
        note = client.post(
            f"/api/v1/me/records/{sams_record}/notes",
            json={"body": "x"},
            headers={"X-CSRF-Token": csrf},
        )
        assert note.status_code == 404
        assert count(services, "view_note") == 0
        assert client.get("/api/v1/me/records").json() == []

    def test_unknown_category(self, client: TestClient, csrf: str) -> None:
        response = client.get("/api/v1/me/records", params={"category": "gossip"})
        assert response.status_code == 422


class TestAuditTrail:
    def test_writes_are_logged_without_content(
        self, client: TestClient, services: Services, csrf: str
    ) -> None:
        created = entry(client, csrf, title="Very private title", body="Very private body")
        record_id = add_record(services, "alex")
        client.post(
            f"/api/v1/me/records/{record_id}/notes",
            json={"body": "private view"},
            headers={"X-CSRF-Token": csrf},
        )
        events = client.get("/api/v1/me/audit").json()["events"]
        assert [e["action"] for e in events] == [
            "note:added",
            "record:added",
            "entry:created",
            "vault:created",
        ]
        assert events[2]["object_id"] == created["id"].replace("-", "")
        assert events[1]["actor_type"] == "operator"
        dump = json.dumps(run_sql(services, "SELECT * FROM audit_event"), default=str)
        for secret in ("Very private", "private view", "Doing well"):
            assert secret not in dump

    def test_paging_with_cursor(self, client: TestClient, csrf: str) -> None:
        for i in range(5):
            entry(client, csrf, title=f"entry {i}")
        first = client.get("/api/v1/me/audit", params={"limit": 4}).json()
        assert len(first["events"]) == 4 and first["next_before"] is not None
        second = client.get(
            "/api/v1/me/audit", params={"limit": 4, "before": first["next_before"]}
        ).json()
        assert len(second["events"]) == 2 and second["next_before"] is None
        seqs = [e["seq"] for e in first["events"] + second["events"]]
        assert seqs == sorted(seqs, reverse=True) == list(range(6, 0, -1))

    @pytest.mark.parametrize(
        "params",
        [
            {"limit": 0}, {"limit": 500}, {"before": 0}, {"before": "x"},
            # Past the 32-bit seq column (PostgreSQL refused the parameter: a 500) and
            # past 64 bits (SQLite could not bind it: a 500).
            {"before": 2**31}, {"before": 2**63}, {"before": 10**22},
        ],
    )  # fmt: skip
    def test_bad_paging(self, client: TestClient, csrf: str, params: dict[str, object]) -> None:
        refused = client.get("/api/v1/me/audit", params=params)
        assert refused.status_code == 422 and refused.json()["error"] == "invalid_input"

    def test_the_last_cursor_a_sequence_number_can_be(self, client: TestClient, csrf: str) -> None:
        page = client.get("/api/v1/me/audit", params={"before": 2**31 - 1}).json()
        assert [e["action"] for e in page["events"]] == ["vault:created"]

    def test_only_own_audit(self, client: TestClient) -> None:
        entry(client, sign_up(client, "sam"))
        client.cookies.clear()
        sign_up(client, "alex")
        actions = [e["action"] for e in client.get("/api/v1/me/audit").json()["events"]]
        assert actions == ["vault:created"]


def make_session_old(services: Services) -> None:
    old = utcnow() - timedelta(minutes=services.settings.step_up_minutes + 1)
    run_sql(
        services,
        "UPDATE web_session SET authenticated_at = :old",
        old=old.replace(tzinfo=None) if services.settings.is_sqlite else old,
    )


class TestExport:
    def test_zip_has_everything_and_verifies(
        self, client: TestClient, services: Services, csrf: str
    ) -> None:
        created = entry(client, csrf, title="<b>My</b> story", body="I like <script>art</script>")
        client.put(
            f"/api/v1/me/entries/{created['id']}/photo",
            content=tiny_png(),
            headers={"X-CSRF-Token": csrf, "content-type": "image/png"},
        )
        record_id = add_record(services, "alex", body="Record body text")
        client.post(
            f"/api/v1/me/records/{record_id}/corrections",
            json={"body": "The date on this is wrong"},
            headers={"X-CSRF-Token": csrf},
        )
        response = client.get("/api/v1/me/export")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/zip"
        zf = zipfile.ZipFile(io.BytesIO(response.content))
        names = set(zf.namelist())
        assert {
            "data.json",
            "index.html",
            "README.txt",
            "audit/audit.json",
            "audit/public_key.pem",
            "audit/verify.py",
        } <= names
        data = json.loads(zf.read("data.json"))
        assert data["account"]["username"] == "alex"
        assert data["story"][0]["body"] == "I like <script>art</script>"
        assert data["records"][0]["body"] == "Record body text"
        assert [c["body"] for c in data["records"][0]["corrections"]] == [
            "The date on this is wrong"
        ]
        assert zf.read(data["story"][0]["photo"]) == tiny_png()
        html = zf.read("index.html").decode()
        assert "<script>" not in html and "&lt;script&gt;" in html and "Record body text" in html
        assert "I asked for a change" in html and "The date on this is wrong" in html
        audit = json.loads(zf.read("audit/audit.json"))
        assert audit["events"][-1]["action"] == "vault:exported"  # the export logs itself

    def test_export_needs_fresh_sign_in(
        self, client: TestClient, services: Services, csrf: str
    ) -> None:
        make_session_old(services)
        refused = client.get("/api/v1/me/export")
        assert refused.status_code == 401 and refused.json()["error"] == "step_up_required"
        wrong = client.post(
            "/api/v1/me/session/step-up",
            json={"password": "wrong-password"},
            headers={"X-CSRF-Token": csrf},
        )
        assert wrong.status_code == 401
        ok = client.post(
            "/api/v1/me/session/step-up",
            json={"password": PASSWORD},
            headers={"X-CSRF-Token": csrf},
        )
        assert ok.status_code == 200
        assert client.get("/api/v1/me/export").status_code == 200

    def test_step_up_is_throttled_per_account_not_for_everyone(
        self, client: TestClient, services: Services
    ) -> None:
        services.settings.login_max_failures_per_account = 2
        sam_csrf = sign_up(client, "sam")
        sam_cookie = client.cookies["storykeep_session"]
        client.cookies.clear()
        csrf = sign_up(client, "alex")
        for _ in range(2):
            assert (
                client.post(
                    "/api/v1/me/session/step-up",
                    json={"password": "wrong-one"},
                    headers={"X-CSRF-Token": csrf},
                ).status_code
                == 401
            )
        assert (
            client.post(
                "/api/v1/me/session/step-up",
                json={"password": PASSWORD},
                headers={"X-CSRF-Token": csrf},
            ).status_code
            == 429
        )
        client.cookies.clear()
        client.cookies.set("storykeep_session", sam_cookie)
        assert (
            client.post(
                "/api/v1/me/session/step-up",
                json={"password": PASSWORD},
                headers={"X-CSRF-Token": sam_csrf},
            ).status_code
            == 200
        )


class TestErasure:
    def test_delete_account(self, client: TestClient, services: Services, csrf: str) -> None:
        entry(client, csrf)
        add_record(services, "alex")
        response = client.delete("/api/v1/me", headers={"X-CSRF-Token": csrf})
        assert response.status_code == 204
        assert client.get("/api/v1/me").status_code == 401
        for table in (
            "young_person",
            "story_entry",
            "agency_record",
            "vault_data_key",
            "web_session",
        ):
            assert count(services, table) == 0, table
        (erased_at,) = run_sql(services, "SELECT erased_at FROM vault")[0]
        assert erased_at is not None
        # The username is free again, for a brand new vault.
        assert (
            client.post(
                "/api/v1/accounts", json={"username": "alex", "password": PASSWORD}
            ).status_code
            == 201
        )

    def test_delete_needs_csrf_and_fresh_sign_in(
        self, client: TestClient, services: Services, csrf: str
    ) -> None:
        assert client.delete("/api/v1/me").status_code == 403
        make_session_old(services)
        assert client.delete("/api/v1/me", headers={"X-CSRF-Token": csrf}).status_code == 401
        assert count(services, "young_person") == 1


class TestHeaders:
    @pytest.mark.parametrize(
        "path",
        [
            "/healthz",
            "/api/v1/me",
            "/signin",
            "/nope",
            "/openapi.json",
            "/.well-known/oauth-authorization-server",
        ],
    )
    def test_security_headers_everywhere(self, client: TestClient, path: str) -> None:
        response = client.get(path, follow_redirects=False)
        csp = response.headers["content-security-policy"]
        assert "script-src" not in csp and "default-src 'none'" in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"

    def test_healthz(self, client: TestClient) -> None:
        assert client.get("/healthz").json() == {"status": "ok"}

    def test_openapi_describes_the_me_api(self, client: TestClient) -> None:
        paths = client.get("/openapi.json").json()["paths"]
        for path in (
            "/api/v1/me/session",
            "/api/v1/me/entries",
            "/api/v1/me/entries/{entry_id}",
            "/api/v1/me/records",
            "/api/v1/me/records/{record_id}/notes",
            "/api/v1/me/audit",
            "/api/v1/me/export",
            "/api/v1/me",
        ):
            assert path in paths
