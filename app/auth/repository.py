"""Queries for people who sign in, their sessions and sign-in throttling."""

from __future__ import annotations

import functools
from datetime import datetime

from sqlalchemy import bindparam
from sqlalchemy import select as sa_select
from sqlmodel import Session, select

from app.auth.models import Advocate, Practitioner, SignInThrottle, StaffSession, WebSession
from vault.driver_sql import DriverStatement


def session_by_token_hash(session: Session, token_hash: str) -> WebSession | None:
    return session.exec(select(WebSession).where(WebSession.token_hash == token_hash)).first()


def lock_throttle(session: Session, key: str) -> SignInThrottle | None:
    return session.exec(
        select(SignInThrottle).where(SignInThrottle.key == key).with_for_update()
    ).first()


_THROTTLE = SignInThrottle.__table__  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=4)
def _throttle_counts(keys: int) -> DriverStatement:
    # One prebuilt statement per number of keys (always two today: account and address);
    # it runs before every sign-in and every OAuth client authentication.
    return DriverStatement(
        sa_select(_THROTTLE.c.key, _THROTTLE.c.window_started_at, _THROTTLE.c.failures).where(
            _THROTTLE.c.key.in_([bindparam(f"key_{i}") for i in range(keys)])
        )
    )


def throttle_counts(session: Session, keys: list[str]) -> dict[str, tuple[datetime, int]]:
    """Window start and failures per key, without locking (the common, successful case)."""
    rows = _throttle_counts(len(keys)).all(session, {f"key_{i}": k for i, k in enumerate(keys)})
    return {row.key: (row.window_started_at, row.failures) for row in rows}


def staff_session_by_token_hash(session: Session, token_hash: str) -> StaffSession | None:
    return session.exec(select(StaffSession).where(StaffSession.token_hash == token_hash)).first()


def practitioner_by_email(session: Session, email: str) -> Practitioner | None:
    return session.exec(
        select(Practitioner).where(Practitioner.email == email.strip().lower())
    ).first()


def advocate_by_email(session: Session, email: str) -> Advocate | None:
    return session.exec(select(Advocate).where(Advocate.email == email.strip().lower())).first()
