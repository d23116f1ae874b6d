"""Ways to deliver an outbox message. Each sender raises ``SendFailed`` on any failure;
the outbox then retries with backoff, so a sender never needs its own retry loop.

* ``ConsoleSender``: the default, for development and small installs; writes to the log.
* ``SmtpSender``: email over SMTP (RFC 5321), STARTTLS (RFC 3207) when configured.
* ``WebhookSender``: an HTTPS POST of JSON to an agency's system, signed with
  HMAC-SHA256 over ``"{timestamp}.{body}"`` in a ``Storykeep-Signature`` header
  (``t=<unix seconds>,v1=<hex>``), the scheme payment providers use, so the receiver can
  check both origin and freshness.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import httpx

log = logging.getLogger("storykeep.notify")

SIGNATURE_HEADER = "Storykeep-Signature"


class SendFailed(Exception):
    """Delivery did not happen; the text is short and holds no message content."""


@dataclass(frozen=True)
class Outgoing:
    id: str
    kind: str
    address: str | None
    subject: str
    body: str
    created_at: str
    # For webhooks: the shared secret that signs the body.
    secret: str | None = None


class Sender(Protocol):
    def send(self, message: Outgoing) -> None: ...


class ConsoleSender:
    def send(self, message: Outgoing) -> None:
        log.info("notification %s (%s) to %s: %s", message.id, message.kind,
                 message.address or "-", message.subject)  # fmt: skip


@dataclass(frozen=True)
class SmtpSender:
    host: str
    port: int
    from_address: str
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout_seconds: float = 10.0

    def send(self, message: Outgoing) -> None:
        if not message.address:
            raise SendFailed("no email address")
        email = EmailMessage()
        email["From"] = self.from_address
        email["To"] = message.address
        email["Subject"] = message.subject
        email["Message-ID"] = f"<{message.id}@storykeep>"  # lets a resend be recognised
        email.set_content(message.body)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_seconds) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username and self.password:
                    smtp.login(self.username, self.password)
                smtp.send_message(email)
        except (smtplib.SMTPException, OSError) as exc:
            raise SendFailed(f"smtp: {type(exc).__name__} {getattr(exc, 'smtp_code', '')}") from exc


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


@dataclass(frozen=True)
class WebhookSender:
    timeout_seconds: float = 10.0

    def send(self, message: Outgoing) -> None:
        if not message.address or not message.secret:
            raise SendFailed("webhook without a URL or secret")
        body = json.dumps(
            {"id": message.id, "type": message.kind, "created_at": message.created_at,
             "summary": message.subject, "text": message.body},
            separators=(",", ":"),
        ).encode()  # fmt: skip
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(message.secret, int(time.time()), body),
        }
        try:
            response = httpx.post(message.address, content=body, headers=headers,
                                  timeout=self.timeout_seconds, follow_redirects=False)  # fmt: skip
        except httpx.HTTPError as exc:
            raise SendFailed(f"webhook: {type(exc).__name__}") from exc
        if not 200 <= response.status_code < 300:
            raise SendFailed(f"webhook: HTTP {response.status_code}")
