"""The notification outbox against real servers: an SMTP server (aiosmtpd) and an HTTP
webhook receiver, both started by the tests on 127.0.0.1, each failing at first."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import Session, select

from app.container import Services
from grants.models import Agency, Notification
from grants.notify import outbox
from grants.notify.senders import (
    SIGNATURE_HEADER,
    ConsoleSender,
    SmtpSender,
    WebhookSender,
    signature,
)
from vault.db_types import utcnow
from vault.errors import InvalidInput

SECRET = "a-webhook-secret-of-at-least-32-characters"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FlakySmtp:
    """Answers 451 (try again later, RFC 5321 section 4.2.2) to the first ``failures``
    messages, then accepts and keeps them."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.failures > 0:
            self.failures -= 1
            return "451 4.3.0 Try again later"
        self.received.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[FlakySmtp, int]]:
    handler = FlakySmtp(failures=2)
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def _queue(services: Services, **overrides: Any) -> Notification | None:
    fields: dict[str, Any] = {
        "recipient_kind": "young_person", "recipient_id": "abc", "channel": "smtp",
        "address": "sky@example.org", "kind": "request_new",
        "subject": "Someone wants to see your things",
        "body": "Sign in to Storykeep to say yes or no.",
    }  # fmt: skip
    fields.update(overrides)
    with Session(services.engine) as session, session.begin():
        row = outbox.enqueue(session, services.grants.secret, **fields)
        if row is not None:
            session.expunge(row)
        return row


def _rows(services: Services) -> list[Notification]:
    with Session(services.engine) as session:
        rows = list(session.exec(select(Notification)))
        for row in rows:
            session.expunge(row)
        return rows


def test_smtp_delivery_retries_with_backoff_until_the_server_accepts(
    services: Services, smtp_server: tuple[FlakySmtp, int]
) -> None:
    handler, port = smtp_server
    senders = {"smtp": SmtpSender(host="127.0.0.1", port=port, from_address="no-reply@sk.test")}
    _queue(services)
    start = utcnow()

    first = outbox.deliver_due(services.engine, services.grants.secret, senders, now=start)
    assert (first.sent, first.failed) == (0, 1)
    [row] = _rows(services)
    assert row.status == "pending" and row.attempts == 1 and "451" in (row.last_error or "")
    assert row.next_attempt_at - utcnow() > timedelta(seconds=20)  # backed off, not hammering

    # Not due yet: nothing is tried again.
    again = outbox.deliver_due(services.engine, services.grants.secret, senders, now=start)
    assert (again.sent, again.failed) == (0, 0)

    later = start + timedelta(seconds=31)
    second = outbox.deliver_due(services.engine, services.grants.secret, senders, now=later)
    assert (second.sent, second.failed) == (0, 1)
    [row] = _rows(services)
    assert row.attempts == 2
    assert row.next_attempt_at - utcnow() > timedelta(seconds=50)  # doubled

    third = outbox.deliver_due(
        services.engine, services.grants.secret, senders, now=later + timedelta(minutes=2)
    )
    assert (third.sent, third.failed) == (1, 0)
    [row] = _rows(services)
    assert row.status == "sent" and row.sent_at is not None and row.attempts == 3
    [envelope] = handler.received
    assert envelope.rcpt_tos == ["sky@example.org"]
    email = message_from_bytes(envelope.content)
    assert email["Subject"] == "Someone wants to see your things"
    assert email["Message-ID"] == f"<{row.id.hex}@storykeep>"

    # Sent once: a later run sends nothing more.
    done = outbox.deliver_due(
        services.engine, services.grants.secret, senders, now=later + timedelta(hours=7)
    )
    assert (done.sent, done.failed) == (0, 0)
    assert len(handler.received) == 1


def test_a_mail_server_that_is_down_loses_nothing(services: Services) -> None:
    senders = {"smtp": SmtpSender(host="127.0.0.1", port=_free_port(), from_address="a@b.test")}
    _queue(services)
    now = utcnow()
    for attempt in range(1, 12):
        report = outbox.deliver_due(services.engine, services.grants.secret, senders, now=now)
        assert report.failed == 1
        now += outbox.LONGEST_RETRY + timedelta(seconds=1)
        [row] = _rows(services)
        assert row.status == "pending" and row.attempts == attempt
    assert outbox.backoff(11) == outbox.LONGEST_RETRY  # capped, never given up


def test_the_address_is_sealed_at_rest(services: Services) -> None:
    _queue(services, address="very.private.address@example.org")
    [row] = _rows(services)
    assert row.address_sealed is not None
    assert b"very.private.address" not in row.address_sealed


def test_a_repeated_dedupe_key_queues_one_message(services: Services) -> None:
    assert _queue(services, dedupe_key="grant-ending:1") is not None
    assert _queue(services, dedupe_key="grant-ending:1") is None
    assert len(_rows(services)) == 1


def test_a_claimed_message_is_not_taken_twice(services: Services) -> None:
    _queue(services, channel="console", address=None)
    claimed = outbox._claim(services.engine, services.grants.secret, utcnow(), 10)
    assert len(claimed) == 1
    # Another worker running now finds nothing: the lease holds it.
    report = outbox.deliver_due(
        services.engine, services.grants.secret, {"console": ConsoleSender()}
    )
    assert (report.sent, report.failed) == (0, 0)


def test_console_sender_logs_without_the_body(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    _queue(services, channel="console", address=None, body="BODY-MARKER")
    with caplog.at_level(logging.INFO, logger="storykeep.notify"):
        report = outbox.deliver_due(
            services.engine, services.grants.secret, {"console": ConsoleSender()}
        )
    assert report.sent == 1
    assert "Someone wants to see your things" in caplog.text
    assert "BODY-MARKER" not in caplog.text


class _Receiver(BaseHTTPRequestHandler):
    statuses: list[int]
    received: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        status = self.statuses.pop(0) if self.statuses else 204
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return


@pytest.fixture
def webhook_receiver() -> Iterator[tuple[type[_Receiver], str]]:
    handler = type("Receiver", (_Receiver,), {"statuses": [500], "received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler, f"http://127.0.0.1:{server.server_address[1]}/storykeep-events"
    finally:
        server.shutdown()
        server.server_close()


def _agency(services: Services) -> Agency:
    with Session(services.engine) as session, session.begin():
        agency = Agency(name="Example Council", purposes=["child_protection"], statutory=True)
        session.add(agency)
        session.flush()
        session.expunge(agency)
        return agency


def test_signed_webhook_retries_then_delivers_a_verifiable_body(
    services: Services, webhook_receiver: tuple[type[_Receiver], str]
) -> None:
    receiver, url = webhook_receiver
    agency = _agency(services)
    with Session(services.engine) as session, session.begin():
        outbox.set_webhook(session, services.grants.secret, agency.id, url, SECRET)
    _queue(services, recipient_kind="agency", recipient_id=agency.id.hex, channel="webhook",
           address=None, kind="decision", subject="A request was answered")  # fmt: skip
    senders = {"webhook": WebhookSender()}
    now = utcnow()
    first = outbox.deliver_due(services.engine, services.grants.secret, senders, now=now)
    assert first.failed == 1  # the receiver answered 500
    second = outbox.deliver_due(
        services.engine, services.grants.secret, senders, now=now + timedelta(minutes=1)
    )
    assert second.sent == 1
    assert len(receiver.received) == 2
    headers, body = receiver.received[-1]
    parts = dict(part.split("=", 1) for part in headers[SIGNATURE_HEADER].split(","))
    stamp, mac = parts["t"], parts["v1"]
    expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(mac, expected)
    assert signature(SECRET, int(stamp), body + b" ") != headers[SIGNATURE_HEADER]  # tamper
    event = json.loads(body)
    assert event["type"] == "decision" and event["summary"] == "A request was answered"


def test_webhook_addresses_must_be_https(services: Services) -> None:
    agency = _agency(services)
    with Session(services.engine) as session, session.begin():
        with pytest.raises(InvalidInput):
            outbox.set_webhook(session, services.grants.secret, agency.id,
                               "http://agency.example/hook", SECRET)  # fmt: skip
        with pytest.raises(InvalidInput):
            outbox.set_webhook(session, services.grants.secret, agency.id,
                               "https://agency.example/hook", "short")  # fmt: skip
