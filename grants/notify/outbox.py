"""The notification outbox: queue in the caller's transaction, deliver later.

``enqueue`` adds a row in the same transaction as the change it tells of, so a message
exists exactly when the change landed (the transactional outbox pattern). ``deliver_due``
runs from the job runner (``storykeep jobs run``, and in-process while serving):

1. **claim**: in a short transaction, take due rows and push their ``next_attempt_at``
   forward by a lease, so a second worker does not take them too (PostgreSQL also skips
   rows another worker has locked);
2. **send**, outside any transaction (a slow mail server holds no database lock);
3. **settle**: mark each row sent, or count the failure and set the next try with
   exponential backoff (30 s, 1 min, 2 min, ... capped at 6 hours).

Rows are never deleted and never given up on, so nothing is lost; a crash between send
and settle means the message is sent again (at least once), which the Message-ID and the
webhook ``id`` let a receiver recognise.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from grants.models import AgencyWebhook, Notification
from grants.notify.senders import Outgoing, Sender, SendFailed
from grants.repository import get_agency_by_name
from vault import audit, sealing
from vault.actors import Actor
from vault.db_types import utcnow
from vault.errors import InvalidInput, NotFound
from vault.keys import KeyProvider

LEASE = timedelta(minutes=5)
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=6)
CHANNELS = frozenset({"console", "smtp", "webhook"})
RECIPIENT_KINDS = frozenset({"young_person", "practitioner", "advocate", "agency"})
LOOPBACK_HTTP = ("http://127.0.0.1:", "http://localhost:")
ADDRESS_PURPOSE = "notify-address"
WEBHOOK_SECRET_PURPOSE = "webhook-secret"  # noqa: S105 - a key-derivation label


def backoff(attempts: int) -> timedelta:
    """Wait before try number ``attempts + 1``: doubling from 30 s, at most 6 hours."""
    return min(FIRST_RETRY * (2 ** max(0, attempts - 1)), LONGEST_RETRY)


def enqueue(
    session: Session, app_secret: bytes, *, recipient_kind: str, recipient_id: str,
    channel: str, address: str | None, kind: str, subject: str, body: str,
    dedupe_key: str | None = None,
) -> Notification | None:  # fmt: skip
    """Queue one message in the caller's transaction. Returns None when a message with
    the same ``dedupe_key`` was queued before (a re-run job sends no second reminder)."""
    if channel not in CHANNELS or recipient_kind not in RECIPIENT_KINDS:
        raise ValueError(f"unknown channel {channel!r} or recipient kind {recipient_kind!r}")
    row = Notification(
        recipient_kind=recipient_kind, recipient_id=recipient_id, channel=channel,
        address_sealed=sealing.seal(app_secret, ADDRESS_PURPOSE, address) if address else None,
        kind=kind, subject=subject[:200], body=body[:4000], dedupe_key=dedupe_key,
    )  # fmt: skip
    if dedupe_key is None:
        session.add(row)
        session.flush()
        return row
    try:
        with session.begin_nested():  # a savepoint: a duplicate key rolls back only this
            session.add(row)
    except IntegrityError:
        return None
    return row


@dataclass(frozen=True)
class DeliveryReport:
    sent: int
    failed: int


def _claim(
    engine: Engine, app_secret: bytes, now: datetime, limit: int
) -> list[tuple[uuid.UUID, str, Outgoing]]:
    with Session(engine) as session, session.begin():
        query = (
            select(Notification)
            .where(Notification.status == "pending", Notification.next_attempt_at <= now)  # type: ignore[arg-type]
            .order_by(Notification.next_attempt_at)  # type: ignore[arg-type]
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = list(session.scalars(query))
        claimed = []
        for row in rows:
            row.next_attempt_at = now + LEASE
            address = (
                sealing.open_sealed(app_secret, ADDRESS_PURPOSE, row.address_sealed)
                if row.address_sealed
                else None
            )
            secret = None
            if row.channel == "webhook":
                hook = session.get(AgencyWebhook, uuid.UUID(hex=row.recipient_id))
                if hook is not None:
                    address = hook.url
                    secret = sealing.open_sealed(
                        app_secret, WEBHOOK_SECRET_PURPOSE, hook.secret_sealed
                    )
            outgoing = Outgoing(
                id=row.id.hex, kind=row.kind, address=address, subject=row.subject,
                body=row.body, created_at=row.created_at.isoformat(), secret=secret,
            )  # fmt: skip
            claimed.append((row.id, row.channel, outgoing))
        return claimed


def _settle(engine: Engine, notification_id: uuid.UUID, error: str | None) -> None:
    with Session(engine) as session, session.begin():
        row = session.get(Notification, notification_id, with_for_update=True)
        if row is None or row.status == "sent":
            return
        now = utcnow()
        row.attempts += 1
        if error is None:
            row.status, row.sent_at, row.last_error = "sent", now, None
        else:
            row.last_error = error[:300]
            row.next_attempt_at = now + backoff(row.attempts)
        session.add(row)


@dataclass(frozen=True)
class _MissingSender:
    channel: str

    def send(self, message: Outgoing) -> None:
        raise SendFailed(f"no sender for channel {self.channel!r} (message {message.id})")


def deliver_due(
    engine: Engine, app_secret: bytes, senders: Mapping[str, Sender],
    now: datetime | None = None, limit: int = 100,
) -> DeliveryReport:  # fmt: skip
    """Send what is due. Never raises for a failed send: that is recorded and retried."""
    sent = failed = 0
    for notification_id, channel, outgoing in _claim(engine, app_secret, now or utcnow(), limit):
        sender = senders.get(channel, _MissingSender(channel))
        try:
            sender.send(outgoing)
        except SendFailed as exc:
            _settle(engine, notification_id, str(exc))
            failed += 1
        else:
            _settle(engine, notification_id, None)
            sent += 1
    return DeliveryReport(sent=sent, failed=failed)


def set_webhook(session: Session, app_secret: bytes, agency_id: uuid.UUID, url: str,
                secret: str) -> AgencyWebhook:  # fmt: skip
    """Register (or replace) where an agency's system is told of events. HTTPS only,
    except a loopback address for local testing."""
    if not (url.startswith("https://") or url.startswith(LOOPBACK_HTTP)) or len(url) > 500:
        raise InvalidInput("The webhook address must start with https://.")
    if len(secret) < 32:
        raise InvalidInput("The webhook secret must be at least 32 characters.")
    hook = session.get(AgencyWebhook, agency_id) or AgencyWebhook(
        agency_id=agency_id, url=url, secret_sealed=b""
    )
    hook.url = url
    hook.secret_sealed = sealing.seal(app_secret, WEBHOOK_SECRET_PURPOSE, secret)
    session.add(hook)
    session.flush()
    return hook


def register_webhook(
    session: Session, app_secret: bytes, keys: KeyProvider, actor: Actor, *, agency_name: str,
    url: str, secret: str,
) -> AgencyWebhook:  # fmt: skip
    """The operator's ``storykeep agency webhook``: find the agency by name, set its
    webhook, and log it on the operator's chain (the URL and secret stay out of the log)."""
    agency = get_agency_by_name(session, agency_name.strip())
    if agency is None:
        raise NotFound(f"No agency called {agency_name!r}. Add it with `storykeep agency add`.")
    hook = set_webhook(session, app_secret, agency.id, url.strip(), secret)
    audit.append(session, keys, audit.OPERATOR_CHAIN, actor, "agency:webhook_set",
                 object_type="agency", object_id=agency.id.hex)  # fmt: skip
    return hook
