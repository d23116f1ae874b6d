"""Data keys: make one per vault, unwrap on use, re-wrap on KEK rotation, destroy on erasure."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlmodel import Session

from vault import repository as repo
from vault.crypto import DataKey, FieldContext, open_sealed, read_header, seal
from vault.db_types import utcnow
from vault.errors import IntegrityFailure
from vault.keys import KeyProvider, WrappedKey
from vault.models import VaultDataKey

# Unwrapped keys are kept briefly in memory so a page of records costs one unwrap, not
# one per field. Short, so an erasure in another process is honoured quickly.
CACHE_SECONDS = 60.0
CACHE_MAX = 4096


class Keyring:
    def __init__(self, provider: KeyProvider) -> None:
        self.provider = provider
        self._cache: dict[tuple[uuid.UUID, uuid.UUID], tuple[float, DataKey]] = {}
        self._current: dict[uuid.UUID, tuple[float, DataKey]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Keyring(provider={self.provider!r})"

    def create_vault_key(self, session: Session, vault_id: uuid.UUID) -> DataKey:
        self.provider.create_vault_secret(vault_id)
        key_id = uuid.uuid4()
        material = AESGCM.generate_key(bit_length=256)
        wrapped = self.provider.wrap_data_key(vault_id, key_id, material)
        session.add(
            VaultDataKey(
                id=key_id,
                vault_id=vault_id,
                version=1,
                kek_version=wrapped.kek_version,
                wrapped_key=wrapped.blob,
            )
        )
        key = DataKey(key_id=key_id, version=1, material=material)
        self._remember(vault_id, key)
        return key

    def _remember(self, vault_id: uuid.UUID, key: DataKey) -> None:
        with self._lock:
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[(vault_id, key.key_id)] = (time.monotonic() + CACHE_SECONDS, key)

    def _cached(self, vault_id: uuid.UUID, key_id: uuid.UUID) -> DataKey | None:
        with self._lock:
            hit = self._cache.get((vault_id, key_id))
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def _unwrap(self, vault_id: uuid.UUID, row: VaultDataKey | Any) -> DataKey:
        material = self.provider.unwrap_data_key(
            vault_id, row.id, WrappedKey(kek_version=row.kek_version, blob=row.wrapped_key)
        )
        key = DataKey(key_id=row.id, version=row.version, material=material)
        self._remember(vault_id, key)
        return key

    def current_key(self, session: Session, vault_id: uuid.UUID) -> DataKey:
        """The key new content is sealed with. Remembered like unwrapped keys (a vault's
        data key never changes: KEK rotation re-wraps it, erasure drops it and the cache)."""
        with self._lock:
            hit = self._current.get(vault_id)
        if hit is not None and hit[0] >= time.monotonic():
            return hit[1]
        row = repo.current_data_key(session, vault_id)
        if row is None:
            raise IntegrityFailure("This vault has no key.")
        key = self._cached(vault_id, row.id) or self._unwrap(vault_id, row)
        with self._lock:
            if len(self._current) >= CACHE_MAX:
                self._current.clear()
            self._current[vault_id] = (time.monotonic() + CACHE_SECONDS, key)
        return key

    def key_by_id(self, session: Session, vault_id: uuid.UUID, key_id: uuid.UUID) -> DataKey:
        cached = self._cached(vault_id, key_id)
        if cached is not None:
            return cached
        row = repo.get_data_key(session, vault_id, key_id)
        if row is None:
            raise IntegrityFailure()
        return self._unwrap(vault_id, row)

    # -- sealing helpers ---------------------------------------------------------
    def seal_text(self, session: Session, context: FieldContext, text: str) -> bytes:
        return seal(self.current_key(session, context.vault_id), context, text.encode())

    def seal_bytes(self, session: Session, context: FieldContext, data: bytes) -> bytes:
        return seal(self.current_key(session, context.vault_id), context, data)

    def open_bytes(self, session: Session, context: FieldContext, sealed: bytes) -> bytes:
        header = read_header(sealed)
        key = self.key_by_id(session, context.vault_id, header.key_id)
        return open_sealed(key, context, sealed)

    def open_text(self, session: Session, context: FieldContext, sealed: bytes) -> str:
        return self.open_bytes(session, context, sealed).decode()

    # -- operator actions ----------------------------------------------------------
    def rewrap_all(self, session: Session) -> int:
        """Re-wrap every data key under the current KEK (after ``rotate_kek``).

        Only the wrapping changes: the data keys, and so every ciphertext, stay as they are.
        """
        current = self.provider.current_kek_version()
        count = 0
        while batch := repo.data_keys_needing_rewrap(session, current, limit=500):
            for row in batch:
                self._rewrap_one(row)
                count += 1
            session.flush()
        return count

    def _rewrap_one(self, row: VaultDataKey) -> None:
        material = self.provider.unwrap_data_key(
            row.vault_id, row.id, WrappedKey(row.kek_version, row.wrapped_key)
        )
        wrapped = self.provider.wrap_data_key(row.vault_id, row.id, material)
        row.kek_version, row.wrapped_key = wrapped.kek_version, wrapped.blob
        row.rewrapped_at = utcnow()

    def destroy_vault_keys(self, session: Session, vault_id: uuid.UUID) -> None:
        """Crypto-shred: drop the wrapped keys and destroy the provider's vault secret."""
        repo.delete_data_keys(session, vault_id)
        with self._lock:
            for cache_key in [k for k in self._cache if k[0] == vault_id]:
                del self._cache[cache_key]
            self._current.pop(vault_id, None)
        self.provider.destroy_vault_secret(vault_id)
