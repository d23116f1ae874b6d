"""Versioned AES-256-GCM envelopes for vault content (NIST SP 800-38D).

Layout of a sealed value (all integers big-endian)::

    b"SKE"  format(1)=1  alg(1)=1 (AES-256-GCM)  key_version(4)  key_id(16)  nonce(12)  ct||tag

The header names the algorithm, the data key's version and its id, so a reader knows
which key to fetch and a future format can sit beside this one. The associated data is
the header plus the *context*: vault id, table, row id, field and row version. A value
copied into another row, field, vault or version fails authentication, and so does any
flipped bit. Failure is an :class:`IntegrityFailure`, never garbage.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.errors import IntegrityFailure

MAGIC = b"SKE"
FORMAT_VERSION = 1
ALG_AES_256_GCM = 1
_HEADER = struct.Struct(">3sBBI16s12s")
HEADER_BYTES = _HEADER.size


@dataclass(frozen=True)
class FieldContext:
    """Where a ciphertext belongs. Bound into the AEAD associated data."""

    vault_id: UUID
    table: str
    row_id: UUID
    field: str
    version: int

    def aad(self) -> bytes:
        return (
            f"storykeep/v1|vault={self.vault_id.hex}|table={self.table}|"
            f"row={self.row_id.hex}|field={self.field}|version={self.version}"
        ).encode()


@dataclass(frozen=True)
class DataKey:
    key_id: UUID
    version: int
    material: bytes

    def __repr__(self) -> str:
        return f"DataKey(key_id={self.key_id}, version={self.version}, material=<hidden>)"


@dataclass(frozen=True)
class EnvelopeHeader:
    key_version: int
    key_id: UUID


def seal(key: DataKey, context: FieldContext, plaintext: bytes) -> bytes:
    nonce = secrets.token_bytes(12)
    header = _HEADER.pack(
        MAGIC, FORMAT_VERSION, ALG_AES_256_GCM, key.version, key.key_id.bytes, nonce
    )
    return header + AESGCM(key.material).encrypt(nonce, plaintext, header + context.aad())


def read_header(sealed: bytes) -> EnvelopeHeader:
    if len(sealed) < HEADER_BYTES + 16:
        raise IntegrityFailure()
    magic, fmt, alg, key_version, key_id, _nonce = _HEADER.unpack_from(sealed)
    if magic != MAGIC or fmt != FORMAT_VERSION or alg != ALG_AES_256_GCM:
        raise IntegrityFailure()
    return EnvelopeHeader(key_version=key_version, key_id=UUID(bytes=key_id))


def open_sealed(key: DataKey, context: FieldContext, sealed: bytes) -> bytes:
    header = read_header(sealed)
    if header.key_id != key.key_id or header.key_version != key.version:
        raise IntegrityFailure()
    nonce = sealed[HEADER_BYTES - 12 : HEADER_BYTES]
    try:
        return AESGCM(key.material).decrypt(
            nonce, sealed[HEADER_BYTES:], sealed[:HEADER_BYTES] + context.aad()
        )
    except InvalidTag as exc:
        raise IntegrityFailure() from exc
