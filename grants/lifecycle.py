"""The life of a grant, run by ``storykeep jobs run`` and in-process while serving.

Grants and requests end by timestamp whatever this job does: ``Grant.is_active`` and
``request_status`` already refuse them the moment their time is up, so a late or
stopped job never extends anyone's access. The job does the *telling*:

* a pending request past its decision time is marked ``lapsed`` (it lapses cleanly:
  nothing is granted), logged, and the practitioner is told;
* a young person is reminded a day before a request lapses;
* a young person is told three days before a grant ends;
* a grant that ran out is logged once as ``grant:expired`` and the practitioner told.

Every message goes through the outbox in the same transaction as its audit entry, and
each reminder has a dedupe key, so running the job twice sends nothing twice.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from app.auth.models import Advocate
from grants import lifecycle_repository as repo
from grants.models import AccessRequest, Grant
from grants.notify import messages, outbox
from vault import audit
from vault.actors import Actor
from vault.db_types import utcnow
from vault.keys import KeyProvider

GRANT_ENDING_NOTICE = timedelta(days=3)
REQUEST_REMINDER_NOTICE = timedelta(days=1)
BATCH = 500
JOB_ACTOR = Actor(type="system", id="lifecycle", label="Storykeep")


@dataclass(frozen=True)
class LifecycleReport:
    requests_lapsed: int = 0
    request_reminders: int = 0
    grant_reminders: int = 0
    grants_ended: int = 0


@dataclass(frozen=True)
class Notifier:
    """Where messages go: young people's messages go to the console channel until they
    can give a contact address; practitioners' go by email (or console in development)."""

    app_secret: bytes
    email_channel: str = "console"

    def young_person(self, session: Session, vault_id: str, message: messages.Message,
                     dedupe_key: str | None = None) -> bool:  # fmt: skip
        return outbox.enqueue(
            session, self.app_secret, recipient_kind="young_person", recipient_id=vault_id,
            channel="console", address=None, kind=message.kind, subject=message.subject,
            body=message.body, dedupe_key=dedupe_key,
        ) is not None  # fmt: skip

    def practitioner(self, session: Session, practitioner: dict[str, str],
                     message: messages.Message, dedupe_key: str | None = None) -> bool:  # fmt: skip
        email = practitioner.get("email") or None
        return outbox.enqueue(
            session, self.app_secret, recipient_kind="practitioner",
            recipient_id=outbox_recipient(email), channel=self.email_channel,
            address=email, kind=message.kind, subject=message.subject, body=message.body,
            dedupe_key=dedupe_key,
        ) is not None  # fmt: skip

    def advocate(self, session: Session, advocate_id: uuid.UUID, message: messages.Message,
                 dedupe_key: str | None = None) -> bool:  # fmt: skip
        advocate = session.get(Advocate, advocate_id)
        if advocate is None or advocate.disabled_at is not None:
            return False
        return outbox.enqueue(
            session, self.app_secret, recipient_kind="advocate", recipient_id=advocate.id.hex,
            channel=self.email_channel, address=advocate.email, kind=message.kind,
            subject=message.subject, body=message.body, dedupe_key=dedupe_key,
        ) is not None  # fmt: skip


def outbox_recipient(email: str | None) -> str:
    """Practitioners from agency systems have no account here: name them by a hash."""
    return hashlib.sha256((email or "").lower().encode()).hexdigest()[:64]


def _handle(request: AccessRequest | Grant) -> str:
    return "ref " + request.id.hex[:8]


def run(engine: Engine, keys: KeyProvider, notifier: Notifier,
        now: datetime | None = None) -> LifecycleReport:  # fmt: skip
    """One pass. Each step is its own transaction, so one slow step holds no lock for
    the others."""
    now = now or utcnow()
    with Session(engine) as session, session.begin():
        names = repo.agency_names(session)
        lapsed = 0
        for request in repo.lock_lapsed_requests(session, now, BATCH):
            request.status = "lapsed"
            session.add(request)
            audit.append(session, keys, request.vault_id.hex, JOB_ACTOR, "request:lapsed",
                         object_type="access_request", object_id=request.id.hex)  # fmt: skip
            notifier.practitioner(
                session, request.practitioner, messages.expiry(_handle(request), "request")
            )
            lapsed += 1
    with Session(engine) as session, session.begin():
        reminders = 0
        for request in repo.requests_deciding_before(
            session, now, now + REQUEST_REMINDER_NOTICE, BATCH
        ):
            agency = names.get(request.agency_id, "An agency")
            if notifier.young_person(
                session, request.vault_id.hex, messages.request_reminder(agency, request.decide_by),
                dedupe_key=f"request-reminder:{request.id.hex}",
            ):  # fmt: skip
                reminders += 1
    with Session(engine) as session, session.begin():
        ending = 0
        for grant in repo.grants_ending_between(session, now, now + GRANT_ENDING_NOTICE, BATCH):
            agency = names.get(grant.agency_id, "An agency")
            if notifier.young_person(
                session, grant.vault_id.hex, messages.grant_ending(agency, grant.expires_at),
                dedupe_key=f"grant-ending:{grant.id.hex}",
            ):  # fmt: skip
                ending += 1
    with Session(engine) as session, session.begin():
        ended = 0
        for grant in repo.lock_ended_unnoted_grants(session, now, BATCH):
            grant.end_noted_at = now
            session.add(grant)
            audit.append(session, keys, grant.vault_id.hex, JOB_ACTOR, "grant:expired",
                         object_type="grant", object_id=grant.id.hex)  # fmt: skip
            notifier.practitioner(session, grant.practitioner,
                                  messages.expiry(_handle(grant), "access"))  # fmt: skip
            ended += 1
    return LifecycleReport(lapsed, reminders, ending, ended)
