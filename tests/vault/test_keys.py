"""The local key-file provider: file modes, rotation and crypto-shredding."""

from __future__ import annotations

import stat
import threading
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.errors import IntegrityFailure
from vault.keys import KeyFileInsecure, LocalKeyFileProvider


@pytest.fixture
def provider(tmp_path: Path) -> LocalKeyFileProvider:
    return LocalKeyFileProvider(tmp_path / "keys" / "storykeep.keys").load_or_create()


class TestKeyFile:
    def test_created_owner_only(self, provider: LocalKeyFileProvider) -> None:
        assert stat.S_IMODE(provider.key_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(provider.store_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(provider.key_file.parent.stat().st_mode) == 0o700

    @pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
    def test_refuses_key_file_readable_by_others(
        self, provider: LocalKeyFileProvider, mode: int
    ) -> None:
        provider.key_file.chmod(mode)
        with pytest.raises(KeyFileInsecure, match="chmod 600"):
            LocalKeyFileProvider(provider.key_file).load_or_create()

    def test_reloads_same_keys(self, provider: LocalKeyFileProvider) -> None:
        vault_id, key_id = uuid.uuid4(), uuid.uuid4()
        provider.create_vault_secret(vault_id)
        wrapped = provider.wrap_data_key(vault_id, key_id, b"k" * 32)
        again = LocalKeyFileProvider(provider.key_file).load_or_create()
        assert again.unwrap_data_key(vault_id, key_id, wrapped) == b"k" * 32
        assert again.public_key_pem() == provider.public_key_pem()

    def test_repr_shows_no_key_material(self, provider: LocalKeyFileProvider) -> None:
        assert "kek" not in repr(provider).lower() or "key_file" in repr(provider)
        for kek in provider._keks.values():
            assert kek.hex() not in repr(provider)


class TestRotation:
    def test_old_wraps_still_open_and_new_wraps_use_new_version(
        self, provider: LocalKeyFileProvider
    ) -> None:
        vault_id, key_id = uuid.uuid4(), uuid.uuid4()
        provider.create_vault_secret(vault_id)
        material = AESGCM.generate_key(bit_length=256)
        old = provider.wrap_data_key(vault_id, key_id, material)
        assert provider.rotate_kek() == 2
        new = provider.wrap_data_key(vault_id, key_id, material)
        assert (old.kek_version, new.kek_version) == (1, 2)
        assert provider.unwrap_data_key(vault_id, key_id, old) == material
        assert provider.unwrap_data_key(vault_id, key_id, new) == material
        assert stat.S_IMODE(provider.key_file.stat().st_mode) == 0o600


class TestShredding:
    def test_destroyed_secret_cannot_unwrap(self, provider: LocalKeyFileProvider) -> None:
        vault_id, key_id = uuid.uuid4(), uuid.uuid4()
        provider.create_vault_secret(vault_id)
        wrapped = provider.wrap_data_key(vault_id, key_id, b"k" * 32)
        secret = provider._vault_secret(vault_id)
        provider.destroy_vault_secret(vault_id)
        with pytest.raises(IntegrityFailure):
            provider.unwrap_data_key(vault_id, key_id, wrapped)
        # secure_delete + VACUUM: the secret's bytes are gone from the key store file.
        assert secret not in provider.store_file.read_bytes()

    def test_shredding_works_while_another_thread_keeps_its_reading_connection(
        self, provider: LocalKeyFileProvider
    ) -> None:
        """Each thread keeps a connection to the key store for reading; one held open by
        a busy writer thread must not stop an erasure or keep the secret readable."""
        vault_id, key_id = uuid.uuid4(), uuid.uuid4()
        provider.create_vault_secret(vault_id)
        wrapped = provider.wrap_data_key(vault_id, key_id, b"k" * 32)
        has_read, erased = threading.Event(), threading.Event()
        seen: list[object] = []

        def reader() -> None:
            seen.append(provider._vault_secret(vault_id))
            has_read.set()
            erased.wait(10)
            try:  # the same thread, its same connection, after the erasure
                provider.unwrap_data_key(vault_id, key_id, wrapped)
                seen.append("unwrapped")
            except IntegrityFailure:
                seen.append("refused")

        thread = threading.Thread(target=reader)
        thread.start()
        assert has_read.wait(10)
        provider.destroy_vault_secret(vault_id)
        erased.set()
        thread.join(10)
        assert seen[1:] == ["refused"]
        assert seen[0] not in provider.store_file.read_bytes()

    def test_wrapped_key_is_bound_to_its_vault_and_id(self, provider: LocalKeyFileProvider) -> None:
        vault_a, vault_b, key_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        provider.create_vault_secret(vault_a)
        provider.create_vault_secret(vault_b)
        wrapped = provider.wrap_data_key(vault_a, key_id, b"k" * 32)
        with pytest.raises(IntegrityFailure):
            provider.unwrap_data_key(vault_b, key_id, wrapped)
        with pytest.raises(IntegrityFailure):
            provider.unwrap_data_key(vault_a, uuid.uuid4(), wrapped)
