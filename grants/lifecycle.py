"""The life of a grant, run by ``storykeep jobs run`` and in-process while serving.

Grants and requests end by timestamp whatever this job does: ``Grant.is_active`` and
``request_status`` already refuse them the moment their time is up, so a late or
stopped job never extends anyone's access. The job does the *telling*:

* a pending request past its decision time is marked ``lapsed`` (it lapses cleanly:
  nothing is granted), logged, and the practitioner is told;
* a young person is reminded a day before a request lapses;
* a young person is told three days before a grant ends;
* a grant that ran out is logged once as ``grant:expired`` and the practitioner told;
* a young person who chose "once a day" gets a summary of yesterday's looks.

Practitioners' messages (lapses, endings) also go to their agency's signed webhook when
the operator registered one.

Every message goes through the outbox in the same transaction as its audit entry, and
each reminder has a dedupe key, so running the job twice sends nothing twice.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlmodel import Session

from app.auth.models import Advocate
from grants import emergency
from grants import lifecycle_repository as repo
from grants.models import AccessRequest, Grant
from grants.notify import messages, outbox, preferences
from grants.notify import repository as notify_repo
from vault import audit
from vault.actors import Actor
from vault.db_types import utcnow
from vault.keys import KeyProvider

GRANT_ENDING_NOTICE = timedelta(days=3)
REQUEST_REMINDER_NOTICE = timedelta(days=1)
BATCH = 500
# Young people here live in Scotland: "a day" is their day, midnight to midnight.
LOCAL_TZ = ZoneInfo("Europe/London")
JOB_ACTOR = Actor(type="system", id="lifecycle", label="Storykeep")


@dataclass(frozen=True)
class LifecycleReport:
    requests_lapsed: int = 0
    request_reminders: int = 0
    grant_reminders: int = 0
    grants_ended: int = 0
    access_summaries: int = 0


@dataclass(frozen=True)
class Notifier:
    """Where messages go, all through the outbox in the caller's transaction.

    * A young person: to the email address they gave (over the email channel) when they
      gave one (grants/notify/preferences.py), otherwise to the console channel, which
      stands for "inside Storykeep".
    * A practitioner or an advocate: by email (the console channel in development).
    * An agency's own system: its signed webhook, when the operator registered one.
    """

    app_secret: bytes
    email_channel: str = "console"

    def young_person(self, session: Session, vault_id: str, message: messages.Message,
                     dedupe_key: str | None = None) -> bool:  # fmt: skip
        pref = notify_repo.preference_of_vault(session, uuid.UUID(hex=vault_id))
        email = preferences.open_email(self.app_secret, pref)
        return outbox.enqueue(
            session, self.app_secret, recipient_kind="young_person", recipient_id=vault_id,
            channel=self.email_channel if email else "console", address=email,
            kind=message.kind, subject=message.subject, body=message.body,
            dedupe_key=dedupe_key,
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

    def agency(self, session: Session, agency_id: uuid.UUID, message: messages.Message,
               dedupe_key: str | None = None) -> bool:  # fmt: skip
        """The agency's system, by its signed webhook; nothing if it registered none.
        The URL and secret are read when sending, so a changed webhook is used at once."""
        if not notify_repo.has_webhook(session, agency_id):
            return False
        return outbox.enqueue(
            session, self.app_secret, recipient_kind="agency", recipient_id=agency_id.hex,
            channel="webhook", address=None, kind=message.kind, subject=message.subject,
            body=message.body, dedupe_key=dedupe_key,
        ) is not None  # fmt: skip

    def decision_or_expiry(self, session: Session, practitioner: dict[str, str],
                           agency_id: uuid.UUID, message: messages.Message) -> None:  # fmt: skip
        """Practitioners hear of decisions and expiries, and so does their agency's system."""
        self.practitioner(session, practitioner, message)
        self.agency(session, agency_id, message)

    def looked(self, session: Session, vault_id: uuid.UUID, grant_id: uuid.UUID,
               agency: str, practitioner: str, categories: list[str],
               now: datetime) -> bool:  # fmt: skip
        """Someone looked: tell a young person who chose "straight away", at most once an
        hour for each grant (the dedupe key names the hour). Those who chose "once a day"
        get the lifecycle job's summary instead."""
        if notify_repo.access_mode_of_vault(session, vault_id) != "immediate":
            return False
        if emergency.notice_withheld(session, grant_id):
            return False  # a deferred emergency: they are told when the deferral ends
        hour = now.astimezone(UTC).strftime("%Y-%m-%dT%H")
        return self.young_person(
            session, vault_id.hex, messages.access(agency, practitioner, categories, now),
            dedupe_key=f"access:{grant_id.hex}:{hour}",
        )  # fmt: skip


def outbox_recipient(email: str | None) -> str:
    """Practitioners from agency systems have no account here: name them by a hash."""
    return hashlib.sha256((email or "").lower().encode()).hexdigest()[:64]


def reference(request: AccessRequest | Grant) -> str:
    """How a message names a request or grant: a short reference the practitioner can
    match in Storykeep, not the young person's name or handle."""
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
            notifier.decision_or_expiry(
                session, request.practitioner, request.agency_id,
                messages.expiry(reference(request), "request"),
            )  # fmt: skip
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
            if emergency.notice_withheld(session, grant.id):
                continue  # a deferred emergency: "ending soon" would tell them early
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
            notifier.decision_or_expiry(session, grant.practitioner, grant.agency_id,
                                        messages.expiry(reference(grant), "access"))  # fmt: skip
            ended += 1
    summaries = daily_access_summaries(engine, notifier, now)
    return LifecycleReport(lapsed, reminders, ending, ended, summaries)


def previous_day(now: datetime) -> tuple[datetime, datetime]:
    """Yesterday on the young person's clock, as [start, end) (aware datetimes)."""
    today = now.astimezone(LOCAL_TZ).date()
    start = datetime.combine(today - timedelta(days=1), time(0), tzinfo=LOCAL_TZ)
    return start, datetime.combine(today, time(0), tzinfo=LOCAL_TZ)


def daily_access_summaries(engine: Engine, notifier: Notifier, now: datetime) -> int:
    """For everyone who chose "once a day" (the default): one message about yesterday's
    looks by other people, built from the audit log (counts and agency names only, never
    what was read). The dedupe key names the vault and the day, so it is sent once."""
    start, end = previous_day(now)
    with Session(engine) as session, session.begin():
        looks = notify_repo.looks_between(session, start, end)
        keys = {v.vault_id: f"access-summary:{v.vault_id.hex}:{start:%Y-%m-%d}" for v in looks}
        queued = notify_repo.queued_keys(session, keys.values())
        todo = [v for v in looks if keys[v.vault_id] not in queued]
        daily = notify_repo.vaults_choosing_daily(session, [v.vault_id for v in todo])
        # A deferred emergency notice: say nothing about that time until they are told.
        daily -= emergency.vaults_with_notice_withheld(session, list(daily))
        sent = 0
        for seen in [v for v in todo if v.vault_id in daily][:BATCH]:
            message = messages.access_summary(start, seen.looks, seen.agencies)
            if notifier.young_person(session, seen.vault_id.hex, message,
                                     dedupe_key=keys[seen.vault_id]):  # fmt: skip
                sent += 1
    return sent
