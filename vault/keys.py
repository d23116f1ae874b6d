"""Key providers: where key-encryption keys (KEKs) and the audit signing key live.

Envelope encryption (NIST SP 800-57 Part 1, section 6.2.2.1 terms): every vault has its
own AES-256 data key. The database only ever holds that data key *wrapped*. Unwrapping
needs two things the database does not hold:

* the current or an older version of the service's KEK, which ``keys rotate`` replaces;
* a per-vault "shred secret" kept by the key provider, outside the database.

Erasure destroys the shred secret (crypto-shredding). A copy of the database taken
before erasure, backups included, still holds the wrapped key, but the key material that
remains can no longer unwrap it. A KMS-backed provider implements the same protocol
with a per-vault key or key-store entry in place of the shred secret.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import sqlite3
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault.errors import IntegrityFailure, KeyUnavailable, StorykeepError

KEY_FILE_FORMAT = 1
NONCE_BYTES = 12  # 96-bit random nonce, as SP 800-38D recommends for GCM


class KeyFileInsecure(StorykeepError):
    """The key file can be read by other users: refuse to start (SECURITY.md)."""


@dataclass(frozen=True)
class WrappedKey:
    kek_version: int
    blob: bytes

    def __repr__(self) -> str:  # never show key material, even wrapped
        return f"WrappedKey(kek_version={self.kek_version}, blob=<{len(self.blob)} bytes>)"


class KeyProvider(Protocol):
    """What the vault needs from whatever holds the keys (local file, KMS, HSM)."""

    def current_kek_version(self) -> int: ...

    def create_vault_secret(self, vault_id: UUID) -> None: ...

    def destroy_vault_secret(self, vault_id: UUID) -> None: ...

    def wrap_data_key(self, vault_id: UUID, key_id: UUID, data_key: bytes) -> WrappedKey: ...

    def unwrap_data_key(self, vault_id: UUID, key_id: UUID, wrapped: WrappedKey) -> bytes: ...

    def rotate_kek(self) -> int: ...

    def sign(self, message: bytes) -> bytes: ...

    def public_key_pem(self) -> bytes: ...


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def check_key_file_permissions(path: Path) -> None:
    """Refuse a key file that group or others can read or write (SECURITY.md)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileInsecure(
            f"The key file {path} has mode {mode:o}; it must be readable by its owner "
            f"only. Run: chmod 600 {path}"
        )


def _write_private(path: Path, data: bytes) -> None:
    """Write a file atomically with mode 0600 from the first byte (no umask window)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class LocalKeyFileProvider:
    """The embedded default: a JSON key file (mode 0600) plus a small key store.

    The key file holds every KEK version and the Ed25519 audit signing key. The per-vault
    shred secrets live in ``<key file>.vaults`` (SQLite with ``secure_delete`` so a
    destroyed secret is overwritten, not just unlinked from a page). Keep backups of the
    key material apart from database backups: that separation is what makes erasure real.
    """

    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file
        self.store_file = key_file.with_name(key_file.name + ".vaults")
        self._lock = threading.Lock()
        self._keks: dict[int, bytes] = {}
        self._current = 0
        self._signing_key: Ed25519PrivateKey | None = None
        self._loaded_mtime_ns = 0
        self._readers = threading.local()  # each thread's reading connection to the store

    def __repr__(self) -> str:
        return f"LocalKeyFileProvider(key_file={str(self.key_file)!r})"

    # -- lifecycle -------------------------------------------------------------
    def load_or_create(self) -> LocalKeyFileProvider:
        """Create the key file on first start; otherwise check its mode and load it."""
        with self._lock:
            if not self.key_file.exists():
                self._keks = {1: AESGCM.generate_key(bit_length=256)}
                self._current = 1
                self._signing_key = Ed25519PrivateKey.generate()
                self._save()
            else:
                self._load()
            self._init_store()
        return self

    def load_existing(self) -> LocalKeyFileProvider:
        """Load keys that must already be there: for upgrading existing data, where a new
        key file (or an empty key store) could open nothing and would only hide why."""
        with self._lock:
            for path in (self.key_file, self.store_file):
                if not path.exists():
                    raise KeyUnavailable(f"The key file {path} is not there")
            self._load()
            check_key_file_permissions(self.store_file)
        return self

    def _load(self) -> None:
        check_key_file_permissions(self.key_file)
        try:
            self._loaded_mtime_ns = self.key_file.stat().st_mtime_ns
            doc = json.loads(self.key_file.read_bytes())
            if doc.get("format") != KEY_FILE_FORMAT:
                raise KeyUnavailable(f"Unknown key file format in {self.key_file}")
            self._keks = {int(v): _unb64(k) for v, k in doc["kek"]["versions"].items()}
            self._current = int(doc["kek"]["current"])
            self._signing_key = Ed25519PrivateKey.from_private_bytes(
                _unb64(doc["audit_signing_key"])
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KeyUnavailable(f"The key file {self.key_file} cannot be read") from exc
        if self._current not in self._keks:
            raise KeyUnavailable(f"The key file {self.key_file} names a missing KEK version")

    def _reload_if_changed(self) -> None:
        """Pick up a rotation that ``storykeep keys rotate`` made in another process."""
        try:
            changed = self.key_file.stat().st_mtime_ns != self._loaded_mtime_ns
        except OSError as exc:
            raise KeyUnavailable(f"The key file {self.key_file} cannot be read") from exc
        if changed:
            with self._lock:
                self._load()

    def _signer(self) -> Ed25519PrivateKey:
        if self._signing_key is None:
            raise KeyUnavailable("The key provider has not been loaded")
        return self._signing_key

    def _save(self) -> None:
        doc = {
            "format": KEY_FILE_FORMAT,
            "kek": {
                "current": self._current,
                "versions": {str(v): _b64(k) for v, k in sorted(self._keks.items())},
            },
            "audit_signing_key": _b64(
                self._signer().private_bytes(
                    serialization.Encoding.Raw,
                    serialization.PrivateFormat.Raw,
                    serialization.NoEncryption(),
                )
            ),
        }
        _write_private(self.key_file, json.dumps(doc, indent=2).encode())
        self._loaded_mtime_ns = self.key_file.stat().st_mtime_ns

    @contextlib.contextmanager
    def _store(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self.store_file, timeout=10, isolation_level=None)
        except sqlite3.Error as exc:
            raise KeyUnavailable("The vault key store cannot be opened") from exc
        try:
            conn.execute("PRAGMA secure_delete=ON")
            conn.execute("PRAGMA synchronous=FULL")
            yield conn
        except sqlite3.Error as exc:
            raise KeyUnavailable("The vault key store cannot be used") from exc
        finally:
            conn.close()

    def _init_store(self) -> None:
        if not self.store_file.exists():
            fd = os.open(self.store_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
        check_key_file_permissions(self.store_file)
        with self._store() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS vault_secret ("
                " vault_id TEXT PRIMARY KEY, secret BLOB NOT NULL)"
            )

    # -- per-vault shred secrets ----------------------------------------------
    def create_vault_secret(self, vault_id: UUID) -> None:
        with self._store() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO vault_secret (vault_id, secret) VALUES (?, ?)",
                (vault_id.hex, secrets.token_bytes(32)),
            )

    def destroy_vault_secret(self, vault_id: UUID) -> None:
        with self._store() as conn:
            conn.execute("DELETE FROM vault_secret WHERE vault_id = ?", (vault_id.hex,))
            conn.execute("VACUUM")  # with secure_delete, leaves no copy in free pages

    def _vault_secret(self, vault_id: UUID) -> bytes:
        # Each thread keeps one reading connection: opening the store costs more than the
        # lookup, and every unwrap needs one. fetchall() ends the statement, so no read
        # lock outlives the call to hold up an erasure's DELETE and VACUUM.
        conn = getattr(self._readers, "conn", None)
        try:
            if conn is None:
                conn = sqlite3.connect(self.store_file, timeout=10, isolation_level=None)
                self._readers.conn = conn
            rows = conn.execute(
                "SELECT secret FROM vault_secret WHERE vault_id = ?", (vault_id.hex,)
            ).fetchall()
        except sqlite3.Error as exc:
            self._readers.conn = None
            raise KeyUnavailable("The vault key store cannot be used") from exc
        if not rows:
            # Erased (or never created): fail closed, never with garbage.
            raise IntegrityFailure("This vault's key has been destroyed.")
        return bytes(rows[0][0])

    # -- wrapping ---------------------------------------------------------------
    def current_kek_version(self) -> int:
        self._reload_if_changed()
        return self._current

    def _wrapping_key(self, kek_version: int, vault_id: UUID) -> bytes:
        if kek_version not in self._keks:
            self._reload_if_changed()
        try:
            kek = self._keks[kek_version]
        except KeyError as exc:
            raise KeyUnavailable(f"KEK version {kek_version} is not in the key file") from exc
        # HKDF (RFC 5869): the wrapping key needs both the KEK and the vault's secret.
        return HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=self._vault_secret(vault_id),
            info=b"storykeep/wrap/v1/" + vault_id.bytes,
        ).derive(kek)

    @staticmethod
    def _wrap_aad(vault_id: UUID, key_id: UUID, kek_version: int) -> bytes:
        return b"storykeep/dk/v1|" + vault_id.bytes + key_id.bytes + kek_version.to_bytes(4)

    def wrap_data_key(self, vault_id: UUID, key_id: UUID, data_key: bytes) -> WrappedKey:
        version = self.current_kek_version()
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(self._wrapping_key(version, vault_id)).encrypt(
            nonce, data_key, self._wrap_aad(vault_id, key_id, version)
        )
        return WrappedKey(kek_version=version, blob=nonce + sealed)

    def unwrap_data_key(self, vault_id: UUID, key_id: UUID, wrapped: WrappedKey) -> bytes:
        nonce, sealed = wrapped.blob[:NONCE_BYTES], wrapped.blob[NONCE_BYTES:]
        try:
            return AESGCM(self._wrapping_key(wrapped.kek_version, vault_id)).decrypt(
                nonce, sealed, self._wrap_aad(vault_id, key_id, wrapped.kek_version)
            )
        except InvalidTag as exc:
            raise IntegrityFailure("A vault key failed its integrity check.") from exc

    def rotate_kek(self) -> int:
        """Add a new KEK version and make it current. Old versions stay to unwrap."""
        with self._lock:
            self._load()
            self._current = max(self._keks) + 1
            self._keks[self._current] = AESGCM.generate_key(bit_length=256)
            self._save()
            return self._current

    # -- audit signing -----------------------------------------------------------
    def sign(self, message: bytes) -> bytes:
        return self._signer().sign(message)

    def public_key_pem(self) -> bytes:
        return (
            self._signer()
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
