"""Scheduled work: the grant lifecycle job, then outbox delivery.

``run_once`` is what ``storykeep jobs run`` calls (from cron, say). While serving, a
``JobRunner`` thread calls it every ``STORYKEEP_JOBS_INTERVAL_SECONDS``. Several
processes may run it at once: the lifecycle steps lock their rows (or dedupe their
messages) and the outbox claims with a lease, so nothing is done twice.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from app.container import Services
from app.settings import Settings
from grants import emergency, lifecycle
from grants.notify import outbox
from grants.notify.senders import ConsoleSender, Sender, SmtpSender, WebhookSender
from vault.db_types import utcnow

log = logging.getLogger("storykeep.jobs")


def senders_from_settings(settings: Settings) -> dict[str, Sender]:
    senders: dict[str, Sender] = {"console": ConsoleSender(), "webhook": WebhookSender()}
    if settings.notify_email_channel == "smtp":
        senders["smtp"] = SmtpSender(
            host=settings.smtp_host,
            port=settings.smtp_port,
            from_address=settings.smtp_from,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        )
    return senders


def notifier_for(services: Services) -> lifecycle.Notifier:
    return lifecycle.Notifier(
        app_secret=services.grants.secret, email_channel=services.settings.notify_email_channel
    )


@dataclass(frozen=True)
class JobsReport:
    lifecycle: lifecycle.LifecycleReport
    deferred_notices_sent: int
    overdue_reviews: int
    sent: int
    failed: int


def run_once(services: Services, now: datetime | None = None) -> JobsReport:
    now = now or utcnow()
    notifier = notifier_for(services)
    life = lifecycle.run(services.engine, services.keys, notifier, now)
    told, overdue = emergency.run_due_work(services.engine, services.keyring, notifier, now)
    if overdue:
        log.warning("%d emergency access review(s) are overdue (older than 5 days)", overdue)
    # Messages queued by the steps above are due from when they were queued, after `now`:
    # deliver them in this run, not the next.
    delivery = outbox.deliver_due(
        services.engine,
        services.grants.secret,
        senders_from_settings(services.settings),
        max(now, utcnow()),
    )
    return JobsReport(life, told, overdue, delivery.sent, delivery.failed)


class JobRunner:
    """A daemon thread running ``run_once`` on an interval until stopped. A failing run is
    logged (type only) and tried again next time; it never stops the server."""

    def __init__(self, services: Services, interval_seconds: int) -> None:
        self._services = services
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="storykeep-jobs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                run_once(self._services)
            except Exception as exc:  # noqa: BLE001 - a scheduler must outlive one bad run
                # Type only: a trace could carry personal data into the log.
                log.error("scheduled jobs failed: %s", type(exc).__name__)  # noqa: TRY400
