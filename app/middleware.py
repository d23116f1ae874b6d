"""Pure ASGI middleware: security headers on every response, and a body bound that is
enforced while the body streams in (not after it has all arrived)."""

from __future__ import annotations

import json
import logging

import anyio
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import is_page_path
from vault.errors import PayloadTooLarge

# SECURITY.md, "People and sessions": strict CSP with no inline script, nosniff,
# a referrer policy, and never framable.
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
NO_STORE = (b"cache-control", b"no-store")


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_static = scope["path"].startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                present = {k.lower() for k, _ in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in present]
                if not is_static and b"cache-control" not in present:
                    # Personal data must not sit in shared or browser caches.
                    headers.append(NO_STORE)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodySizeLimitMiddleware:
    """Refuse bodies over ``limit`` bytes: at once if Content-Length says so, otherwise
    as soon as the streamed bytes pass the limit. The refusal is raised into the app,
    which stops reading; whatever answer the app then gives (FastAPI turns any error
    while reading a JSON body into "400 There was an error parsing the body") is
    replaced by the 413, so the caller learns what was wrong."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.limit or declared < 0:
                    await _reply_413(send)
                    return
        received = 0
        too_large = replaced = False

        async def bounded_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    too_large = True
                    raise PayloadTooLarge("The request body is too large.")
            return message

        async def refusing_send(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and too_large:
                replaced = True
                await _reply_413(send)
            elif not (message["type"] == "http.response.body" and replaced):
                await send(message)  # the app's answer, unless the 413 took its place

        await self.app(scope, bounded_receive, refusing_send)


async def _reply_413(send: Send) -> None:
    body = b'{"error":"payload_too_large","detail":"The request body is too large."}'
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *SECURITY_HEADERS,
                NO_STORE,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


UNEXPECTED_MESSAGE = "Something went wrong on our side. Nothing was changed."
UNEXPECTED_JSON = json.dumps(
    {"error": "server_error", "detail": UNEXPECTED_MESSAGE}, separators=(",", ":")
).encode()


class UnexpectedErrorMiddleware:
    """Turn any unhandled exception into a plain 500 and log only its type and path.

    Starlette's own handler re-raises to the server log with a full trace, and traces can
    quote SQL parameters or content; this stops them here. Programs get the JSON error;
    people on a page get ``page`` (HTML made once at start-up, so a broken request cannot
    break its own error page), in the same plain words.
    """

    def __init__(self, app: ASGIApp, page: bytes) -> None:
        self.app = app
        self.page = page
        self.log = logging.getLogger("storykeep.errors")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ClientDisconnect:
            return  # the client hung up: nothing to answer, nothing wrong here
        except Exception as exc:  # noqa: BLE001 - last line of defence, by design
            # Deliberately no traceback: traces can quote SQL parameters or content.
            self.log.error(  # noqa: TRY400
                "unexpected %s on %s %s", type(exc).__name__, scope["method"], scope["path"]
            )
            if started:
                return
            if is_page_path(scope["path"]):
                body, content_type = self.page, b"text/html; charset=utf-8"
            else:
                body, content_type = UNEXPECTED_JSON, b"application/json"
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", content_type),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})


# Routes that never use the thread pool: their database work runs on the group
# committer's own thread (app/group_commit.py), so they need no request slot.
GROUP_COMMITTED_PATHS = ("/api/v1/vaults/", "/oauth/introspect")


class RequestSlotsMiddleware:
    """Admit at most ``slots`` requests at once; the rest wait here, holding no thread.

    Why: FastAPI runs a request's sync dependencies and its endpoint as separate trips
    to the thread pool. A request whose dependency opened the transaction (SQLite's
    BEGIN IMMEDIATE, or a PostgreSQL row lock on an audit head) must get a thread back
    to finish and commit. If every thread were held by requests waiting for that lock,
    nothing could move until a timeout. With no more requests in flight than threads,
    and each holding at most one thread at a time, the lock holder always gets one.
    ``exempt`` paths hold no pool thread at all, so they cannot starve the others.
    """

    def __init__(self, app: ASGIApp, slots: int, exempt: tuple[str, ...] = ()) -> None:
        self.app = app
        self.slots = slots
        self.exempt = exempt
        self._semaphore: anyio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        if self._semaphore is None:  # made on first use, inside the running event loop
            self._semaphore = anyio.Semaphore(self.slots)
        async with self._semaphore:
            await self.app(scope, receive, send)
