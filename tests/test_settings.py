"""Settings refuse unsafe production configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Settings


def test_development_defaults(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.resolved_database_url == f"sqlite:///{(tmp_path / 'storykeep.db').resolve()}"
    assert settings.resolved_key_file == tmp_path / "keys" / "storykeep.keys"


def test_reads_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STORYKEEP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("STORYKEEP_ISSUER", "https://storykeep.example")
    settings = Settings()
    assert settings.data_dir == tmp_path and settings.issuer == "https://storykeep.example"


def test_production_refuses_placeholder_secret() -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(environment="production", issuer="https://storykeep.example")


def test_production_refuses_short_secret() -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(environment="production", issuer="https://s.example", secret_key="short")


def test_production_refuses_plain_http_issuer() -> None:
    with pytest.raises(ValidationError, match="https"):
        Settings(environment="production", issuer="http://storykeep.example", secret_key="x" * 40)


def test_production_accepts_real_values() -> None:
    settings = Settings(environment="production", issuer="https://s.example", secret_key="x" * 40)
    assert settings.environment == "production"


def test_app_logs_its_own_info_but_libraries_stay_quiet(tmp_path: Path) -> None:
    import logging

    from app.main import create_app

    create_app(Settings(data_dir=tmp_path))
    assert logging.getLogger("storykeep").getEffectiveLevel() == logging.INFO
    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING
    assert logging.getLogger("sqlalchemy.engine").getEffectiveLevel() >= logging.WARNING
