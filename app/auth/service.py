"""Signing young people in and out (OWASP ASVS 5.0, V6 Authentication and V7 Sessions).

* Passwords: Argon2id (RFC 9106) through argon2-cffi's defaults.
* Session cookies carry a 256-bit random token; the database keeps only its HMAC.
* CSRF: every unsafe request on a cookie-authenticated route carries a token derived from
  the session (the synchroniser-token pattern). Sign-in forms, which have no session
  yet, use a short-lived pre-session cookie the same way.
* Throttling: failed sign-ins are counted per account and per address in a fixed window.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from app.auth import repository as repo
from app.auth.models import SignInThrottle, WebSession
from app.settings import Settings
from vault import repository as vault_repo
from vault.db_types import utcnow
from vault.errors import AuthenticationFailed, RateLimited, StepUpRequired
from vault.hashing import keyed_hash
from vault.models import YoungPerson

_hasher = PasswordHasher()  # argon2id; parameters per RFC 9106's second recommendation
# Verified against when the username is unknown, so timing does not reveal who exists.
_DUMMY_HASH = _hasher.hash("storykeep-timing-equaliser")


class SignInFailed(AuthenticationFailed):
    """A wrong password still counts towards the throttle, so its writes are kept."""

    keeps_changes = True


class SessionExpired(AuthenticationFailed):
    message = "You have been signed out. Please sign in again."


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _keyed_hash(settings: Settings, purpose: str, value: str) -> str:
    return keyed_hash(settings.secret_key.get_secret_value().encode(), purpose, value)


@dataclass(frozen=True)
class SignedIn:
    token: str  # goes into the cookie; never stored
    web_session: WebSession
    person: YoungPerson

    def __repr__(self) -> str:
        return f"SignedIn(person={self.person.username!r}, token=<hidden>)"


# -- throttling ----------------------------------------------------------------------------
def _throttle_row(session: Session, settings: Settings, key: str, now: datetime) -> SignInThrottle:
    row = repo.lock_throttle(session, key)
    if row is None:
        row = SignInThrottle(key=key, window_started_at=now, failures=0)
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            locked = repo.lock_throttle(session, key)
            if locked is None:  # inserted by a concurrent request, so it must exist now
                raise RuntimeError("sign-in throttle row disappeared") from None
            row = locked
    if now - row.window_started_at >= timedelta(minutes=settings.login_window_minutes):
        row.window_started_at, row.failures = now, 0
    return row


def throttle_key(settings: Settings, purpose: str, name: str) -> str:
    """A counter's key: a keyed hash, so the table holds no names or addresses in clear.
    ``purpose`` keeps kinds of counter apart (an account, an address, an OAuth client)."""
    return _keyed_hash(settings, purpose, name)


def address_bucket(address: str) -> str:
    """The network that failures from ``address`` count against.

    IPv4: the address itself. IPv6: its /64. A /64 is the smallest block a network is
    given (RFC 6177), and a host may take any number of addresses in it (RFC 7934), so
    counting single IPv6 addresses would let one machine try again from a fresh address
    every time. An IPv4-mapped IPv6 address counts as its IPv4 address, so one client
    cannot be two. What is not an address ("unknown", a test client's name) stays as it
    is."""
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])  # drop an IPv6 zone id
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def throttle_keys(settings: Settings, username: str, address: str) -> list[tuple[str, int]]:
    """The two counters a sign-in is held to, each with its limit: one for the account,
    one for the address. (An OAuth client call has its own: grants/oauth/client_auth.)"""
    return [
        (
            throttle_key(settings, "throttle-account", username),
            settings.login_max_failures_per_account,
        ),
        (
            throttle_key(settings, "throttle-address", address_bucket(address)),
            settings.login_max_failures_per_address,
        ),
    ]


def check_throttle(session: Session, settings: Settings, username: str, address: str) -> None:
    """Read-only: only failures lock and write their counters (``record_failure``)."""
    check_counters(session, settings, throttle_keys(settings, username, address))


def check_counters(session: Session, settings: Settings, keys: list[tuple[str, int]]) -> None:
    """RateLimited if any of ``keys`` (each with its limit) is at its limit; read-only."""
    refuse_if_throttled(settings, keys, repo.throttle_counts(session, [key for key, _ in keys]))


def refuse_if_throttled(
    settings: Settings, keys: list[tuple[str, int]], counts: dict[str, tuple[datetime, int]]
) -> None:
    """RateLimited if any counter is at its limit within the window. ``counts`` holds the
    window start and failures of the keys that have a counter (read by the caller, so a
    hot call can read them in a statement it runs anyway)."""
    now = utcnow()
    window = timedelta(minutes=settings.login_window_minutes)
    for key, limit in keys:
        started, failures = counts.get(key, (now, 0))
        if now - started < window and failures >= limit:
            raise RateLimited(retry_after=max(1, int((started + window - now).total_seconds())))


def record_failure(session: Session, settings: Settings, username: str, address: str) -> None:
    count_failure(session, settings, [key for key, _ in throttle_keys(settings, username, address)])


def count_failure(session: Session, settings: Settings, keys: list[str]) -> None:
    """One more failure on each counter in ``keys``, locked in the order given: callers
    give theirs in one fixed order (account or client first, then address), so two
    failing calls, each in its own transaction, never wait on each other in a circle."""
    now = utcnow()
    for key in keys:
        row = _throttle_row(session, settings, key, now)
        row.failures += 1
        session.add(row)
    session.flush()


# -- signing in and out -----------------------------------------------------------------------
def sign_in(
    session: Session, settings: Settings, username: str, password: str, address: str
) -> SignedIn:
    name = username.strip().lower()
    check_throttle(session, settings, name, address)
    person = vault_repo.get_young_person_by_username(session, name)
    try:
        _hasher.verify(person.password_hash if person else _DUMMY_HASH, password)
        ok = person is not None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or person is None:
        record_failure(session, settings, name, address)
        raise SignInFailed()
    if _hasher.check_needs_rehash(person.password_hash):
        person.password_hash = _hasher.hash(password)
        session.add(person)
    return start_session(session, settings, person)


def start_session(session: Session, settings: Settings, person: YoungPerson) -> SignedIn:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    web_session = WebSession(
        token_hash=_keyed_hash(settings, "session", token),
        young_person_id=person.id,
        created_at=now,
        authenticated_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(hours=settings.session_max_hours),
    )
    session.add(web_session)
    session.flush()
    return SignedIn(token=token, web_session=web_session, person=person)


def verify_password(person: YoungPerson, password: str) -> bool:
    try:
        return _hasher.verify(person.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def resolve(session: Session, settings: Settings, token: str) -> tuple[WebSession, YoungPerson]:
    """The session and person behind a cookie, or SessionExpired. Touches last_seen_at."""
    web_session = repo.session_by_token_hash(session, _keyed_hash(settings, "session", token))
    now = utcnow()
    if web_session is None or not web_session.is_active(now, settings.session_idle_minutes * 60):
        raise SessionExpired()
    person = vault_repo.get_young_person(session, web_session.young_person_id)
    if person is None:
        raise SessionExpired()
    # Only write when it matters, so most reads stay read-only.
    if (now - web_session.last_seen_at).total_seconds() > 60:
        web_session.last_seen_at = now
        session.add(web_session)
    return web_session, person


def sign_out(session: Session, web_session: WebSession) -> None:
    web_session.revoked_at = utcnow()
    session.add(web_session)
    session.flush()


def require_recent_sign_in(settings: Settings, web_session: WebSession) -> None:
    """Step-up (SECURITY.md): export and erasure need a password entered recently."""
    age = utcnow() - web_session.authenticated_at
    if age > timedelta(minutes=settings.step_up_minutes):
        raise StepUpRequired()


def mark_reauthenticated(session: Session, web_session: WebSession) -> None:
    web_session.authenticated_at = utcnow()
    session.add(web_session)


# -- CSRF --------------------------------------------------------------------------------------
def csrf_token(settings: Settings, web_session: WebSession) -> str:
    return _keyed_hash(settings, "csrf", web_session.token_hash)


def csrf_token_for_presession(settings: Settings, presession: str) -> str:
    return _keyed_hash(settings, "csrf-pre", presession)


def csrf_matches(expected: str, given: str | None) -> bool:
    """Constant-time, as a CSRF token is a secret. ``compare_digest`` raises TypeError on
    a str that is not ASCII (a form field or header can be anything), and our tokens are
    hex, so anything else simply does not match."""
    return given is not None and given.isascii() and hmac.compare_digest(expected, given)


def new_presession() -> str:
    return secrets.token_urlsafe(24)


def reauthenticate(
    session: Session,
    settings: Settings,
    web_session: WebSession,
    person: YoungPerson,
    password: str,
    address: str,
) -> None:
    """Step-up: check the password again (throttled like sign-in) and refresh
    ``authenticated_at``. Used before export and erasure."""
    check_throttle(session, settings, person.username, address)
    if not verify_password(person, password):
        record_failure(session, settings, person.username, address)
        raise SignInFailed()
    mark_reauthenticated(session, web_session)
