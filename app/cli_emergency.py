"""Operator commands for emergency (child protection) access (grants/emergency.py):

* ``storykeep reviewer add EMAIL --agency NAME [--name N] [--role R] --password-stdin``:
  register an independent reviewer; makes the practitioner account if there is none
  (printing the authenticator secret once, like ``practitioner add``), or flags an
  existing account at that agency;
* ``storykeep agency emergency-role NAME ROLE``: one more practitioner role that may use
  emergency access at a statutory agency with the ``child_protection`` purpose;
* ``storykeep emergency list [--overdue]``: every emergency access with its agency, when
  it was opened and whether it was reviewed (or is OVERDUE): no reasons, nothing about
  the young person.

Registered in app/cli.py. Same conventions: errors are one line on stderr and exit 1,
and each command that changes anything runs in one transaction.
"""

# Commands import their modules lazily (as app/cli.py does), so `--help` stays quick and
# app.cli, which registers these, is not imported twice over.
# ruff: noqa: PLC0415
from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

reviewer_cli = typer.Typer(help="Independent reviewers of emergency access.",
                           no_args_is_help=True)  # fmt: skip
emergency_cli = typer.Typer(help="Emergency (child protection) access.", no_args_is_help=True)


@reviewer_cli.command("add")
def reviewer_add(
    email: str,
    agency: Annotated[str, typer.Option(help="The reviewer's agency (registered name).")],
    name: Annotated[str | None, typer.Option(help="Their name, for a new account.")] = None,
    role: Annotated[str | None, typer.Option(help="Their job, for a new account.")] = None,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read a new account's password from stdin."),
    ] = False,
) -> None:
    """Register an emergency access reviewer. Prints JSON; for a new account, also the
    authenticator app's secret and otpauth:// URI, once."""
    from app.cli import _fail, _print_json, _services
    from app.db import transaction
    from grants import emergency
    from vault.actors import Actor
    from vault.errors import StorykeepError

    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    services = _services()
    try:
        with transaction(services.engine) as session:
            added = emergency.add_reviewer(
                session, services.settings, services.keys, Actor.operator(), email=email,
                agency_name=agency, name=name, role=role, password=password,
            )  # fmt: skip
    except StorykeepError as exc:
        _fail(exc.message)
    p = added.practitioner
    out: dict[str, Any] = {
        "id": p.id.hex, "email": p.email, "name": p.name, "role": p.role,
        "agency": added.agency.name, "reviewer": True,
        "account": "created" if added.created_account else "existing",
    }  # fmt: skip
    if added.totp_secret is not None:
        out["totp_secret"] = added.totp_secret
        out["totp_uri"] = added.totp_uri
    _print_json(out)


def agency_emergency_role(name: str, role: str) -> None:
    """Let practitioners with ROLE at agency NAME use emergency access (the agency must
    be statutory with the child_protection purpose). Prints JSON."""
    from app.cli import _fail, _print_json, _services
    from app.db import transaction
    from grants import emergency
    from vault.actors import Actor
    from vault.errors import StorykeepError

    services = _services()
    try:
        with transaction(services.engine) as session:
            agency = emergency.add_emergency_role(
                session, services.keys, Actor.operator(), name, role
            )
    except StorykeepError as exc:
        _fail(exc.message)
    _print_json(
        {"agency": agency.name,
         "emergency_roles": [emergency.CHILD_PROTECTION, *agency.emergency_roles]}
    )  # fmt: skip


@emergency_cli.command("list")
def emergency_list(
    overdue: Annotated[
        bool, typer.Option("--overdue", help="Only reviews older than 5 days.")
    ] = False,
) -> None:
    """Every emergency access, oldest first: id, agency, when opened and ends, and the
    review (reviewed, waiting or OVERDUE). Prints JSON."""
    from app.cli import _print_json, _services
    from app.db import transaction
    from grants import emergency
    from vault.db_types import utcnow

    services = _services()
    with transaction(services.engine) as session:
        lines = emergency.operator_list(session, utcnow(), overdue_only=overdue)
    _print_json({"count": len(lines), "emergencies": [dict(line.__dict__) for line in lines]})
