"""``storykeep jobs run`` as cron runs it: a real process, a real SMTP server and webhook
receiver. Running it twice does nothing twice."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from app.container import Services
from tests.conftest import run_sql
from tests.grants.test_lifecycle import PRACTITIONER, _seed, _vault_id
from tests.jobs.conftest import Receiver, Smtp, storykeep

SECRET = "an-agency-webhook-secret-of-32-characters-or-more"


def test_running_twice_tells_nobody_twice(
    client: TestClient, services: Services, smtp: Smtp, receiver: Receiver,
    cli_env: dict[str, str],
) -> None:  # fmt: skip
    _seed(services, _vault_id(services, client))
    hook = storykeep(cli_env, "agency", "webhook", "Example High School", "--url",
                     receiver.url, "--secret-stdin", stdin=SECRET)  # fmt: skip
    assert hook.returncode == 0, hook.stderr

    first = storykeep(cli_env, "jobs", "run")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == (
        "lapsed 1, reminders 2 (requests 1, grants 1), ended 1, summaries 0, "
        "emergency notices 0, sent 6, failed 0, overdue reviews 0"
    )
    second = storykeep(cli_env, "jobs", "run")
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == (
        "lapsed 0, reminders 0 (requests 0, grants 0), ended 0, summaries 0, "
        "emergency notices 0, sent 0, failed 0, overdue reviews 0"
    )
    # The practitioner: the lapsed request and the ended grant, once each, by email.
    subjects = sorted(m["Subject"] for m in smtp.to(PRACTITIONER["email"]))
    assert subjects == ["Your access has ended", "Your request has ended"]
    assert len(smtp.mails) == 2
    # The agency's system: the same two events, signed.
    assert sorted(json.loads(b)["type"] for _h, b in receiver.received) == ["expiry", "expiry"]
    statuses = run_sql(services, "SELECT status, count(*) FROM notification GROUP BY status")
    assert [tuple(s) for s in statuses] == [("sent", 6)]


def test_bad_settings_fail_in_one_line(cli_env: dict[str, str], services: Services) -> None:
    result = storykeep({**cli_env, "STORYKEEP_SMTP_PORT": "0"}, "jobs", "run")
    assert result.returncode == 1
    assert result.stderr.startswith("error: invalid settings: smtp_port")
    assert len(result.stderr.strip().splitlines()) == 1
