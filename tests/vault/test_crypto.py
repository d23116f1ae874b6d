"""Envelope format: tampering and misplaced ciphertexts fail closed, never with garbage."""

from __future__ import annotations

import struct
import uuid

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.crypto import HEADER_BYTES, DataKey, FieldContext, open_sealed, read_header, seal
from vault.errors import IntegrityFailure


@pytest.fixture
def key() -> DataKey:
    return DataKey(key_id=uuid.uuid4(), version=3, material=AESGCM.generate_key(bit_length=256))


@pytest.fixture
def context() -> FieldContext:
    return FieldContext(uuid.uuid4(), "story_entry", uuid.uuid4(), "body", 1)


class TestSeal:
    def test_round_trip(self, key: DataKey, context: FieldContext) -> None:
        assert open_sealed(key, context, seal(key, context, b"my story")) == b"my story"

    def test_header_names_algorithm_key_version_and_key_id(
        self, key: DataKey, context: FieldContext
    ) -> None:
        sealed = seal(key, context, b"x")
        magic, fmt, alg, version, key_id, _ = struct.unpack_from(">3sBBI16s12s", sealed)
        assert (magic, fmt, alg, version) == (b"SKE", 1, 1, 3)
        assert uuid.UUID(bytes=key_id) == key.key_id
        assert read_header(sealed).key_id == key.key_id

    def test_nonce_is_fresh_each_time(self, key: DataKey, context: FieldContext) -> None:
        nonces = {seal(key, context, b"same")[HEADER_BYTES - 12 : HEADER_BYTES] for _ in range(50)}
        assert len(nonces) == 50

    def test_plaintext_not_in_ciphertext(self, key: DataKey, context: FieldContext) -> None:
        assert b"secret words" not in seal(key, context, b"secret words")

    def test_repr_hides_key_material(self, key: DataKey) -> None:
        assert key.material.hex() not in repr(key)
        assert str(key.material) not in repr(key)


class TestTampering:
    def test_every_flipped_byte_fails(self, key: DataKey, context: FieldContext) -> None:
        sealed = seal(key, context, b"a record body")
        for index in range(len(sealed)):
            broken = bytearray(sealed)
            broken[index] ^= 0x01
            with pytest.raises(IntegrityFailure):
                open_sealed(key, context, bytes(broken))

    def test_truncated_fails(self, key: DataKey, context: FieldContext) -> None:
        sealed = seal(key, context, b"a record body")
        for cut in (0, 5, HEADER_BYTES, len(sealed) - 1):
            with pytest.raises(IntegrityFailure):
                open_sealed(key, context, sealed[:cut])

    @pytest.mark.parametrize("change", ["vault_id", "row_id", "field", "version", "table"])
    def test_other_place_fails(self, key: DataKey, context: FieldContext, change: str) -> None:
        sealed = seal(key, context, b"belongs here")
        moved = {
            "vault_id": FieldContext(uuid.uuid4(), context.table, context.row_id, "body", 1),
            "row_id": FieldContext(context.vault_id, context.table, uuid.uuid4(), "body", 1),
            "field": FieldContext(context.vault_id, context.table, context.row_id, "title", 1),
            "version": FieldContext(context.vault_id, context.table, context.row_id, "body", 2),
            "table": FieldContext(context.vault_id, "agency_record", context.row_id, "body", 1),
        }[change]
        with pytest.raises(IntegrityFailure):
            open_sealed(key, moved, sealed)

    def test_other_key_fails(self, key: DataKey, context: FieldContext) -> None:
        other = DataKey(key.key_id, key.version, AESGCM.generate_key(bit_length=256))
        with pytest.raises(IntegrityFailure):
            open_sealed(other, context, seal(key, context, b"x"))
