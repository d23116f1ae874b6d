"""People who sign in, their sessions and sign-in throttling, all kept in the database so
any number of app workers share them (DESIGN.md, "Scale and deployment").

Young people sign in with ``WebSession``. Practitioners and advocates are separate
accounts with their own ``StaffSession``: a young person's cookie can never be confused
with a worker's, and each kind of page accepts only its own kind of session."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, ForeignKey, LargeBinary
from sqlmodel import Field, SQLModel

from vault.db_types import UTCDateTime, utcnow


class WebSession(SQLModel, table=True):
    __tablename__ = "web_session"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # HMAC-SHA256(secret key, cookie token): a leaked table cannot be replayed as cookies.
    token_hash: str = Field(max_length=64, unique=True, index=True)
    young_person_id: uuid.UUID = Field(
        sa_column=Column(
            ForeignKey("young_person.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # When the password was last entered; step-up checks this, not created_at.
    authenticated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Absolute end of the session, whatever the activity.
    expires_at: datetime = Field(sa_type=UTCDateTime)
    # Signing out sets this; sessions are ended by timestamp, never deleted on sign-out.
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    def is_active(self, now: datetime, idle_seconds: int) -> bool:
        return (
            self.revoked_at is None
            and now < self.expires_at
            and (now - self.last_seen_at).total_seconds() < idle_seconds
        )


class SignInThrottle(SQLModel, table=True):
    """Failed sign-ins in the current window, per account and per address.

    ``key`` is an HMAC of "account:<username>" or "address:<ip>", so the table stores no
    usernames or addresses in clear.
    """

    __tablename__ = "sign_in_throttle"

    key: str = Field(primary_key=True, max_length=64)
    window_started_at: datetime = Field(sa_type=UTCDateTime)
    failures: int = 0


class Practitioner(SQLModel, table=True):
    """A worker at a registered agency (teacher, social worker, nurse, police officer).

    Signs in with a password and a TOTP code (RFC 6238), or with the agency's OpenID
    Connect provider when the operator configured one (then ``oidc_subject`` is set on
    first sign-in). Requests made from the practitioner pages carry this account's
    name, role and email, exactly as an agency client's ``practitioner`` object would.
    """

    __tablename__ = "practitioner"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    name: str = Field(max_length=100)
    role: str = Field(max_length=100)
    agency_id: uuid.UUID = Field(sa_column=Column(ForeignKey("agency.id"), nullable=False))
    # Argon2id; None for OpenID Connect-only accounts.
    password_hash: str | None = Field(default=None, max_length=200)
    # The TOTP shared secret, sealed with a key derived from the app secret.
    totp_secret_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    # The last accepted TOTP time step: a code is never accepted twice (RFC 6238 s5.2).
    totp_last_step: int | None = None
    oidc_subject: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Advocate(SQLModel, table=True):
    """An independent advocacy worker a young person invited. Sees grants, requests and
    who has looked, for each young person who invited them; never record or story
    content."""

    __tablename__ = "advocate"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    name: str = Field(max_length=100)
    password_hash: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class StaffSession(SQLModel, table=True):
    """A signed-in practitioner or advocate. Same rules as ``WebSession``: HMAC-hashed
    token, idle and absolute timeouts, ended by timestamp."""

    __tablename__ = "staff_session"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    kind: str = Field(max_length=16)  # "practitioner" | "advocate"
    account_id: uuid.UUID = Field(index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    authenticated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    def is_active(self, now: datetime, idle_seconds: int) -> bool:
        return (
            self.revoked_at is None
            and now < self.expires_at
            and (now - self.last_seen_at).total_seconds() < idle_seconds
        )
