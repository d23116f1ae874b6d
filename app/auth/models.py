"""Sign-in sessions and sign-in throttling, both kept in the database so any number of
app workers share them (DESIGN.md, "Scale and deployment")."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, ForeignKey
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
