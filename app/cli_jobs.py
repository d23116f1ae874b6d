"""Operator commands for scheduled work, insight and agency webhooks:

* ``storykeep jobs run``: one pass of the lifecycle job and outbox delivery (for cron);
* ``storykeep report [--json]``: every agency's aggregates, small numbers suppressed;
* ``storykeep agency webhook NAME --url URL --secret-stdin``: where an agency's system
  hears of decisions and expiries.

Registered in app/cli.py. Same conventions: errors are one line on stderr and exit 1,
and each command that changes anything runs in one transaction.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from app import jobs
from app.db import transaction, unit_of_work
from grants import insight
from grants.notify import outbox
from vault.actors import Actor
from vault.errors import StorykeepError

jobs_cli = typer.Typer(help="Scheduled work: lapses, reminders, endings, messages.",
                       no_args_is_help=True)  # fmt: skip

REPORT_COLUMNS = (
    ("agency", "Agency"),
    ("requests_made", "Requests"),
    ("median_hours_to_decision", "Median hours to decide"),
    ("approved_as_asked_percent", "Approved %"),
    ("narrowed_percent", "Narrowed %"),
    ("declined_percent", "Declined %"),
    ("revoked_percent", "Revoked %"),
    ("emergency_uses", "Emergency uses"),
    ("median_hours_to_emergency_review", "Median hours to review"),
)


@jobs_cli.command("run")
def jobs_run() -> None:
    """Run the scheduled work once and print a one-line summary.

    Marks lapsed requests, sends reminders, notes ended grants, tells people, and
    delivers what is due (retrying failed sends with backoff)."""
    from app.cli import _fail, _services  # noqa: PLC0415 - app.cli imports this module

    services = _services()
    try:
        report = jobs.run_once(services)
    except StorykeepError as exc:
        _fail(exc.message)
    life = report.lifecycle
    typer.echo(
        f"lapsed {life.requests_lapsed}, reminders {life.request_reminders + life.grant_reminders}"
        f" (requests {life.request_reminders}, grants {life.grant_reminders}), "
        f"ended {life.grants_ended}, summaries {life.access_summaries}, "
        f"emergency notices {report.deferred_notices_sent}, sent {report.sent}, "
        f"failed {report.failed}, overdue reviews {report.overdue_reviews}"
    )


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def report(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Each agency's aggregates; any count under 5 is shown as "fewer than 5".

    Requests, time to decide, approval, narrowing, refusal and revocation rates,
    emergency uses and time to their review; so nobody can be picked out."""
    from app.cli import _services  # noqa: PLC0415 - app.cli imports this module

    services = _services()
    for session in unit_of_work(services.engine):
        rows = [row.as_dict() for row in insight.all_agencies(session)]
    if as_json:
        typer.echo(json.dumps({"agencies": rows}))
        return
    if not rows:
        typer.echo("No agencies yet.")
        return
    table = [[title for _key, title in REPORT_COLUMNS]]
    table += [[_cell(row[key]) for key, _title in REPORT_COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(REPORT_COLUMNS))]
    for n, line in enumerate(table):
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
        if n == 0:
            typer.echo("  ".join("-" * width for width in widths))
    typer.echo('Counts under 5 are shown as "fewer than 5". "-" means none yet.')


def agency_webhook(
    name: str,
    url: Annotated[str, typer.Option(help="https:// address of the agency's receiver.")],
    secret_stdin: Annotated[
        bool,
        typer.Option("--secret-stdin", help="Read the signing secret (32+ characters) from stdin."),
    ] = False,
) -> None:
    """Send an agency's system its decisions and expiries by signed webhook. Prints JSON.

    Signed with HMAC-SHA256: header Storykeep-Signature: t=<unix time>,v1=<hex>."""
    from app.cli import _fail, _services  # noqa: PLC0415 - app.cli imports this module

    if not secret_stdin:
        _fail("give the signing secret on standard input with --secret-stdin", code=2)
    secret = sys.stdin.readline().rstrip("\r\n")
    services = _services()
    try:
        with transaction(services.engine) as session:
            hook = outbox.register_webhook(
                session, services.grants.secret, services.keys, Actor.operator(),
                agency_name=name, url=url, secret=secret,
            )  # fmt: skip
    except StorykeepError as exc:
        _fail(exc.message)
    typer.echo(json.dumps({"agency": name.strip(), "url": hook.url}))
