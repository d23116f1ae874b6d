"""The operator's command line: ``storykeep …``.

Errors print one clear line to stderr and exit 1; nothing is half-done, because every
command runs in one transaction.
"""

from __future__ import annotations

import json
import sys
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError

from app import cli_emergency, cli_jobs
from app.container import Services, build_services
from app.db import read_snapshot, transaction, unit_of_work
from app.settings import Settings
from vault import audit, chain
from vault.actors import Actor
from vault.errors import StorykeepError
from vault.keys import LocalKeyFileProvider
from vault.schemas import parse_json

cli = typer.Typer(help="Storykeep: run and look after the service.", no_args_is_help=True)
db_cli = typer.Typer(help="The database.", no_args_is_help=True)
young_person_cli = typer.Typer(help="Young people's accounts.", no_args_is_help=True)
record_cli = typer.Typer(help="Agency records.", no_args_is_help=True)
keys_cli = typer.Typer(help="Encryption keys.", no_args_is_help=True)
audit_cli = typer.Typer(help="The audit log.", no_args_is_help=True)
agency_cli = typer.Typer(help="Agencies and their purposes.", no_args_is_help=True)
client_cli = typer.Typer(help="Agencies' systems (OAuth clients).", no_args_is_help=True)
practitioner_cli = typer.Typer(help="Practitioners: agencies' workers.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(young_person_cli, name="young-person")
cli.add_typer(record_cli, name="record")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(audit_cli, name="audit")
cli.add_typer(agency_cli, name="agency")
cli.add_typer(client_cli, name="client")
cli.add_typer(practitioner_cli, name="practitioner")
# Scheduled work, insight and agency webhooks (app/cli_jobs.py).
cli.add_typer(cli_jobs.jobs_cli, name="jobs")
cli.command("report")(cli_jobs.report)
agency_cli.command("webhook")(cli_jobs.agency_webhook)
# Emergency access: reviewers, roles and the operator's list (app/cli_emergency.py).
cli.add_typer(cli_emergency.reviewer_cli, name="reviewer")
cli.add_typer(cli_emergency.emergency_cli, name="emergency")
agency_cli.command("emergency-role")(cli_emergency.agency_emergency_role)


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _settings() -> Settings:
    """Settings from the environment; a refusal names the problem, never the values."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        _fail(f"invalid settings: {problems}")


def _services() -> Services:
    settings = _settings()
    try:
        return build_services(settings)
    except StorykeepError as exc:
        _fail(exc.message)


def _print_json(data: dict[str, Any]) -> None:
    typer.echo(json.dumps(data, default=str))


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the web app and API."""
    import gc

    import uvicorn

    from app.main import create_app

    app = create_app(services=_services(), run_jobs=True)
    # Everything built so far lives as long as the process: move it out of the cyclic
    # garbage collector's sight, so its full collections stop re-scanning it under load
    # (docs/benchmarks.md: fewer, shorter pauses; https://docs.python.org/3/library/gc.html#gc.freeze).
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=host, port=port, proxy_headers=True, server_header=False)


@cli.command()
def demo() -> None:
    """Load fresh fictional demo data (replaces earlier demo accounts)."""
    from app import demo as demo_data

    services = _services()
    try:
        for session in unit_of_work(services.engine):
            names = demo_data.load(session, services.vault)
            workers = demo_data.load_workers(session, services)
    except StorykeepError as exc:
        _fail(exc.message)
    base = services.settings.issuer.rstrip("/")
    password = demo_data.DEMO_PASSWORD
    typer.echo("Demo data is ready. Everyone in it is made up.")
    typer.echo(f"Young people: open {base}/signin and sign in as any of these:")
    for name in names:
        typer.echo(f"  username: {name}    password: {password}")
    typer.echo(f"Practitioner: open {base}/practitioner/signin")
    typer.echo(f"  email: {workers.practitioner_email}    password: {password}")
    typer.echo(f"  authenticator secret (demo only): {workers.totp_secret}")
    typer.echo(
        "  no authenticator app? a code for now: "
        f".venv/bin/python -c \"import pyotp; print(pyotp.TOTP('{workers.totp_secret}').now())\""
    )
    typer.echo(f"Advocate (invited by sky): open {base}/advocate/signin")
    typer.echo(f"  email: {workers.advocate_email}    password: {password}")


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration (safe to run again)."""
    from app.migrate import upgrade

    settings = _settings()
    try:  # keys only if a migration has existing content to seal: they must be there
        notes = upgrade(
            settings.resolved_database_url,
            open_keys=lambda: LocalKeyFileProvider(settings.resolved_key_file).load_existing(),
        )
    except StorykeepError as exc:
        _fail(exc.message)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo("Database is up to date.")


@db_cli.command("check")
def db_check() -> None:
    """Exit non-zero if the models and the migrations disagree."""
    from app.migrate import differences

    diffs = differences(_services().engine)
    if diffs:
        for diff in diffs:
            typer.echo(f"difference: {diff}", err=True)
        raise typer.Exit(1)
    typer.echo("Models and migrations agree.")


@young_person_cli.command("add")
def young_person_add(
    username: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Add a young person. Prints JSON with the new id."""
    from app.auth.service import hash_password
    from vault import service

    if not password_stdin:
        _fail("give the password on standard input with --password-stdin", code=2)
    password = sys.stdin.readline().rstrip("\r\n")
    services = _services()
    try:
        name = service.validate_new_credentials(username, password)
        for session in unit_of_work(services.engine):
            person, vault = service.create_young_person(
                session, services.vault, Actor.operator(), name, hash_password(password)
            )
    except StorykeepError as exc:
        _fail(exc.message)
    _print_json({"id": person.id.hex, "username": person.username, "vault_id": vault.id.hex})


@record_cli.command("add")
def record_add(
    young_person: Annotated[str, typer.Option(help="Their username.")],
    agency: Annotated[str, typer.Option(help="The agency that wrote it.")],
    category: Annotated[str, typer.Option(help="education, health, care_plan, …")],
    title: Annotated[str, typer.Option()],
    body_file: Annotated[Path, typer.Option(help="A UTF-8 text file with the record.")],
    author_name: Annotated[str, typer.Option(help="Who wrote it.")] = "Records team",
    author_role: Annotated[str, typer.Option(help="Their role.")] = "records officer",
    shanarri: Annotated[list[str] | None, typer.Option(help="A SHANARRI tag; repeat.")] = None,
    occurred_at: Annotated[
        str | None, typer.Option(help="When it happened, ISO 8601 with a time zone.")
    ] = None,
) -> None:
    """Import one agency record into a young person's vault. Prints JSON with the id."""
    from vault import repository as repo
    from vault import service
    from vault.schemas import RecordCreate

    try:
        body = body_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {body_file}: {type(exc).__name__}")
    when = None
    if occurred_at is not None:
        try:
            when = datetime.fromisoformat(occurred_at)
        except ValueError:
            _fail("--occurred-at must be an ISO 8601 date and time")
        if when.tzinfo is None:
            _fail("--occurred-at needs a time zone, e.g. 2026-03-01T10:00:00+00:00")
    try:
        data = RecordCreate(
            agency=agency,
            author_name=author_name,
            author_role=author_role,
            category=category,
            shanarri=shanarri or [],
            title=title,
            body=body,
            occurred_at=when,
        )
    except ValidationError as exc:
        _fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
    services = _services()
    try:
        for session in unit_of_work(services.engine):
            person = repo.get_young_person_by_username(session, young_person.strip().lower())
            if person is None:
                _fail(f"no young person with the username {young_person!r}")
            vault = service.vault_of(session, person)
            record = service.add_record(session, services.vault, Actor.operator(), vault.id, data)
    except StorykeepError as exc:
        _fail(exc.message)
    _print_json({"id": record.id.hex, "vault_id": record.vault_id.hex, "category": category})


@agency_cli.command("add")
def agency_add(
    name: str,
    purpose: Annotated[
        list[str], typer.Option(help="A registered purpose, e.g. education_support; repeat.")
    ],
    statutory: Annotated[bool, typer.Option("--statutory", help="A statutory body.")] = False,
    max_days: Annotated[int, typer.Option(help="Longest grant it may ask for, in days.")] = 90,
) -> None:
    """Register an agency and its information sharing purposes. Prints JSON with the id."""
    from grants import service as grants_service

    services = _services()
    try:
        with transaction(services.engine) as session:
            agency = grants_service.add_agency(
                session, Actor.operator(), services.keys, name, purpose, statutory, max_days
            )
    except StorykeepError as exc:
        _fail(exc.message)
    _print_json(
        {"id": agency.id.hex, "name": agency.name, "purposes": agency.purposes,
         "statutory": agency.statutory, "max_duration_days": agency.max_duration_days}
    )  # fmt: skip


@client_cli.command("add")
def client_add(
    agency: Annotated[str, typer.Option(help="The agency's registered name.")],
    jwks: Annotated[Path, typer.Option(help="A JSON Web Key Set file with public keys.")],
    allow_secret: Annotated[
        bool,
        typer.Option("--allow-secret", help="Also allow client_secret_basic (weaker)."),
    ] = False,
) -> None:
    """Register an agency's system. Prints JSON with the client_id (and a secret, once,
    only with --allow-secret)."""
    from grants import service as grants_service

    try:
        jwks_text = jwks.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {jwks}: {type(exc).__name__}")
    services = _services()
    try:
        with transaction(services.engine) as session:
            client, secret = grants_service.add_client(
                session, services.grants, Actor.operator(), services.keys, agency, jwks_text,
                allow_secret,
            )  # fmt: skip
    except StorykeepError as exc:
        _fail(exc.message)
    out: dict[str, Any] = {"client_id": client.client_id, "auth_method": client.auth_method}
    if secret:
        out["client_secret"] = secret
    _print_json(out)


@agency_cli.command("oidc")
def agency_oidc(
    name: str,
    issuer: Annotated[str, typer.Option(help="The provider's issuer URL (https).")],
    client_id: Annotated[str, typer.Option(help="Storykeep's client id at the provider.")],
    client_secret_stdin: Annotated[
        bool,
        typer.Option("--client-secret-stdin", help="Read the client secret from standard input."),
    ] = False,
) -> None:
    """Let an agency's practitioners sign in with its OpenID Connect provider. Register
    the printed redirect_uri with the provider. Prints JSON."""
    from app.auth import oidc, practitioners

    if not client_secret_stdin:
        _fail("give the client secret on standard input with --client-secret-stdin", code=2)
    secret = sys.stdin.readline().rstrip("\r\n")
    services = _services()
    try:
        with transaction(services.engine) as session:
            config = practitioners.configure_oidc(
                session, services.settings, services.keys, Actor.operator(), agency_name=name,
                issuer=issuer, client_id=client_id, client_secret=secret,
            )  # fmt: skip
    except StorykeepError as exc:
        _fail(exc.message)
    _print_json(
        {"agency": name.strip(), "issuer": config.issuer, "client_id": config.client_id,
         "redirect_uri": oidc.redirect_uri(services.settings)}
    )  # fmt: skip


@practitioner_cli.command("add")
def practitioner_add(
    email: str,
    agency: Annotated[str, typer.Option(help="The agency's registered name.")],
    role: Annotated[str, typer.Option(help="Their job, as young people will see it.")] = (
        "practitioner"
    ),
    name: Annotated[
        str | None, typer.Option(help="Their name, as young people will see it.")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    oidc_only: Annotated[
        bool,
        typer.Option("--oidc-only", help="No password: sign in only with the agency's provider."),
    ] = False,
) -> None:
    """Add a practitioner. Prints JSON; with a password, also the authenticator app's
    secret and otpauth:// URI, once: they are not shown again."""
    from app.auth import practitioners

    if password_stdin == oidc_only:
        _fail("give exactly one of --password-stdin or --oidc-only", code=2)
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    services = _services()
    try:
        with transaction(services.engine) as session:
            added = practitioners.add_practitioner(
                session, services.settings, services.keys, Actor.operator(), email=email,
                agency_name=agency, name=name, role=role, password=password,
            )  # fmt: skip
    except StorykeepError as exc:
        _fail(exc.message)
    p = added.practitioner
    out: dict[str, Any] = {
        "id": p.id.hex, "email": p.email, "name": p.name, "role": p.role,
        "agency": added.agency.name, "sign_in": "oidc" if oidc_only else "password+totp",
    }  # fmt: skip
    if added.totp_secret is not None:
        out["totp_secret"] = added.totp_secret
        out["totp_uri"] = added.totp_uri
    _print_json(out)


@keys_cli.command("rotate")
def keys_rotate() -> None:
    """Make a new key-encryption key and re-wrap every vault's data key with it."""
    services = _services()
    try:
        version = services.keys.rotate_kek()
        for session in unit_of_work(services.engine):
            count = services.keyring.rewrap_all(session)
            audit.append(
                session,
                services.keys,
                audit.OPERATOR_CHAIN,
                Actor.operator(),
                "keys:rotated",
                object_type="kek",
                object_id=str(version),
            )
    except StorykeepError as exc:
        _fail(exc.message)
    _print_json({"kek_version": version, "rewrapped": count})


@audit_cli.command("verify")
def audit_verify(
    export: Annotated[
        Path | None,
        typer.Option(help="Check a downloaded export zip instead, against this server's key."),
    ] = None,
) -> None:
    """Check every audit chain, and that every vault has one. Exit 0 if intact;
    otherwise name the first bad entry of each bad chain."""
    services = _services()
    if export is not None:
        _verify_export(services, export)
        return
    bad = 0
    total = 0
    # One snapshot: appends the app makes meanwhile are neither seen half-way (as a
    # broken chain) nor held up.
    with read_snapshot(services.engine) as session:
        for report in audit.verify_all(session, services.keys):
            total += 1
            if report.problem is not None:
                bad += 1
                vault = f" (vault {report.vault_id})" if report.vault_id else ""
                typer.echo(f"chain {report.chain}{vault}: {report.problem}", err=True)
    if bad:
        typer.echo(f"FAILED: {bad} of {total} chains are not intact.", err=True)
        raise typer.Exit(1)
    typer.echo(f"OK: {total} chains intact.")


def _verify_export(services: Services, path: Path) -> None:
    """Check an export against this server's public key, never the one in the zip: that
    one only says who signed, and anyone who edits the log can re-sign it with their own
    key and put that key in the zip. (Offline, ``verify.py`` does the same with a key
    got from the operator.)"""
    try:
        with zipfile.ZipFile(path) as zf:
            doc = parse_json(zf.read("audit/audit.json"))
            pem = zf.read("audit/public_key.pem")
        chain_name, events, head = doc["chain"], doc["events"], doc["head"]
    except (OSError, KeyError, TypeError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        _fail(f"{path} is not a Storykeep export ({type(exc).__name__})")
    if not audit.is_our_public_key(services.keys, pem):
        _fail(
            f"{path}: NOT signed by this server. The public key in the export is not this "
            "server's audit key, so the log was re-signed with another key (or comes from "
            "another Storykeep server)."
        )
    problem = chain.verify_chain(chain_name, events, head, services.keys.public_key_pem())
    if problem is not None:
        typer.echo(f"chain {chain_name}: {problem}", err=True)
        raise typer.Exit(1)
    typer.echo(f"OK: {len(events)} entries, signed head verified with this server's key.")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
