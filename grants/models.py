"""Tables of the grants domain.

Nothing here is deleted to revoke: grants, tokens and codes end by timestamp, checked by
``is_active(now)`` (STYLE.md, practice 6). Secrets (tokens, codes, auth_req_ids) are
stored only as HMAC-SHA256 keyed hashes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, LargeBinary, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from vault.db_types import UTCDateTime, utcnow


class Agency(SQLModel, table=True):
    """An organisation registered by the operator, with its information sharing protocol:
    the purposes it may ask for, and whether it is a statutory body."""

    __tablename__ = "agency"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=200, unique=True, index=True)
    purposes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    statutory: bool = False
    # Longest grant this agency may ask for (DESIGN.md; default 90 days).
    max_duration_days: int = 90
    # Practitioner roles, besides "child_protection", the operator registered for
    # emergency access at this agency (only statutory agencies with that purpose).
    emergency_roles: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class OAuthClient(SQLModel, table=True):
    """An agency's system. Authenticates with private_key_jwt (RFC 7523) using its JWKS."""

    __tablename__ = "oauth_client"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    client_id: str = Field(max_length=64, unique=True, index=True)
    agency_id: uuid.UUID = Field(sa_column=Column(ForeignKey("agency.id"), nullable=False))
    # Public keys only; private key material is refused when registering.
    jwks: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    # "private_key_jwt", or "client_secret_basic" only when the operator allowed it.
    auth_method: str = Field(max_length=32, default="private_key_jwt")
    # HMAC of the client secret, when client_secret_basic is allowed; never the secret.
    secret_hash: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class UsedAssertion(SQLModel, table=True):
    """A client assertion's jti, kept until the assertion expires, so it cannot be replayed
    (RFC 7523 section 3, point 7). Shared by every worker through the database."""

    __tablename__ = "used_assertion"

    client_id: str = Field(primary_key=True, max_length=64)
    jti: str = Field(primary_key=True, max_length=200)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)


class ConnectionCode(SQLModel, table=True):
    """A one-time code a young person gives a practitioner. There is no directory of
    children: this (or an existing pairwise handle) is the only way to ask about one."""

    __tablename__ = "connection_code"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    vault_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("vault.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    # HMAC of the normalised code: a guess is checked without storing the code in clear.
    code_hash: str = Field(max_length=64, unique=True, index=True)
    # The code sealed with the vault's key, so the young person can show it again.
    code_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    def is_active(self, now: datetime) -> bool:
        return self.used_at is None and self.cancelled_at is None and now < self.expires_at


class PairwiseHandle(SQLModel, table=True):
    """How one agency names one young person: different for every agency, so agencies
    cannot join their data on it (Scotland's privacy principles)."""

    __tablename__ = "pairwise_handle"
    __table_args__ = (UniqueConstraint("agency_id", "vault_id"),)

    handle: str = Field(primary_key=True, max_length=64)
    agency_id: uuid.UUID = Field(sa_column=Column(ForeignKey("agency.id"), nullable=False))
    vault_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("vault.id", ondelete="CASCADE"), nullable=False)
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AccessRequest(SQLModel, table=True):
    """A CIBA backchannel authentication request, waiting for the young person."""

    __tablename__ = "access_request"
    __table_args__ = (Index("ix_access_request_vault_time", "vault_id", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # HMAC of the auth_req_id handed to the client.
    auth_req_hash: str = Field(max_length=64, unique=True, index=True)
    client_id: str = Field(max_length=64)
    agency_id: uuid.UUID = Field(sa_column=Column(ForeignKey("agency.id"), nullable=False))
    vault_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("vault.id", ondelete="CASCADE"), nullable=False)
    )
    # One RFC 9396 authorization_details item, validated.
    details: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    practitioner: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    # Set when the request came from Storykeep's own practitioner pages, not a client.
    practitioner_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(ForeignKey("practitioner.id"), nullable=True, index=True)
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # The young person must decide before this; then polling gets expired_token.
    decide_by: datetime = Field(sa_type=UTCDateTime)
    status: str = Field(default="pending", max_length=16)  # pending|approved|declined|lapsed
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The young person's own words for saying no: sealed with their vault's data key
    # (SECURITY.md: no plaintext content in the database; erasure shreds it), and never
    # sent to the agency. Read back with grants.service.decline_reason.
    decline_reason_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    poll_interval: int = 5
    last_polled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Set when the approved request has been exchanged for tokens (single use).
    redeemed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Grant(SQLModel, table=True):
    """What the young person agreed to: scoped, time-limited, revocable, never deleted."""

    __tablename__ = "access_grant"
    __table_args__ = (Index("ix_access_grant_vault_time", "vault_id", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # Indexed: the CIBA token poll finds the grant of its request on every poll.
    request_id: uuid.UUID = Field(
        sa_column=Column(
            ForeignKey("access_request.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    vault_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("vault.id", ondelete="CASCADE"), nullable=False)
    )
    agency_id: uuid.UUID = Field(sa_column=Column(ForeignKey("agency.id"), nullable=False))
    client_id: str = Field(max_length=64)
    categories: list[str] = Field(sa_column=Column(JSON, nullable=False))
    actions: list[str] = Field(sa_column=Column(JSON, nullable=False))
    record_ids: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    purpose: str = Field(max_length=64)
    practitioner: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    practitioner_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(ForeignKey("practitioner.id"), nullable=True, index=True)
    )
    lawful_basis: str = Field(default="consent", max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_by: str | None = Field(default=None, max_length=32)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Set by the lifecycle job once it has logged and told people that the grant ran out.
    end_noted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at


class OAuthToken(SQLModel, table=True):
    """An issued access or refresh token, stored only as HMAC-SHA256(secret, token)."""

    __tablename__ = "oauth_token"
    __table_args__ = (Index("ix_oauth_token_family", "family_id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    kind: str = Field(max_length=8)  # "access" | "refresh"
    grant_id: uuid.UUID = Field(
        sa_column=Column(
            ForeignKey("access_grant.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    client_id: str = Field(max_length=64)
    # Every token from one CIBA redemption shares a family; reuse of a rotated refresh
    # token revokes the whole family (RFC 9700 section 4.14.2).
    family_id: uuid.UUID
    issued_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # For refresh tokens: when it was exchanged (rotated). A second use is reuse.
    rotated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and self.rotated_at is None and now < self.expires_at


class AgencyOidc(SQLModel, table=True):
    """An agency's OpenID Connect provider for practitioner sign-in (OpenID Connect Core
    1.0, authorization code flow with PKCE). Set by the operator; the client secret is
    sealed with a key derived from the app secret, never stored in clear."""

    __tablename__ = "agency_oidc"

    agency_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("agency.id"), primary_key=True, nullable=False)
    )
    issuer: str = Field(max_length=300)
    client_id: str = Field(max_length=200)
    client_secret_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AdvocateInvite(SQLModel, table=True):
    """A one-time code a young person gives an advocate. Like a connection code: only a
    keyed hash is stored, plus the code sealed with the vault key to show it again."""

    __tablename__ = "advocate_invite"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    vault_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("vault.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    code_hash: str = Field(max_length=64, unique=True, index=True)
    code_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # Chosen by the young person when inviting: may the advocate stop a grant for them?
    can_stop_sharing: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    def is_active(self, now: datetime) -> bool:
        return self.used_at is None and self.cancelled_at is None and now < self.expires_at


class AdvocateLink(SQLModel, table=True):
    """An advocate helping one young person, from an accepted invite until removed."""

    __tablename__ = "advocate_link"
    __table_args__ = (
        Index("ix_advocate_link_vault", "vault_id"),
        # One active link per advocate and young person, even for two accepts at once.
        Index(
            "ux_advocate_link_active", "vault_id", "advocate_id", unique=True,
            postgresql_where=text("removed_at IS NULL"), sqlite_where=text("removed_at IS NULL"),
        ),
    )  # fmt: skip

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    vault_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("vault.id", ondelete="CASCADE"), nullable=False)
    )
    advocate_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("advocate.id"), nullable=False, index=True)
    )
    invite_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("advocate_invite.id", ondelete="CASCADE"), nullable=False)
    )
    can_stop_sharing: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    removed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    removed_by: str | None = Field(default=None, max_length=32)

    def is_active(self) -> bool:
        return self.removed_at is None


class Notification(SQLModel, table=True):
    """The outbox: every message to a person or an agency system is a row here first, in
    the same transaction as the event it tells of (the transactional outbox pattern), so
    a message is never lost and never sent for a change that did not land.

    Rows are never deleted. Delivery is at least once: a row is claimed with a lease,
    sent, then marked sent; a failure sets ``next_attempt_at`` with exponential backoff.
    ``subject`` and ``body`` are built from fixed wording (grants/notify/messages.py) and
    never hold story or record content.
    """

    __tablename__ = "notification"
    __table_args__ = (Index("ix_notification_due", "status", "next_attempt_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # young_person | practitioner | advocate | agency
    recipient_kind: str = Field(max_length=16)
    recipient_id: str = Field(max_length=64, index=True)
    channel: str = Field(max_length=16)  # console | smtp | webhook
    # The email address or webhook URL, sealed with a key derived from the app secret.
    address_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    kind: str = Field(max_length=32)
    subject: str = Field(max_length=200)
    body: str = Field(max_length=4000)
    # Stops a re-run job from queueing the same reminder twice.
    dedupe_key: str | None = Field(default=None, max_length=200, unique=True)
    status: str = Field(default="pending", max_length=16)  # pending | sent
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=300)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AgencyWebhook(SQLModel, table=True):
    """Where an agency's own system is told of decisions and expiries, signed with a
    shared secret (HMAC-SHA256) that is sealed with a key derived from the app secret."""

    __tablename__ = "agency_webhook"

    agency_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("agency.id"), primary_key=True, nullable=False)
    )
    url: str = Field(max_length=500)
    secret_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class EmergencyReviewer(SQLModel, table=True):
    """A practitioner the operator registered to review emergency access independently
    (``storykeep reviewer add``). Never reviews their own agency's emergencies."""

    __tablename__ = "emergency_reviewer"

    practitioner_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("practitioner.id"), primary_key=True, nullable=False)
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class EmergencyAccess(SQLModel, table=True):
    """Child-protection access opened without the young person's approval. Its lawful
    basis is never consent. The reason and any deferral reason are sealed with the vault
    key: they are about the child."""

    __tablename__ = "emergency_access"
    __table_args__ = (Index("ix_emergency_access_vault_agency", "vault_id", "agency_id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    grant_id: uuid.UUID = Field(
        sa_column=Column(
            ForeignKey("access_grant.id", ondelete="CASCADE"), nullable=False, unique=True
        )
    )
    vault_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("vault.id", ondelete="CASCADE"), nullable=False)
    )
    agency_id: uuid.UUID = Field(sa_column=Column(ForeignKey("agency.id"), nullable=False))
    reason_code: str = Field(max_length=64)
    reason_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Telling the young person may be put off only by a recorded decision: a reason and
    # an end date at most 7 days away. Then they are told.
    notice_deferred_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    deferral_reason_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    young_person_told_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The independent review.
    reviewed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    reviewer_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(ForeignKey("practitioner.id"), nullable=True)
    )
    review_outcome: str | None = Field(default=None, max_length=16)  # justified | not_justified
    review_notes_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    overdue_flagged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
