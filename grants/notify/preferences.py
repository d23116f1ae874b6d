"""A young person's notification choices: an optional email address, and whether to hear
about each look straight away or once a day.

* Asking for as little as we can (UK GDPR Article 5(1)(c), data minimisation; ICO Age
  Appropriate Design Code, standard 8): the address is optional, and without one
  messages stay inside Storykeep.
* The address is sealed with a key derived from the app secret (vault/sealing.py), like
  the outbox's addresses, and is never shown back in full: pages and the API show it
  masked (``s***@example.org``), so a shoulder-surfer or a stolen session learns little.
* Every change is in the young person's audit log (``notifications:changed``), without
  the address.
"""

from __future__ import annotations

import re
from typing import Literal

from sqlmodel import Field, Session, SQLModel

from grants.notify import repository as repo
from vault import audit, sealing
from vault.actors import Actor
from vault.db_types import utcnow
from vault.errors import InvalidInput
from vault.keys import KeyProvider
from vault.models import NotificationPreference, Vault, YoungPerson

EMAIL_PURPOSE = "young-person-email"
ACCESS_MODES = ("immediate", "daily")
DEFAULT_MODE = "daily"
EMAIL_MAX = 254  # RFC 5321 section 4.5.3.1.3: the longest usable path
# Letters, digits and the usual dot-atom characters (RFC 5322 section 3.4.1), a domain
# of labels: nothing that could add a second recipient or a header to an email.
EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
AccessMode = Literal["immediate", "daily"]


class NotificationSettingsPublic(SQLModel):
    """What the young person chose. The address only ever comes back masked."""

    email: str | None = Field(description="Masked, e.g. s***@example.org; null if none.")
    access_mode: AccessMode


class NotificationSettingsUpdate(SQLModel):
    """``email``: a new address; null or "" removes it; leave it out to keep it."""

    email: str | None = Field(default=None, max_length=EMAIL_MAX + 20)
    access_mode: AccessMode


def mask(email: str) -> str:
    """``sam@example.org`` becomes ``s***@example.org``: enough to recognise, not to use."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def clean_email(raw: str) -> str:
    email = raw.strip()
    if len(email) > EMAIL_MAX or not EMAIL_RE.fullmatch(email):
        raise InvalidInput("That does not look like an email address. Check it and try again.")
    return email


def open_email(app_secret: bytes, pref: NotificationPreference | None) -> str | None:
    if pref is None or pref.email_sealed is None:
        return None
    return sealing.open_sealed(app_secret, EMAIL_PURPOSE, pref.email_sealed)


def _public(app_secret: bytes, pref: NotificationPreference | None) -> NotificationSettingsPublic:
    email = open_email(app_secret, pref)
    return NotificationSettingsPublic(
        email=mask(email) if email else None,
        access_mode=pref.access_mode if pref else DEFAULT_MODE,  # type: ignore[arg-type]
    )


def get_settings(
    session: Session, app_secret: bytes, person: YoungPerson
) -> NotificationSettingsPublic:
    return _public(app_secret, repo.preference_of(session, person.id))


def update_settings(
    session: Session, app_secret: bytes, keys: KeyProvider, actor: Actor, person: YoungPerson,
    vault: Vault, *, access_mode: str | None, email: str | None, keep_email: bool,
) -> NotificationSettingsPublic:  # fmt: skip
    """Save the choices. ``access_mode`` None keeps the current one; ``keep_email`` leaves
    the address as it is (the page's box was left empty, or the JSON had no ``email``);
    otherwise an empty ``email`` removes it. Everything is checked before anything is
    written, so a bad address or mode changes nothing."""
    if access_mode is not None and access_mode not in ACCESS_MODES:
        raise InvalidInput("Choose straight away or once a day.")
    cleaned = None if keep_email or not (email or "").strip() else clean_email(email or "")
    pref = repo.preference_of(session, person.id, lock=True) or NotificationPreference(
        young_person_id=person.id
    )
    pref.access_mode = access_mode or pref.access_mode or DEFAULT_MODE
    if not keep_email:
        pref.email_sealed = sealing.seal(app_secret, EMAIL_PURPOSE, cleaned) if cleaned else None
    pref.updated_at = utcnow()
    session.add(pref)
    session.flush()
    audit.append(session, keys, vault.id.hex, actor, "notifications:changed",
                 object_type="notification_preference", object_id=person.id.hex)  # fmt: skip
    return _public(app_secret, pref)
