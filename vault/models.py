"""Tables of the vault domain: young people, vaults, keys, content and the audit log.

Content columns (``*_sealed``) hold AES-256-GCM envelopes from :mod:`vault.crypto`; they
never appear in a ``Public`` schema. Metadata needed for scoping stays in clear text:
category, dates and author agency (DESIGN.md, "Data rules").
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from vault.db_types import UTCDateTime, utcnow


class YoungPerson(SQLModel, table=True):
    """An account. Only a username: no email and no real name (ask for as little as we can)."""

    __tablename__ = "young_person"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # Stored lower-cased so "Sam" and "sam" cannot be two people.
    username: str = Field(max_length=40, unique=True, index=True)
    # Argon2id (RFC 9106) PHC string; protects the password if the database leaks.
    password_hash: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Vault(SQLModel, table=True):
    """One per young person. Kept as a tombstone after erasure so the audit log still
    has something to point at; the link to the person is cut."""

    __tablename__ = "vault"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    young_person_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(
            ForeignKey("young_person.id", ondelete="SET NULL"), unique=True, nullable=True
        ),
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    erased_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class VaultDataKey(SQLModel, table=True):
    """A vault's data key, wrapped by the key provider. The raw key never touches disk."""

    __tablename__ = "vault_data_key"
    __table_args__ = (UniqueConstraint("vault_id", "version"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    vault_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("vault.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    version: int = 1
    # Which KEK version wrapped it; ``keys rotate`` moves every row to the newest.
    kek_version: int
    wrapped_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    rewrapped_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AgencyRecord(SQLModel, table=True):
    """A record an agency wrote about a young person. The young person never edits it:
    they add "my view" notes (and, later, ask for corrections that make new versions)."""

    __tablename__ = "agency_record"
    __table_args__ = (Index("ix_agency_record_vault_time", "vault_id", "occurred_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    vault_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("vault.id", ondelete="CASCADE"), nullable=False)
    )
    agency: str = Field(max_length=200)
    author_name: str = Field(max_length=200)
    author_role: str = Field(max_length=200)
    category: str = Field(max_length=40)
    shanarri: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    title_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    body_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    version: int = 1


class StoryEntry(SQLModel, table=True):
    """Something the young person wrote. Private unless they mark it shareable."""

    __tablename__ = "story_entry"
    __table_args__ = (Index("ix_story_entry_vault_time", "vault_id", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    vault_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("vault.id", ondelete="CASCADE"), nullable=False)
    )
    title_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    body_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    shareable: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Bumped on every edit; bound into the ciphertexts' associated data.
    version: int = 1


class StoryPhoto(SQLModel, table=True):
    """The optional photo of a story entry, encrypted whole."""

    __tablename__ = "story_photo"

    entry_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("story_entry.id", ondelete="CASCADE"), primary_key=True)
    )
    vault_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("vault.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    content_type: str = Field(max_length=40)
    size_bytes: int
    content_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    version: int = 1


class ViewNote(SQLModel, table=True):
    """A young person's "my view" on an agency record."""

    __tablename__ = "view_note"
    __table_args__ = (Index("ix_view_note_record_time", "record_id", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    vault_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("vault.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    record_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("agency_record.id", ondelete="CASCADE"), nullable=False)
    )
    body_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AuditEvent(SQLModel, table=True):
    """One entry in a vault's append-only, hash-chained audit log. Never holds content.

    ``chain`` is the vault id (hex) or ``operator`` for service-wide operator actions.
    Rows are never updated or deleted, not even when the vault is erased: the log is the
    accountability record of who looked, and it names no content.
    """

    __tablename__ = "audit_event"
    __table_args__ = (
        UniqueConstraint("chain", "seq"),
        Index("ix_audit_event_chain_time", "chain", "occurred_at"),
        # The daily "who looked" summary reads one day across all vaults.
        Index("ix_audit_event_time", "occurred_at"),
    )

    # BIGINT on PostgreSQL (100M events); SQLite only autoincrements an INTEGER rowid.
    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    chain: str = Field(max_length=40)
    seq: int
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    # Tags follow warehouse's style: "<object>:<verb>", e.g. "entry:created", "record:read".
    action: str = Field(max_length=64)
    actor_type: str = Field(max_length=32)
    actor_id: str = Field(max_length=64)
    actor_label: str = Field(max_length=200)
    agency: str | None = Field(default=None, max_length=200)
    purpose: str | None = Field(default=None, max_length=64)
    grant_id: str | None = Field(default=None, max_length=64)
    object_type: str | None = Field(default=None, max_length=32)
    object_id: str | None = Field(default=None, max_length=64)
    prev_hash: str = Field(max_length=64)
    entry_hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """The signed head of one chain; locked while appending so appends are serial."""

    __tablename__ = "audit_head"

    chain: str = Field(primary_key=True, max_length=40)
    seq: int = 0
    entry_hash: str = Field(max_length=64)
    # Ed25519 signature (hex) over chain.head_message(chain, seq, entry_hash).
    signature: str = Field(max_length=128)
    signed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CorrectionRequest(SQLModel, table=True):
    """A young person's request to correct a record (UK GDPR Article 16, right to
    rectification), in their own words. The safeguarding issue routes it to the agency;
    until then it is recorded and shown back to the young person."""

    __tablename__ = "correction_request"
    __table_args__ = (Index("ix_correction_request_record_time", "record_id", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    vault_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("vault.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    record_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("agency_record.id", ondelete="CASCADE"), nullable=False)
    )
    body_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    status: str = Field(default="open", max_length=16)  # open | accepted | declined
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Who at the agency decided (practitioner email or client id) and, when declining,
    # why (required; sealed, it is about the child).
    decided_by: str | None = Field(default=None, max_length=254)
    decline_reason_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    # The young person's statement, which travels with the record whenever it is shared
    # (UK GDPR Article 16 and ICO guidance on the right to rectification).
    statement_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    statement_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AgencyRecordVersion(SQLModel, table=True):
    """An earlier version of a record, kept when an accepted correction replaces it.

    The ciphertexts are moved here unchanged, so they still open only with their
    original context: table ``agency_record``, the record's id and *this* version."""

    __tablename__ = "agency_record_version"
    __table_args__ = (UniqueConstraint("record_id", "version"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    record_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("agency_record.id", ondelete="CASCADE"), nullable=False)
    )
    vault_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("vault.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    version: int
    title_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    body_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    written_at: datetime = Field(sa_type=UTCDateTime)
    replaced_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    correction_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(ForeignKey("correction_request.id", ondelete="SET NULL"), nullable=True),
    )


class NotificationPreference(SQLModel, table=True):
    """How a young person wants to hear from Storykeep. Without an email address,
    messages wait for them in the app (the console channel in development)."""

    __tablename__ = "notification_preference"

    young_person_id: uuid.UUID = Field(
        sa_column=Column(
            ForeignKey("young_person.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    # Sealed with a key derived from the app secret (vault/sealing.py).
    email_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    # When someone looks at their things: "immediate" or "daily" (a summary), by choice.
    access_mode: str = Field(default="daily", max_length=16)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
