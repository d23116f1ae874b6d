"""Signing practitioners and advocates in and out (OWASP ASVS 5.0, V6 and V7).

Workers have their own accounts and their own cookie (``storykeep_staff``), separate
from young people's: a page for one kind of person never accepts the other's session.
The rules are the young person's rules (``app.auth.service``): Argon2id passwords,
256-bit session tokens stored only as HMACs, idle and absolute timeouts, sign-in
throttling per account and per address, and CSRF tokens derived from the session.

Practitioners also need a second factor: a TOTP code (RFC 6238, 30-second steps, six
digits, one step of clock drift allowed), never accepted twice (RFC 6238 section 5.2).
"""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import pyotp
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session

from app.auth import repository as repo
from app.auth import service as people
from app.auth.models import Practitioner, StaffSession
from app.settings import Settings
from vault import sealing
from vault.db_types import utcnow
from vault.errors import AuthenticationFailed
from vault.schemas import is_number

StaffKind = Literal["practitioner", "advocate"]
TOTP_DIGITS = 6
TOTP_STEP_SECONDS = 30


class StaffSignInFailed(AuthenticationFailed):
    """Wrong email, password or code. One message for all, so nothing says which."""

    message = "That did not match. Check your email, password and code."
    keeps_changes = True  # the throttle counts the failure


class StaffSessionExpired(AuthenticationFailed):
    message = "You have been signed out. Please sign in again."


@dataclass(frozen=True)
class StaffSignedIn:
    token: str  # goes into the cookie; never stored
    staff_session: StaffSession

    def __repr__(self) -> str:
        return f"StaffSignedIn(kind={self.staff_session.kind!r}, token=<hidden>)"


# -- sealing secrets with the app key ------------------------------------------------------------
def seal_secret(settings: Settings, purpose: str, value: str) -> bytes:
    return sealing.seal(settings.secret_key.get_secret_value().encode(), purpose, value)


def open_secret(settings: Settings, purpose: str, sealed: bytes) -> str:
    return sealing.open_sealed(settings.secret_key.get_secret_value().encode(), purpose, sealed)


# -- passwords and TOTP ---------------------------------------------------------------------------
def password_matches(password_hash: str | None, password: str) -> bool:
    """Always runs one Argon2 verification, so timing does not reveal unknown accounts."""
    try:
        people._hasher.verify(password_hash or people._DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return password_hash is not None


def new_totp_secret() -> str:
    return base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")


def totp_provisioning_uri(secret: str, email: str) -> str:
    """The otpauth:// URI an authenticator app reads from a QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name="Storykeep")


def accept_totp(settings: Settings, practitioner: Practitioner, code: str) -> bool:
    """RFC 6238: accept the current step or one either side (clock drift), but never a
    step at or before the last one accepted, so an observed code cannot be replayed."""
    if practitioner.totp_secret_sealed is None:
        return False
    code = code.strip().replace(" ", "")
    if len(code) != TOTP_DIGITS or not is_number(code):
        return False
    totp = pyotp.TOTP(open_secret(settings, "totp", practitioner.totp_secret_sealed))
    now_step = int(utcnow().timestamp()) // TOTP_STEP_SECONDS
    for step in (now_step - 1, now_step, now_step + 1):
        if practitioner.totp_last_step is not None and step <= practitioner.totp_last_step:
            continue
        if secrets.compare_digest(totp.generate_otp(step), code):
            practitioner.totp_last_step = step
            return True
    return False


# -- sessions -----------------------------------------------------------------------------------
def _token_hash(settings: Settings, token: str) -> str:
    return people._keyed_hash(settings, "staff-session", token)


def start_session(
    session: Session, settings: Settings, kind: StaffKind, account_id: uuid.UUID
) -> StaffSignedIn:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    staff_session = StaffSession(
        token_hash=_token_hash(settings, token),
        kind=kind,
        account_id=account_id,
        created_at=now,
        authenticated_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(hours=settings.session_max_hours),
    )
    session.add(staff_session)
    session.flush()
    return StaffSignedIn(token=token, staff_session=staff_session)


def resolve(session: Session, settings: Settings, token: str, kind: StaffKind) -> StaffSession:
    """The active session of this kind behind a cookie, or StaffSessionExpired."""
    staff_session = repo.staff_session_by_token_hash(session, _token_hash(settings, token))
    now = utcnow()
    if (
        staff_session is None
        or staff_session.kind != kind
        or not staff_session.is_active(now, settings.session_idle_minutes * 60)
    ):
        raise StaffSessionExpired()
    if (now - staff_session.last_seen_at).total_seconds() > 60:
        staff_session.last_seen_at = now
        session.add(staff_session)
    return staff_session


def sign_out(session: Session, staff_session: StaffSession) -> None:
    staff_session.revoked_at = utcnow()
    session.add(staff_session)
    session.flush()


def csrf_token(settings: Settings, staff_session: StaffSession) -> str:
    return people._keyed_hash(settings, "staff-csrf", staff_session.token_hash)


def check_throttle(session: Session, settings: Settings, email: str, address: str) -> None:
    people.check_throttle(session, settings, "staff:" + email, address)


def record_failure(session: Session, settings: Settings, email: str, address: str) -> None:
    people.record_failure(session, settings, "staff:" + email, address)
