"""The long-lived objects one process needs, built once from Settings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from app.db import make_engine
from app.group_commit import GroupCommitter
from app.settings import Settings
from grants.config import GrantsConfig
from vault.keyring import Keyring
from vault.keys import KeyProvider, LocalKeyFileProvider
from vault.service import VaultServices


@dataclass
class Services:
    settings: Settings
    engine: Engine
    keys: KeyProvider
    keyring: Keyring
    grants: GrantsConfig
    # The agency-facing hot path's writer (app/group_commit.py); it starts on first use.
    committer: GroupCommitter

    @property
    def vault(self) -> VaultServices:
        return VaultServices(keyring=self.keyring)


def build_services(settings: Settings, keys: KeyProvider | None = None) -> Services:
    """Open the key provider (refusing a key file others can read) and the database."""
    if keys is None:
        keys = LocalKeyFileProvider(settings.resolved_key_file).load_or_create()
    engine = make_engine(settings.resolved_database_url)
    grants = GrantsConfig(
        secret=settings.secret_key.get_secret_value().encode(),
        issuer=settings.issuer,
        access_token_seconds=settings.access_token_seconds,
        poll_interval_seconds=settings.ciba_poll_interval_seconds,
        connection_code_hours=settings.connection_code_hours,
    )
    return Services(
        settings=settings, engine=engine, keys=keys, keyring=Keyring(keys), grants=grants,
        committer=GroupCommitter(engine, settings.writer_lanes),
    )  # fmt: skip
