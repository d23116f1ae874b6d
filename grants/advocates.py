"""Advocates: invited by a young person, they see who can see that person's things, who
asked and who has looked, and never the things themselves. No commits.

SECURITY.md ("People and sessions"): an advocate sees grant and audit metadata only, never
record or story content. Nothing here opens a record, a story entry, a note or a photo:
the overview is built from ``grant_public``, ``list_requests`` and ``audit_trail``, which
carry names, categories, purposes, times and ids only.

The young person decides, when inviting, whether the advocate may stop a grant for them
(issue 4, "Advocate pages"). Every advocate action is an audit event on the young
person's chain, naming the advocate, so "who has looked" shows it (GIRFEC: the child is
told who acted for them).
"""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sqlmodel import Session, SQLModel

from app.auth import service as people
from app.auth import staff
from app.auth.models import Advocate
from app.settings import Settings
from grants import advocates_repository as repo
from grants import repository as grants_repo
from grants import service as grants_service
from grants import wording
from grants.config import GrantsConfig
from grants.models import AdvocateInvite, AdvocateLink, Grant
from grants.schemas import GrantPublic, RequestPublic
from vault import audit
from vault import service as vault_service
from vault.actors import Actor
from vault.crypto import FieldContext
from vault.db_types import utcnow
from vault.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from vault.keys import KeyProvider
from vault.models import Vault
from vault.schemas import AuditEventPublic

INVITE_DAYS = 7
NAME_MAX = 100
EMAIL_MAX = 254
# Deliberately loose (RFC 5321 allows far more than any pattern should judge): one @, no
# spaces, a dot in the domain. The address is a sign-in name here, never mailed to.
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
CODE_INVALID = "That code does not work. It may be wrong, used, cancelled or too old."
NOT_FOUND = "We could not find that."

# What an advocate sees, in the young person's words (reading age about 10).
CAN_SEE = (
    "They can see who can see your things, who asked, and who has looked. "
    "They can not read your story or your records."
)
CAN_STOP = "They can stop sharing for you."
CAN_NOT_STOP = "They can not stop sharing for you."


# -- public shapes -----------------------------------------------------------------------------
class AdvocateInviteCreate(SQLModel):
    can_stop_sharing: bool = False


class AdvocateInvitePublic(SQLModel):
    id: uuid.UUID
    code: str
    can_stop_sharing: bool
    created_at: datetime
    expires_at: datetime


class AdvocateLinkPublic(SQLModel):
    """A linked advocate, as the young person sees them, with what they can see."""

    id: uuid.UUID
    name: str
    email: str
    can_stop_sharing: bool
    can_see: str
    can_stop: str
    created_at: datetime


class AdvocatePerson(SQLModel):
    """A young person, as their advocate sees them in the list: a username, no more."""

    link_id: uuid.UUID
    username: str
    can_stop_sharing: bool
    since: datetime


class AdvocateTrailLine(SQLModel):
    """One entry, or ``times`` entries in a row recording the same thing (the first at
    ``first_at``, the last at ``occurred_at``), as on the young person's own page."""

    seq: int
    occurred_at: datetime
    text: str
    times: int
    first_at: datetime


class AdvocateOverview(SQLModel):
    """Everything an advocate sees for one young person: metadata only."""

    person: AdvocatePerson
    active_grants: list[GrantPublic]
    past_grants: list[GrantPublic]
    requests: list[RequestPublic]
    trail: list[AdvocateTrailLine]
    next_before: int | None


# -- helpers -----------------------------------------------------------------------------------
def _invite_ctx(invite: AdvocateInvite) -> FieldContext:
    return FieldContext(invite.vault_id, "advocate_invite", invite.id, "code", 1)


def _invite_public(
    session: Session, services: vault_service.VaultServices, invite: AdvocateInvite
) -> AdvocateInvitePublic:
    raw = services.keyring.open_text(session, _invite_ctx(invite), invite.code_sealed)
    return AdvocateInvitePublic(
        id=invite.id, code=grants_service._format_code(raw),
        can_stop_sharing=invite.can_stop_sharing, created_at=invite.created_at,
        expires_at=invite.expires_at,
    )  # fmt: skip


def _link_public(link: AdvocateLink, advocate: Advocate) -> AdvocateLinkPublic:
    return AdvocateLinkPublic(
        id=link.id, name=advocate.name, email=advocate.email,
        can_stop_sharing=link.can_stop_sharing, can_see=CAN_SEE,
        can_stop=CAN_STOP if link.can_stop_sharing else CAN_NOT_STOP, created_at=link.created_at,
    )  # fmt: skip


def actor_of(advocate: Advocate) -> Actor:
    return Actor.advocate(advocate.id, advocate.name)


def _log(
    session: Session, keys: KeyProvider, vault_id: uuid.UUID, actor: Actor, action: str,
    object_type: str, object_id: uuid.UUID,
) -> None:  # fmt: skip
    audit.append(session, keys, vault_id.hex, actor, action,
                 object_type=object_type, object_id=object_id.hex)  # fmt: skip


# -- the young person's side -------------------------------------------------------------------
def make_invite(
    session: Session, config: GrantsConfig, services: vault_service.VaultServices,
    actor: Actor, vault: Vault, body: AdvocateInviteCreate,
) -> AdvocateInvitePublic:  # fmt: skip
    """A one-time code, like a connection code: 80 bits, stored as a keyed hash, and
    sealed with the vault key so the young person can show it again. Lasts 7 days."""
    raw = "".join(
        secrets.choice(grants_service.CODE_ALPHABET) for _ in range(grants_service.CODE_LENGTH)
    )
    now = utcnow()
    invite = AdvocateInvite(
        vault_id=vault.id, code_hash=config.hash("advocate-invite", raw), code_sealed=b"",
        can_stop_sharing=body.can_stop_sharing, created_at=now,
        expires_at=now + timedelta(days=INVITE_DAYS),
    )  # fmt: skip
    invite.code_sealed = services.keyring.seal_text(session, _invite_ctx(invite), raw)
    session.add(invite)
    session.flush()
    _log(session, services.keyring.provider, vault.id, actor, "advocate:invited",
         "advocate_invite", invite.id)  # fmt: skip
    return AdvocateInvitePublic(
        id=invite.id, code=grants_service._format_code(raw),
        can_stop_sharing=invite.can_stop_sharing, created_at=now, expires_at=invite.expires_at,
    )  # fmt: skip


def list_invites(
    session: Session, services: vault_service.VaultServices, vault: Vault
) -> list[AdvocateInvitePublic]:
    return [
        _invite_public(session, services, invite)
        for invite in repo.open_invites_of_vault(session, vault.id, utcnow())
    ]


def get_invite(
    session: Session, services: vault_service.VaultServices, vault: Vault, invite_id: uuid.UUID
) -> AdvocateInvitePublic:
    invite = repo.get_invite(session, vault.id, invite_id)
    if invite is None or not invite.is_active(utcnow()):
        raise NotFound("That code has been used, cancelled or has run out.")
    return _invite_public(session, services, invite)


def cancel_invite(
    session: Session, services: vault_service.VaultServices, actor: Actor, vault: Vault,
    invite_id: uuid.UUID,
) -> None:  # fmt: skip
    invite = repo.get_invite(session, vault.id, invite_id)
    if invite is None or not invite.is_active(utcnow()):
        raise NotFound("That code has been used, cancelled or has run out.")
    invite.cancelled_at = utcnow()
    session.add(invite)
    _log(session, services.keyring.provider, vault.id, actor, "advocate:invite_cancelled",
         "advocate_invite", invite.id)  # fmt: skip


def list_links(session: Session, vault: Vault) -> list[AdvocateLinkPublic]:
    return [_link_public(link, adv) for link, adv in repo.active_links_of_vault(session, vault.id)]


def get_link(session: Session, vault: Vault, link_id: uuid.UUID) -> AdvocateLinkPublic:
    found = repo.get_link_of_vault(session, vault.id, link_id)
    if found is None or not found[0].is_active():
        raise NotFound(NOT_FOUND)
    return _link_public(*found)


def remove_link(
    session: Session, services: vault_service.VaultServices, actor: Actor, vault: Vault,
    link_id: uuid.UUID,
) -> None:  # fmt: skip
    """Ends the link now. Every advocate page loads the link afresh, so the advocate's
    very next page load finds nothing (revoke by timestamp, STYLE.md practice 6)."""
    found = repo.get_link_of_vault(session, vault.id, link_id)
    if found is None or not found[0].is_active():
        raise NotFound(NOT_FOUND)
    link = found[0]
    link.removed_at, link.removed_by = utcnow(), "young_person"
    session.add(link)
    session.flush()
    _log(session, services.keyring.provider, vault.id, actor, "advocate:removed",
         "advocate_link", link.id)  # fmt: skip


# -- the advocate's account --------------------------------------------------------------------
def _clean_email(email: str) -> str:
    cleaned = email.strip().lower()
    if len(cleaned) > EMAIL_MAX or not EMAIL_RE.fullmatch(cleaned):
        raise InvalidInput("Please give an email address, like sam@example.org.")
    return cleaned


def _clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not 1 <= len(cleaned) <= NAME_MAX or not cleaned.isprintable():
        raise InvalidInput(f"Your name needs 1 to {NAME_MAX} characters.")
    return cleaned


def _usable_invite(session: Session, config: GrantsConfig, code: str) -> AdvocateInvite:
    """The locked, active invite behind a code, or one message for every failure, so a
    guess learns nothing (SECURITY.md: a guessed or reused code reveals nothing)."""
    raw = grants_service.normalise_code(code)
    if len(raw) != grants_service.CODE_LENGTH:
        raise InvalidInput(CODE_INVALID)
    invite = repo.lock_invite_by_hash(session, config.hash("advocate-invite", raw))
    if invite is None or not invite.is_active(utcnow()):
        raise InvalidInput(CODE_INVALID)
    vault = session.get(Vault, invite.vault_id)
    if vault is None or vault.erased_at is not None:
        raise InvalidInput(CODE_INVALID)
    return invite


def _link(
    session: Session, services: vault_service.VaultServices, advocate: Advocate,
    invite: AdvocateInvite,
) -> AdvocateLink:  # fmt: skip
    if repo.active_link(session, invite.vault_id, advocate.id) is not None:
        raise Conflict("You already help this young person. Nothing was changed.")
    now = utcnow()
    invite.used_at = now
    link = AdvocateLink(
        vault_id=invite.vault_id, advocate_id=advocate.id, invite_id=invite.id,
        can_stop_sharing=invite.can_stop_sharing, created_at=now,
    )  # fmt: skip
    session.add_all([invite, link])
    session.flush()
    _log(session, services.keyring.provider, invite.vault_id, actor_of(advocate),
         "advocate:joined", "advocate_link", link.id)  # fmt: skip
    return link


def sign_up(
    session: Session, settings: Settings, config: GrantsConfig,
    services: vault_service.VaultServices, name: str, email: str, password: str, code: str,
) -> staff.StaffSignedIn:  # fmt: skip
    """Create an advocate's account from a young person's invite code, link them, and
    sign them in. Passwords follow the young people's rules (NIST SP 800-63B 3.1.1.2)
    and are hashed with Argon2id. The code is checked before the email, so the
    "account exists" answer is only given to someone holding a live invite."""
    clean_name, clean_email = _clean_name(name), _clean_email(email)
    if not vault_service.PASSWORD_MIN <= len(password) <= vault_service.PASSWORD_MAX:
        raise InvalidInput(f"A password needs at least {vault_service.PASSWORD_MIN} characters.")
    invite = _usable_invite(session, config, code)
    if repo.advocate_by_email(session, clean_email) is not None:
        raise Conflict("There is already an account with that email. Sign in, then add the code.")
    advocate = Advocate(
        email=clean_email, name=clean_name, password_hash=people.hash_password(password)
    )
    session.add(advocate)
    session.flush()
    _link(session, services, advocate, invite)
    return staff.start_session(session, settings, "advocate", advocate.id)


def sign_in(
    session: Session, settings: Settings, email: str, password: str, address: str
) -> staff.StaffSignedIn:
    """Throttled per account and per address; one message for every failure. A failure
    raises ``StaffSignInFailed`` *after* counting it; the caller returns a page rather
    than letting the error roll the count back (OWASP ASVS 5.0, V6.3)."""
    clean = email.strip().lower()[:EMAIL_MAX]
    staff.check_throttle(session, settings, clean, address)
    advocate = repo.advocate_by_email(session, clean)
    ok = staff.password_matches(advocate.password_hash if advocate else None, password)
    if not ok or advocate is None or advocate.disabled_at is not None:
        staff.record_failure(session, settings, clean, address)
        raise staff.StaffSignInFailed("That did not match. Check your email and password.")
    return staff.start_session(session, settings, "advocate", advocate.id)


def sign_out(session: Session, signed_in: staff.StaffSession) -> None:
    staff.sign_out(session, signed_in)


def accept_invite(
    session: Session, config: GrantsConfig, services: vault_service.VaultServices,
    advocate: Advocate, code: str,
) -> AdvocateLink:  # fmt: skip
    """A signed-in advocate adds another young person's invite."""
    return _link(session, services, advocate, _usable_invite(session, config, code))


# -- what the advocate sees --------------------------------------------------------------------
def people_of(session: Session, advocate: Advocate) -> list[AdvocatePerson]:
    return [
        AdvocatePerson(
            link_id=link.id,
            username=username,
            can_stop_sharing=link.can_stop_sharing,
            since=link.created_at,
        )
        for link, username in repo.people_of_advocate(session, advocate.id)
    ]


def _person(
    session: Session, advocate: Advocate, link_id: uuid.UUID
) -> tuple[AdvocateLink, Vault, AdvocatePerson]:
    """Re-checked on every page: a removed link, another advocate's link or an erased
    vault is "not found", and reveals nothing."""
    found = repo.person_link(session, advocate.id, link_id)
    if found is None:
        raise NotFound(NOT_FOUND)
    link, vault, username = found
    person = AdvocatePerson(
        link_id=link.id, username=username, can_stop_sharing=link.can_stop_sharing,
        since=link.created_at,
    )  # fmt: skip
    return link, vault, person


# Grants-domain events in plain words, for the advocate's "who has looked" list; the vault's
# own events use ``vault.service.ACTION_WORDS``.
TRAIL_WORDS = {
    "code:created": "made a code to give a worker",
    "code:cancelled": "stopped a code",
    "request:received": "asked to see things",
    "request:declined": "said no to a request",
    "grant:created": "said yes to a request",
    "grant:revoked": "stopped sharing",
}


def _trail_text(event: AuditEventPublic, username: str) -> str:
    """One plain sentence, naming the young person rather than "You" (the advocate is
    reading). Names, agencies and purposes only: never a title or any content."""
    if event.actor_type == "young_person":
        who = username
    elif event.actor_type == "operator":
        who = "The Storykeep team"
    else:
        who = f"{event.actor_label} ({event.agency})" if event.agency else event.actor_label
    words = TRAIL_WORDS.get(event.action) or vault_service.ACTION_WORDS.get(event.action)
    text = f"{who} {words or event.action.replace(':', ' ').replace('_', ' ')}"
    if event.purpose:
        text += f", {wording.purpose_words(event.purpose)}"
    return text + "."


def overview(
    session: Session, services: vault_service.VaultServices, advocate: Advocate,
    link_id: uuid.UUID, before: int | None, tz: tzinfo = UTC,
) -> AdvocateOverview:  # fmt: skip
    """Grants, requests and who has looked, for one young person. Logs
    ``advocate:viewed_sharing``; reading the trail logs ``audit:read`` as well."""
    _link_row, vault, person = _person(session, advocate, link_id)
    actor = actor_of(advocate)
    _log(session, services.keyring.provider, vault.id, actor, "advocate:viewed_sharing",
         "vault", vault.id)  # fmt: skip
    grants = grants_service.list_grants(session, vault)
    page = vault_service.audit_trail(session, services, actor, vault, before, 50)
    return AdvocateOverview(
        person=person,
        active_grants=[g for g in grants if g.active],
        past_grants=[g for g in grants if not g.active],
        requests=grants_service.list_requests(session, vault),
        trail=[
            AdvocateTrailLine(
                seq=run[0].seq,
                occurred_at=run[0].occurred_at,
                times=len(run),
                first_at=run[-1].occurred_at,
                text=_trail_text(run[0], person.username),
            )
            for run in vault_service.runs_of_the_same(page.events, tz)
        ],
        next_before=page.next_before,
    )


def _stoppable(
    session: Session, advocate: Advocate, link_id: uuid.UUID, grant_id: uuid.UUID, lock: bool
) -> tuple[AdvocatePerson, Grant]:
    link, vault, person = _person(session, advocate, link_id)
    if not link.can_stop_sharing:
        raise PermissionDenied(
            f"{person.username} has not let you stop sharing for them. Nothing was changed."
        )
    # Locked when stopping, so a young person's own "stop" at the same moment waits.
    grant = grants_repo.lock_grant(session, grant_id) if lock else repo.get_grant(session, grant_id)
    if grant is None or grant.vault_id != vault.id:
        raise NotFound(NOT_FOUND)
    if not grant.is_active(utcnow()):
        raise Conflict("This has already stopped. Nothing was changed.")
    grants_service.refuse_stopping_emergency(grant)
    return person, grant


def grant_to_stop(
    session: Session, advocate: Advocate, link_id: uuid.UUID, grant_id: uuid.UUID
) -> tuple[AdvocatePerson, GrantPublic]:
    """For the confirmation page: the same checks as ``stop_grant``, changing nothing."""
    person, grant = _stoppable(session, advocate, link_id, grant_id, lock=False)
    return person, grants_service.grant_public(session, grant, utcnow())


def stop_grant(
    session: Session, services: vault_service.VaultServices, advocate: Advocate,
    link_id: uuid.UUID, grant_id: uuid.UUID, *, notifier: Any = None,
) -> GrantPublic:  # fmt: skip
    """Stop sharing for the young person, only if they allowed it when inviting. The
    grant's ``revoked_by`` is "advocate" and the audit event names the advocate; the
    practitioner and their agency are told, as when the young person stops it."""
    _person_row, grant = _stoppable(session, advocate, link_id, grant_id, lock=True)
    grants_service.revoke_grant(
        session, services.keyring.provider, actor_of(advocate), grant, "advocate", notifier
    )
    return grants_service.grant_public(session, grant, utcnow())
