"""Running and checking Alembic migrations from code (the CLI and the tests use this)."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine
from sqlmodel import SQLModel

import app.auth.models
import vault.models
from app.main import PROJECT_ROOT

_MODELS = (app.auth.models, vault.models)  # imported so every table is on the metadata


def alembic_config(database_url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def differences(engine: Engine) -> list[object]:
    """What autogenerate would change: empty when models and migrations agree."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))
