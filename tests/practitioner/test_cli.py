"""The operator adds practitioners and configures an agency's OpenID Connect provider
with the real `storykeep` command, run as a process."""

from __future__ import annotations

import json
from typing import Any

import pyotp
import pytest
from fastapi.testclient import TestClient

from app.container import Services
from tests.conftest import PASSWORD, run_sql
from tests.practitioner.kit import add_agency, post_signin
from tests.test_cli import storykeep


def add(env: dict[str, str], *args: str, stdin: str = PASSWORD + "\n") -> Any:
    return storykeep(env, "practitioner", "add", *args, stdin=stdin)


def operator_actions(services: Services) -> list[str]:
    rows = run_sql(services, "SELECT action FROM audit_event WHERE chain = 'operator' ORDER BY seq")
    return [r[0] for r in rows]


class TestPractitionerAdd:
    def test_adds_and_prints_the_authenticator_secret_once(
        self, env: dict[str, str], services: Services, worker: TestClient
    ) -> None:
        add_agency(services)
        result = add(
            env, "Jo.Bloggs@Example.org", "--agency", "Example High School",
            "--role", "guidance teacher", "--password-stdin",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout)
        assert out["email"] == "jo.bloggs@example.org" and out["name"] == "Jo Bloggs"
        assert out["role"] == "guidance teacher" and out["agency"] == "Example High School"
        secret = out["totp_secret"]
        assert out["totp_uri"].startswith("otpauth://totp/Storykeep:jo.bloggs%40example.org?")
        assert f"secret={secret}" in out["totp_uri"] and "issuer=Storykeep" in out["totp_uri"]
        stored = json.dumps(run_sql(services, "SELECT * FROM practitioner"), default=str)
        assert secret not in stored and PASSWORD not in stored
        assert operator_actions(services)[-1] == "practitioner:added"
        # The printed secret is the one the app checks codes against.
        code = pyotp.TOTP(secret).now()
        assert post_signin(worker, "jo.bloggs@example.org", PASSWORD, code).status_code == 303

    def test_oidc_only_has_no_password_and_no_code(
        self, env: dict[str, str], services: Services
    ) -> None:
        add_agency(services)
        result = add(
            env, "sam@example.org", "--agency", "Example High School", "--oidc-only", stdin=""
        )
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout)
        assert out["sign_in"] == "oidc" and "totp_secret" not in out and out["name"] == "Sam"
        assert run_sql(
            services, "SELECT password_hash, totp_secret_sealed, role FROM practitioner"
        ) == [(None, None, "practitioner")]

    @pytest.mark.parametrize(
        ("args", "stdin", "code", "message"),
        [
            (["jo@example.org", "--agency", "Nowhere", "--password-stdin"], None, 1, "No agency"),
            (["not-an-email", "--agency", "Example High School", "--password-stdin"], None, 1,
             "not an email"),
            (["jo@example.org", "--agency", "Example High School", "--password-stdin"], "short\n",
             1, "at least 8"),
            (["jo@example.org", "--agency", "Example High School", "--password-stdin",
              "--role", ""], None, 1, "role"),
            (["jo@example.org", "--agency", "Example High School"], None, 2, "exactly one"),
            (["jo@example.org", "--agency", "Example High School", "--password-stdin",
              "--oidc-only"], None, 2, "exactly one"),
        ],
    )  # fmt: skip
    def test_bad_input_changes_nothing(
        self,
        env: dict[str, str],
        services: Services,
        args: list[str],
        stdin: str | None,
        code: int,
        message: str,
    ) -> None:
        add_agency(services)
        before = operator_actions(services)
        result = add(env, *args, stdin=stdin if stdin is not None else PASSWORD + "\n")
        assert result.returncode == code, result.stdout
        assert message in result.stderr and "Traceback" not in result.stderr
        assert run_sql(services, "SELECT count(*) FROM practitioner")[0][0] == 0
        assert operator_actions(services) == before

    def test_a_duplicate_email_is_refused(self, env: dict[str, str], services: Services) -> None:
        add_agency(services)
        add_agency(services, "Example Health Board")
        first = add(env, "jo@example.org", "--agency", "Example High School", "--password-stdin")
        assert first.returncode == 0, first.stderr
        again = add(env, "JO@example.org", "--agency", "Example Health Board", "--password-stdin")
        # The existing CLI's convention: a refused command exits 1, bad usage exits 2.
        assert again.returncode == 1 and "already a practitioner" in again.stderr
        assert "Traceback" not in again.stderr
        assert run_sql(services, "SELECT count(*) FROM practitioner")[0][0] == 1


class TestAgencyOidc:
    def test_configures_the_provider_with_the_secret_sealed(
        self, env: dict[str, str], services: Services
    ) -> None:
        add_agency(services)
        result = storykeep(
            env, "agency", "oidc", "Example High School", "--issuer", "https://login.example.org",
            "--client-id", "storykeep", "--client-secret-stdin", stdin="s3cret-value\n",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout)
        assert out["redirect_uri"].endswith("/practitioner/oidc/callback")
        assert "s3cret-value" not in result.stdout
        row = run_sql(services, "SELECT issuer, client_id, client_secret_sealed FROM agency_oidc")
        assert row[0][:2] == ("https://login.example.org", "storykeep")
        assert b"s3cret-value" not in bytes(row[0][2])
        assert operator_actions(services)[-1] == "agency:oidc_configured"
        # Running it again replaces the configuration.
        again = storykeep(
            env, "agency", "oidc", "Example High School", "--issuer", "https://sso.example.org",
            "--client-id", "sk2", "--client-secret-stdin", stdin="other\n",
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert run_sql(services, "SELECT issuer, client_id FROM agency_oidc") == [
            ("https://sso.example.org", "sk2")
        ]

    @pytest.mark.parametrize(
        ("args", "stdin", "code", "message"),
        [
            (["Nowhere", "--issuer", "https://login.example.org"], "x\n", 1, "No agency"),
            (["Example High School", "--issuer", "http://login.example.org"], "x\n", 1, "https"),
            (["Example High School", "--issuer", "https://login.example.org"], "\n", 1,
             "client secret"),
        ],
    )  # fmt: skip
    def test_bad_input_changes_nothing(
        self,
        env: dict[str, str],
        services: Services,
        args: list[str],
        stdin: str,
        code: int,
        message: str,
    ) -> None:
        add_agency(services)
        result = storykeep(
            env, "agency", "oidc", *args, "--client-id", "sk", "--client-secret-stdin", stdin=stdin
        )
        assert result.returncode == code and message in result.stderr
        assert run_sql(services, "SELECT count(*) FROM agency_oidc")[0][0] == 0

    def test_the_secret_must_come_on_stdin(self, env: dict[str, str], services: Services) -> None:
        add_agency(services)
        result = storykeep(
            env, "agency", "oidc", "Example High School", "--issuer", "https://a.example.org",
            "--client-id", "sk",
        )  # fmt: skip
        assert result.returncode == 2 and "--client-secret-stdin" in result.stderr
