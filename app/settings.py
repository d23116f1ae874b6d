"""One settings object for the whole service (pydantic-settings, prefix ``STORYKEEP_``).

Settings are read when the app or the CLI starts, never into module globals at import
time, so tests and operators can point one process at another data directory.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The only secret value we ship. It is fine on a laptop and refused in production.
PLACEHOLDER_SECRET = "development-only-not-a-secret"  # noqa: S105


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class PlaceholderSecretError(ValueError):
    """Production was asked to run with a development secret or a plain-http issuer."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STORYKEEP_", extra="ignore")

    environment: Environment = Environment.development
    data_dir: Path = Path("./var")
    # Default: SQLite in DATA_DIR (the embedded deployment). PostgreSQL via psycopg 3:
    # postgresql+psycopg://user@host/db
    database_url: str | None = None
    issuer: str = "http://127.0.0.1:8000"
    # Local key-file provider: key-encryption keys and the audit signing key.
    key_file: Path | None = None
    # Keyed hashes of session tokens and CSRF tokens (HMAC-SHA256) use this.
    secret_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)

    session_idle_minutes: int = Field(default=30, ge=1)
    session_max_hours: int = Field(default=12, ge=1)
    # Export and (later) approving a grant need a sign-in younger than this (step-up).
    step_up_minutes: int = Field(default=10, ge=1)

    # Sign-in attempts allowed per window before 429, per account and per address.
    login_window_minutes: int = Field(default=15, ge=1)
    login_max_failures_per_account: int = Field(default=10, ge=1)
    login_max_failures_per_address: int = Field(default=50, ge=1)
    # Failed OAuth client authentications allowed in the same window before 429, per
    # client_id (an agency's system is the account) and per address. Per client is
    # higher: anyone who knows a client_id can spend its failures (client_auth.py).
    oauth_max_failures_per_client: int = Field(default=100, ge=1)
    oauth_max_failures_per_address: int = Field(default=10, ge=1)

    # OAuth: access tokens live at most 10 minutes (SECURITY.md).
    access_token_seconds: int = Field(default=600, ge=30, le=600)
    ciba_poll_interval_seconds: int = Field(default=5, ge=1, le=60)
    connection_code_hours: int = Field(default=24, ge=1, le=24 * 7)

    # Threads that run request handlers, and so also the most requests in flight at once
    # (see RequestSlotsMiddleware for why those must match). Few threads contend less for
    # the GIL and the database lock than anyio's default of 40 (docs/benchmarks.md).
    worker_threads: int = Field(default=4, ge=1, le=64)
    # Group-commit writer lanes for the agency hot path (app/group_commit.py) on
    # PostgreSQL; SQLite always has one, as it has one writer. Three keep one core busy
    # while the others wait on round trips; more contend for the GIL (docs/benchmarks.md).
    writer_lanes: int = Field(default=3, ge=1, le=32)

    max_photo_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    # Hard cap on any request body, enforced while the body streams in.
    max_request_bytes: int = Field(default=6 * 1024 * 1024, ge=1024)

    # Notifications (grants/notify). Email goes to the console unless SMTP is chosen.
    notify_email_channel: Literal["console", "smtp"] = "console"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "Storykeep <no-reply@storykeep.invalid>"
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    # The lifecycle job and outbox delivery run in-process this often while serving
    # (0 = only by `storykeep jobs run`, e.g. from cron).
    jobs_interval_seconds: int = Field(default=60, ge=0, le=3600)

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> Settings:
        if self.environment is Environment.production:
            secret = self.secret_key.get_secret_value()
            if secret == PLACEHOLDER_SECRET or len(secret) < 32:
                raise PlaceholderSecretError(
                    "STORYKEEP_SECRET_KEY must be set to a random value of at least 32 "
                    "characters in production"
                )
            if not self.issuer.startswith("https://"):
                raise PlaceholderSecretError("STORYKEEP_ISSUER must be https in production")
        return self

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'storykeep.db').resolve()}"

    @cached_property
    def resolved_key_file(self) -> Path:
        return self.key_file or self.data_dir / "keys" / "storykeep.keys"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")
