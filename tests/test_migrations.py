"""Models and migrations agree: autogenerate finds nothing to change."""

from __future__ import annotations

from app.container import Services
from app.migrate import differences


def test_models_match_migrations(services: Services) -> None:
    assert differences(services.engine) == []
