"""Helpers for the practitioner tests: agencies, practitioners, signing in through the
real sign-in form, and the CSRF token a page carries."""

from __future__ import annotations

import re
from typing import Any

import pyotp
from fastapi.testclient import TestClient

from app.auth import practitioners
from app.container import Services
from app.db import transaction
from grants import service as grants_service
from tests.conftest import PASSWORD, run_sql
from vault.actors import Actor

SCHOOL = "Example High School"
TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def add_agency(
    services: Services,
    name: str = SCHOOL,
    purposes: tuple[str, ...] = ("education_support", "child_plan"),
    max_days: int = 90,
) -> None:
    with transaction(services.engine) as session:
        grants_service.add_agency(
            session, Actor.operator(), services.keys, name, list(purposes), False, max_days
        )


def add_practitioner(
    services: Services,
    email: str = "jo.bloggs@example.org",
    agency: str = SCHOOL,
    name: str = "Jo Bloggs",
    role: str = "guidance teacher",
    password: str | None = PASSWORD,
) -> str | None:
    """The operator's path (the same service the CLI calls). Returns the TOTP secret."""
    with transaction(services.engine) as session:
        added = practitioners.add_practitioner(
            session, services.settings, services.keys, Actor.operator(), email=email,
            agency_name=agency, name=name, role=role, password=password,
        )  # fmt: skip
    return added.totp_secret


def csrf_of(html: str) -> str:
    match = TOKEN_RE.search(html)
    assert match, "no csrf_token on the page"
    return match.group(1)


def totp_now(secret: str) -> str:
    return pyotp.TOTP(secret).now()


def forget_last_code(services: Services) -> None:
    """Let the next sign-in use the current code again (each test signs in more often than
    once per 30-second step; the replay test does not call this)."""
    run_sql(services, "UPDATE practitioner SET totp_last_step = NULL")


def post_signin(http: TestClient, email: str, password: str, code: str) -> Any:
    token = csrf_of(http.get("/practitioner/signin").text)
    return http.post(
        "/practitioner/signin",
        data={"csrf_token": token, "email": email, "password": password, "code": code},
        follow_redirects=False,
    )


def staff_sign_in(
    http: TestClient,
    services: Services,
    secret: str,
    email: str = "jo.bloggs@example.org",
    password: str = PASSWORD,
) -> str:
    """Sign in through the form. Returns the signed-in pages' CSRF token."""
    forget_last_code(services)
    response = post_signin(http, email, password, totp_now(secret))
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/practitioner"
    return csrf_of(http.get("/practitioner").text)
