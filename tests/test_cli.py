"""The operator CLI, run as a real process (``python -m app.cli`` is the console script)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.container import Services
from tests.conftest import run_sql, sign_in


def storykeep(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture
def body_file(tmp_path: Path) -> Path:
    path = tmp_path / "record.txt"
    path.write_text(
        "Robin chose the colour for the new bedroom.\nEveryone agreed.", encoding="utf-8"
    )
    return path


class TestYoungPersonAdd:
    def test_adds_and_prints_json(
        self, env: dict[str, str], client: TestClient, services: Services
    ) -> None:
        result = storykeep(
            env, "young-person", "add", "Robin", "--password-stdin", stdin="a long password\n"
        )
        assert result.returncode == 0, result.stderr
        created = json.loads(result.stdout)
        assert created["username"] == "robin" and len(created["id"]) == 32
        sign_in(client, "robin", "a long password")
        actions = [e["action"] for e in client.get("/api/v1/me/audit").json()["events"]]
        assert actions == ["vault:created"]

    def test_duplicate_and_bad_input(self, env: dict[str, str], services: Services) -> None:
        assert (
            storykeep(
                env, "young-person", "add", "robin", "--password-stdin", stdin="password1\n"
            ).returncode
            == 0
        )
        again = storykeep(
            env, "young-person", "add", "robin", "--password-stdin", stdin="password2\n"
        )
        assert again.returncode == 1 and "taken" in again.stderr and "Traceback" not in again.stderr
        short = storykeep(env, "young-person", "add", "sam", "--password-stdin", stdin="short\n")
        assert short.returncode == 1 and "at least 8" in short.stderr
        no_stdin = storykeep(env, "young-person", "add", "sam")
        assert no_stdin.returncode == 2 and "--password-stdin" in no_stdin.stderr
        assert run_sql(services, "SELECT count(*) FROM young_person")[0][0] == 1


class TestRecordAdd:
    def test_imports_a_record(
        self, env: dict[str, str], client: TestClient, services: Services, body_file: Path
    ) -> None:
        storykeep(
            env, "young-person", "add", "robin", "--password-stdin", stdin="a long password\n"
        )
        result = storykeep(
            env,
            "record",
            "add",
            "--young-person",
            "robin",
            "--agency",
            "Example Council",
            "--category",
            "care_plan",
            "--title",
            "Bedroom plan",
            "--body-file",
            str(body_file),
            "--shanarri",
            "nurtured",
            "--shanarri",
            "respected",
            "--occurred-at",
            "2026-03-01T10:00:00+00:00",
        )
        assert result.returncode == 0, result.stderr
        record_id = json.loads(result.stdout)["id"]
        sign_in(client, "robin", "a long password")
        record = client.get(f"/api/v1/me/records/{record_id}").json()
        assert record["body"].startswith("Robin chose the colour")
        assert record["category"] == "care_plan" and record["shanarri"] == ["nurtured", "respected"]
        assert record["occurred_at"].startswith("2026-03-01T10:00:00")

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--category", "gossip"], "Unknown category"),
            (["--young-person", "nobody"], "no young person"),
            (["--shanarri", "happy"], "SHANARRI"),
            (["--occurred-at", "yesterday"], "ISO 8601"),
            (["--occurred-at", "2026-03-01T10:00:00"], "time zone"),
            (["--body-file", "/nonexistent/file.txt"], "cannot read"),
            (["--title", ""], "title"),
        ],
    )
    def test_bad_input_changes_nothing(
        self,
        env: dict[str, str],
        services: Services,
        body_file: Path,
        args: list[str],
        message: str,
    ) -> None:
        storykeep(
            env, "young-person", "add", "robin", "--password-stdin", stdin="a long password\n"
        )
        base = {
            "--young-person": "robin",
            "--agency": "Example Council",
            "--category": "health",
            "--title": "A title",
            "--body-file": str(body_file),
        }
        options = dict(zip(args[::2], args[1::2], strict=True))
        merged = [item for pair in ({**base, **options}).items() for item in pair]
        result = storykeep(env, "record", "add", *merged)
        assert result.returncode == 1, result.stdout
        assert message in result.stderr and "Traceback" not in result.stderr
        assert run_sql(services, "SELECT count(*) FROM agency_record")[0][0] == 0


class TestOtherCommands:
    def test_db_upgrade_is_idempotent_and_check_passes(self, env: dict[str, str]) -> None:
        first = storykeep(env, "db", "upgrade")
        assert first.returncode == 0, first.stderr
        assert storykeep(env, "db", "check").returncode == 0

    def test_demo_is_fresh_each_time(
        self, env: dict[str, str], client: TestClient, services: Services
    ) -> None:
        first = storykeep(env, "demo")
        assert first.returncode == 0, first.stderr
        assert "username: sky" in first.stdout and "password: demo-password" in first.stdout
        assert storykeep(env, "demo").returncode == 0
        assert run_sql(services, "SELECT count(*) FROM young_person")[0][0] == 2
        assert run_sql(services, "SELECT count(*) FROM vault WHERE erased_at IS NULL")[0][0] == 2
        sign_in(client, "sky", "demo-password")
        assert len(client.get("/api/v1/me/records").json()) == 3
        assert storykeep(env, "audit", "verify").returncode == 0

    def test_insecure_key_file_refused(self, env: dict[str, str], services: Services) -> None:
        services.settings.resolved_key_file.chmod(0o644)
        result = storykeep(env, "audit", "verify")
        assert result.returncode == 1 and "chmod 600" in result.stderr

    def test_help_lists_commands(self, env: dict[str, str]) -> None:
        result = storykeep(env, "--help")
        for command in ("serve", "demo", "db", "young-person", "record", "keys", "audit"):
            assert command in result.stdout


class TestSafeDefaults:
    def test_new_database_is_owner_only(self, tmp_path: Path) -> None:
        data = tmp_path / "fresh"
        env = {**os.environ, "STORYKEEP_DATA_DIR": str(data)}
        env.pop("STORYKEEP_DATABASE_URL", None)
        result = storykeep(env, "db", "upgrade")
        assert result.returncode == 0, result.stderr
        assert stat.S_IMODE((data / "storykeep.db").stat().st_mode) == 0o600
        assert stat.S_IMODE(data.stat().st_mode) == 0o700

    def test_refused_settings_never_echo_values(self, tmp_path: Path) -> None:
        env = {
            **os.environ,
            "STORYKEEP_DATA_DIR": str(tmp_path),
            "STORYKEEP_ENVIRONMENT": "production",
            "STORYKEEP_SECRET_KEY": "hunter2-is-my-secret",
            "STORYKEEP_ISSUER": "https://storykeep.example",
        }
        result = storykeep(env, "db", "upgrade")
        assert result.returncode == 1
        assert "invalid settings" in result.stderr and "SECRET_KEY" in result.stderr
        assert "hunter2" not in result.stderr + result.stdout
        assert "Traceback" not in result.stderr
