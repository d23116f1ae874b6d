"""Small secrets sealed with a key derived from the app secret.

For values the service must read back but that are not vault content: TOTP seeds, OIDC
client secrets, webhook secrets, notification addresses. AES-256-GCM (NIST SP 800-38D)
keyed by HKDF-SHA256(app secret, purpose) (RFC 5869); the purpose is also the associated
data, so a value sealed for one purpose cannot be opened as another.
"""

from __future__ import annotations

import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12


def _aead(app_secret: bytes, purpose: str) -> AESGCM:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"storykeep:{purpose}".encode()
    ).derive(app_secret)
    return AESGCM(key)


def seal(app_secret: bytes, purpose: str, value: str) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + _aead(app_secret, purpose).encrypt(nonce, value.encode(), purpose.encode())


def open_sealed(app_secret: bytes, purpose: str, sealed: bytes) -> str:
    plain = _aead(app_secret, purpose).decrypt(
        sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], purpose.encode()
    )
    return plain.decode()
