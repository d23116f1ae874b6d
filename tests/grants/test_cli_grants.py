"""The operator's CLI for agencies and their systems, run as a real process:
``storykeep agency add`` and ``storykeep client add``."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey

from app.container import Services
from tests.conftest import run_sql

AGENCY = "Example High School"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def storykeep(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def count(services: Services, table: str) -> int:
    return int(run_sql(services, f"SELECT count(*) FROM {table}")[0][0])


def basic(client_id: str, secret: str) -> dict[str, str]:
    pair = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def signed_assertion(client_id: str, key: ECKey, audience: str) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode({"alg": "ES256"}, claims, key)


@pytest.fixture
def key() -> ECKey:
    return ECKey.generate_key("P-256")


@pytest.fixture
def jwks_file(tmp_path: Path, key: ECKey) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(KeySet([key]).as_dict(private=False)), encoding="utf-8")
    return path


@pytest.fixture
def agency(env: dict[str, str], services: Services) -> dict[str, Any]:
    result = storykeep(env, "agency", "add", AGENCY, "--purpose", "education_support")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


class TestAgencyAdd:
    def test_adds_and_prints_json(self, env: dict[str, str], services: Services) -> None:
        result = storykeep(
            env, "agency", "add", "Example Council", "--purpose", "child_plan",
            "--purpose", "education_support", "--purpose", "child_plan",
            "--statutory", "--max-days", "180",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        created = json.loads(result.stdout)
        assert len(created["id"]) == 32 and uuid.UUID(hex=created["id"])
        assert created == {
            "id": created["id"],
            "name": "Example Council",
            "purposes": ["child_plan", "education_support"],
            "statutory": True,
            "max_duration_days": 180,
        }
        [row] = run_sql(
            services, "SELECT id, name, purposes, statutory, max_duration_days FROM agency"
        )
        purposes = json.loads(row[2]) if isinstance(row[2], str) else row[2]
        assert uuid.UUID(str(row[0])).hex == created["id"]
        assert (row[1], purposes, bool(row[3]), row[4]) == (
            "Example Council", ["child_plan", "education_support"], True, 180,
        )  # fmt: skip
        assert storykeep(env, "audit", "verify").returncode == 0

    def test_defaults(self, env: dict[str, str], services: Services) -> None:
        result = storykeep(
            env, "agency", "add", "  Example School  ", "--purpose", "education_support"
        )
        assert result.returncode == 0, result.stderr
        created = json.loads(result.stdout)
        assert created["name"] == "Example School"
        assert created["statutory"] is False and created["max_duration_days"] == 90

    def test_duplicate_name_refused(self, env: dict[str, str], services: Services) -> None:
        first = storykeep(env, "agency", "add", AGENCY, "--purpose", "education_support")
        assert first.returncode == 0, first.stderr
        again = storykeep(env, "agency", "add", f" {AGENCY} ", "--purpose", "child_plan")
        assert again.returncode == 1, again.stdout
        assert again.stderr.strip() == f"error: An agency called {AGENCY!r} already exists."
        assert again.stdout == ""
        assert count(services, "agency") == 1

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--purpose", " "], "at least one purpose"),
            (["--purpose", "education support"], "at least one purpose"),
            (["--purpose", "education-support"], "at least one purpose"),
            (["--purpose", "ok", "--purpose", "not;ok"], "at least one purpose"),
            (["--purpose", "x" * 65], "at least one purpose"),
            (["--purpose", "ok", "--max-days", "0"], "between 1 and 366"),
            (["--purpose", "ok", "--max-days", "367"], "between 1 and 366"),
            (["--purpose", "ok", "--max-days", "-5"], "between 1 and 366"),
        ],
    )
    def test_bad_input_changes_nothing(
        self, env: dict[str, str], services: Services, args: list[str], message: str
    ) -> None:
        result = storykeep(env, "agency", "add", AGENCY, *args)
        assert result.returncode == 1, result.stdout
        assert message in result.stderr and "Traceback" not in result.stderr
        assert result.stdout == ""
        assert count(services, "agency") == 0

    def test_empty_name_refused(self, env: dict[str, str], services: Services) -> None:
        result = storykeep(env, "agency", "add", "  ", "--purpose", "education_support")
        assert result.returncode == 1 and "1 to 200 characters" in result.stderr
        assert count(services, "agency") == 0

    def test_usage_errors(self, env: dict[str, str], services: Services) -> None:
        """A missing option or a non-number is a usage error (exit 2), as in click."""
        no_purpose = storykeep(env, "agency", "add", AGENCY)
        assert no_purpose.returncode == 2 and "--purpose" in no_purpose.stderr
        not_a_number = storykeep(
            env, "agency", "add", AGENCY, "--purpose", "ok", "--max-days", "ten"
        )
        assert not_a_number.returncode == 2 and "--max-days" in not_a_number.stderr
        assert count(services, "agency") == 0


class TestClientAdd:
    def test_private_key_jwt_client(
        self, env: dict[str, str], services: Services, agency: dict[str, Any], jwks_file: Path
    ) -> None:
        result = storykeep(env, "client", "add", "--agency", AGENCY, "--jwks", str(jwks_file))
        assert result.returncode == 0, result.stderr
        created = json.loads(result.stdout)
        assert set(created) == {"client_id", "auth_method"}
        assert created["auth_method"] == "private_key_jwt"
        assert created["client_id"].startswith("sk_") and len(created["client_id"]) == 27
        [row] = run_sql(
            services, "SELECT client_id, agency_id, auth_method, secret_hash FROM oauth_client"
        )
        assert row[0] == created["client_id"]
        assert uuid.UUID(str(row[1])).hex == agency["id"]
        assert row[2] == "private_key_jwt" and row[3] is None

    def test_private_key_jwt_client_cannot_use_basic(
        self, env: dict[str, str], client: TestClient, agency: dict[str, Any], jwks_file: Path
    ) -> None:
        result = storykeep(env, "client", "add", "--agency", AGENCY, "--jwks", str(jwks_file))
        client_id = json.loads(result.stdout)["client_id"]
        for secret in ("", "guess", "anything-at-all"):
            refused = client.post(
                "/oauth/introspect", data={"token": "skat_junk"}, headers=basic(client_id, secret)
            )
            assert refused.status_code == 401, refused.text
            assert refused.json()["error"] == "invalid_client"

    def test_private_key_jwt_client_authenticates_with_its_key(
        self,
        env: dict[str, str],
        services: Services,
        client: TestClient,
        agency: dict[str, Any],
        jwks_file: Path,
        key: ECKey,
    ) -> None:
        result = storykeep(env, "client", "add", "--agency", AGENCY, "--jwks", str(jwks_file))
        client_id = json.loads(result.stdout)["client_id"]
        form = {
            "token": "skat_junk",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": signed_assertion(client_id, key, services.settings.issuer),
        }
        answered = client.post("/oauth/introspect", data=form)
        assert answered.status_code == 200, answered.text
        assert answered.json() == {"active": False}

    def test_allow_secret_prints_a_secret_once_for_basic_auth(
        self,
        env: dict[str, str],
        services: Services,
        client: TestClient,
        agency: dict[str, Any],
        jwks_file: Path,
    ) -> None:
        result = storykeep(
            env, "client", "add", "--agency", AGENCY, "--jwks", str(jwks_file), "--allow-secret"
        )
        assert result.returncode == 0, result.stderr
        created = json.loads(result.stdout)
        client_id, secret = created["client_id"], created["client_secret"]
        assert created["auth_method"] == "client_secret_basic"
        assert len(secret) >= 40
        [stored] = run_sql(services, "SELECT secret_hash FROM oauth_client")
        assert stored[0] is not None and len(stored[0]) == 64 and secret not in stored[0]

        answered = client.post(
            "/oauth/introspect", data={"token": "skat_junk"}, headers=basic(client_id, secret)
        )
        assert answered.status_code == 200, answered.text
        assert answered.json() == {"active": False}
        wrong = client.post(
            "/oauth/introspect", data={"token": "skat_junk"}, headers=basic(client_id, secret + "x")
        )
        assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
        # Another client's id with this secret gets nowhere either.
        other = storykeep(env, "client", "add", "--agency", AGENCY, "--jwks", str(jwks_file))
        other_id = json.loads(other.stdout)["client_id"]
        crossed = client.post(
            "/oauth/introspect", data={"token": "skat_junk"}, headers=basic(other_id, secret)
        )
        assert crossed.status_code == 401

    def test_allow_secret_client_can_still_use_its_key(
        self,
        env: dict[str, str],
        services: Services,
        client: TestClient,
        agency: dict[str, Any],
        jwks_file: Path,
        key: ECKey,
    ) -> None:
        """`--allow-secret` says "Also allow client_secret_basic", and the JWKS is still
        required and stored: the client's private_key_jwt must keep working."""
        result = storykeep(
            env, "client", "add", "--agency", AGENCY, "--jwks", str(jwks_file), "--allow-secret"
        )
        client_id = json.loads(result.stdout)["client_id"]
        form = {
            "token": "skat_junk",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": signed_assertion(client_id, key, services.settings.issuer),
        }
        answered = client.post("/oauth/introspect", data=form)
        assert answered.status_code == 200, answered.text
        assert answered.json() == {"active": False}

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            ("private", "private key material"),
            ("not json {", "not JSON"),
            ("[" * 5000, "not JSON"),  # too deep for the decoder: not a crash
            ('{"keys": []}', "at least one key"),
            ("[]", "at least one key"),
            ("symmetric", "Only RSA, EC or OKP"),
            ('{"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}', "cannot be read"),
        ],
    )
    def test_bad_jwks_changes_nothing(
        self,
        env: dict[str, str],
        services: Services,
        agency: dict[str, Any],
        tmp_path: Path,
        key: ECKey,
        content: str,
        message: str,
    ) -> None:
        if content == "private":
            content = json.dumps(KeySet([key]).as_dict(private=True))
            assert '"d"' in content
        elif content == "symmetric":
            content = json.dumps(KeySet([OctKey.generate_key(256)]).as_dict(private=False))
        path = tmp_path / "bad-jwks.json"
        path.write_text(content, encoding="utf-8")
        result = storykeep(env, "client", "add", "--agency", AGENCY, "--jwks", str(path))
        assert result.returncode == 1, result.stdout
        assert message in result.stderr and "Traceback" not in result.stderr
        assert result.stdout == "" and "client_secret" not in result.stderr
        assert count(services, "oauth_client") == 0

    def test_missing_file_refused(
        self, env: dict[str, str], services: Services, agency: dict[str, Any], tmp_path: Path
    ) -> None:
        missing = tmp_path / "nowhere" / "jwks.json"
        result = storykeep(env, "client", "add", "--agency", AGENCY, "--jwks", str(missing))
        assert result.returncode == 1, result.stdout
        assert "cannot read" in result.stderr and "Traceback" not in result.stderr
        assert count(services, "oauth_client") == 0

    def test_unknown_agency_refused(
        self, env: dict[str, str], services: Services, agency: dict[str, Any], jwks_file: Path
    ) -> None:
        result = storykeep(
            env, "client", "add", "--agency", "No Such Agency", "--jwks", str(jwks_file),
            "--allow-secret",
        )  # fmt: skip
        assert result.returncode == 1, result.stdout
        assert "No agency called 'No Such Agency'" in result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""
        assert count(services, "oauth_client") == 0
