"""Emergency (child protection) access: lawful, narrow, visible, reviewed, never consent.

The rules, and the guidance each follows:

* **Who**: only an agency the operator registered as statutory with the
  ``child_protection`` purpose, and only a practitioner whose role is
  ``child_protection`` or another role the operator registered for that agency
  (``storykeep agency emergency-role``) (National Guidance for Child Protection in
  Scotland 2021, updated 2023: sharing without agreement is for statutory
  child-protection work). Every attempt refused for who is asking, or for chaining (below),
  is logged on the operator's audit chain (``emergency:refused``), and the entry survives
  the refusal (the error keeps its transaction's changes).
* **Whom**: a young person the agency is already connected to, named by its own pairwise
  handle; a connection code is refused (CIBA ``unknown_user_id``), so emergency access
  never becomes a way to find a child (Scotland's privacy principles: no directory).
* **Why**: a ``reason_code`` from a fixed list and a written ``reason`` (UK GDPR Article
  6(1)(e)/(d) and the Data Protection Act 2018, Schedule 8 paragraph 4 "safeguarding of
  children": the condition must be recorded). The lawful basis stored on the grant is
  ``child_protection``, never ``consent``; its purpose is ``emergency_child_protection``,
  so every audit entry made under it (reads included) is tagged as emergency, and every
  emergency event is named ``emergency:*`` (SECURITY.md, "Audit").
* **What**: read only, the categories named (never "everything" by default), at most 72
  hours (the data-minimisation principle, UK GDPR Article 5(1)(c)); access and refresh
  tokens never outlive the grant (SECURITY.md, "Tokens and grants").
* **No standing access**: a second emergency grant for the same young person and agency
  is refused until the first has been reviewed (SECURITY.md: "cannot be extended into a
  standing grant").
* **Told**: the young person and their advocates are told at once, in plain words with
  where to get help (ICO Age Appropriate Design Code, standard 4 "transparency"); the
  only exception is a recorded deferral with a reason and an end date at most 7 days
  away, after which the lifecycle job tells them. A deferral holds back messages only
  (``notice_withheld``): the access always appears in their audit view (SECURITY.md).
* **Reviewed**: an independent reviewer registered by the operator
  (``storykeep reviewer add``), not from the requesting agency, reviews every use
  (National Guidance for Child Protection in Scotland: decisions to share without
  consent are recorded and open to scrutiny); reviews older than 5 days are flagged to
  the operator (``storykeep emergency list --overdue``, and by the scheduled job).
  A reviewer's reading of a case is itself logged on the young person's chain.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from app.auth import repository as people_repo
from app.auth.models import Practitioner
from grants.config import GrantsConfig
from grants.models import (
    AccessRequest,
    AdvocateLink,
    Agency,
    EmergencyAccess,
    EmergencyReviewer,
    Grant,
    PairwiseHandle,
)
from grants.notify import messages
from vault import audit
from vault.actors import Actor
from vault.crypto import FieldContext
from vault.db_types import utcnow
from vault.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from vault.vocabulary import GRANT_CATEGORIES

EMERGENCY_TYPE = "storykeep_emergency"
CHILD_PROTECTION = "child_protection"
LAWFUL_BASIS = "child_protection"
# The purpose on every emergency grant, and so on every audit entry made under one: the
# tag that tells an emergency read from a consented child-protection read.
EMERGENCY_PURPOSE = "emergency_child_protection"
MAX_HOURS = 72
MAX_DEFERRAL_DAYS = 7
REVIEW_DUE = timedelta(days=5)
REASON_CODES = {
    "risk_of_significant_harm": "a child may be at risk of significant harm",
    "missing_child": "a child is missing",
    "immediate_danger": "a child may be in danger right now",
}
REVIEW_OUTCOMES = ("justified", "not_justified")
JOB_ACTOR = Actor(type="system", id="lifecycle", label="Storykeep")
ALLOWED_KEYS = {"type", "actions", "categories", "reason_code", "reason", "duration_hours",
                "defer_notice"}  # fmt: skip
ROLE_MAX = 100
REVIEWER_ROLE = "emergency access reviewer"


class EmergencyRefused(PermissionDenied):
    """Not allowed to use emergency access. The attempt is logged, so it keeps changes."""

    keeps_changes = True


class EmergencyChained(Conflict):
    """An earlier emergency for this young person and agency is not reviewed yet. The
    refused attempt is logged, so this keeps changes (nothing else was written)."""

    keeps_changes = True


@dataclass(frozen=True)
class EmergencyDetails:
    categories: list[str]
    reason_code: str
    reason: str
    duration_hours: int
    defer_reason: str | None
    defer_days: int | None

    def __repr__(self) -> str:  # the reasons are about a child: never in a trace
        return f"EmergencyDetails(categories={self.categories}, hours={self.duration_hours})"

    def as_details(self) -> dict[str, Any]:
        """What is stored on the request: no reason text (that is sealed elsewhere)."""
        return {
            "type": EMERGENCY_TYPE, "actions": ["read"], "categories": self.categories,
            "reason_code": self.reason_code, "duration_hours": self.duration_hours,
            "purpose": EMERGENCY_PURPOSE, "duration_days": -(-self.duration_hours // 24),
        }  # fmt: skip


def parse(item: Mapping[str, Any]) -> EmergencyDetails:
    """Validate one ``storykeep_emergency`` authorization_details item (RFC 9396)."""
    extra = sorted(set(item) - ALLOWED_KEYS)
    if extra:
        raise InvalidInput(f"unknown fields: {', '.join(extra)}")
    if item.get("actions") != ["read"]:
        raise InvalidInput("emergency access is read-only: actions must be just read")
    categories = item.get("categories")
    if (
        not isinstance(categories, list)
        or not categories
        or not all(isinstance(c, str) for c in categories)
    ):
        raise InvalidInput("categories must name the few categories needed (none by default)")
    unknown = sorted(set(categories) - set(GRANT_CATEGORIES))
    if unknown:
        raise InvalidInput(f"unknown categories: {', '.join(unknown)}")
    code = item.get("reason_code")
    if code not in REASON_CODES:
        raise InvalidInput(f"reason_code must be one of: {', '.join(REASON_CODES)}")
    reason = item.get("reason")
    if not isinstance(reason, str) or not 10 <= len(reason.strip()) <= 2000:
        raise InvalidInput("reason is required: say why, in 10 to 2000 characters")
    hours = item.get("duration_hours")
    if not isinstance(hours, int) or isinstance(hours, bool) or not 1 <= hours <= MAX_HOURS:
        raise InvalidInput(f"duration_hours must be a whole number from 1 to {MAX_HOURS}")
    defer_reason = defer_days = None
    if "defer_notice" in item:
        defer = item["defer_notice"]
        if not isinstance(defer, dict) or set(defer) != {"reason", "days"}:
            raise InvalidInput("defer_notice must be an object with a reason and days")
        if not isinstance(defer["reason"], str) or not 10 <= len(defer["reason"].strip()) <= 2000:
            raise InvalidInput("defer_notice.reason is required (10 to 2000 characters)")
        days = defer["days"]
        if (
            not isinstance(days, int)
            or isinstance(days, bool)
            or not 1 <= days <= MAX_DEFERRAL_DAYS
        ):
            raise InvalidInput(f"defer_notice.days must be from 1 to {MAX_DEFERRAL_DAYS}")
        defer_reason, defer_days = defer["reason"].strip(), days
    return EmergencyDetails(
        categories=sorted(set(categories)), reason_code=code, reason=reason.strip(),
        duration_hours=hours, defer_reason=defer_reason, defer_days=defer_days,
    )  # fmt: skip


def role_key(role: str) -> str:
    """One spelling per role: "Child Protection", "child-protection" -> child_protection."""
    return "_".join(re.sub(r"[-_]", " ", role.lower()).split())


def refusal(agency: Agency, practitioner: Mapping[str, str]) -> str | None:
    """Why this practitioner may not use emergency access, or None if they may."""
    if not agency.statutory or CHILD_PROTECTION not in agency.purposes:
        return "only statutory agencies registered for child protection can use emergency access"
    role = role_key(practitioner.get("role", ""))
    allowed = {CHILD_PROTECTION, *(role_key(r) for r in agency.emergency_roles)}
    if role not in allowed:
        return "this practitioner's role is not registered for child protection at this agency"
    return None


def actor_for(practitioner: Mapping[str, Any], agency: str, grant_id: str | None) -> Actor:
    """A practitioner acting under emergency access: purpose tagged as emergency."""
    return Actor(
        type="practitioner", id=str(practitioner.get("email", "")),
        label=str(practitioner.get("name", "")), agency=agency, purpose=EMERGENCY_PURPOSE,
        grant_id=grant_id,
    )  # fmt: skip


def _tagged(actor: Actor, grant_id: uuid.UUID) -> Actor:
    return replace(actor, purpose=EMERGENCY_PURPOSE, grant_id=grant_id.hex)


def log_refusal(session: Session, keys: Any, actor: Actor, agency: Agency) -> None:
    """On the operator's chain: who tried, from which agency. No free text."""
    audit.append(session, keys, audit.OPERATOR_CHAIN, actor, "emergency:refused",
                 object_type="agency", object_id=agency.id.hex)  # fmt: skip


def unreviewed_emergency(
    session: Session, vault_id: uuid.UUID, agency_id: uuid.UUID
) -> EmergencyAccess | None:
    return session.exec(
        select(EmergencyAccess).where(
            EmergencyAccess.vault_id == vault_id,
            EmergencyAccess.agency_id == agency_id,
            col(EmergencyAccess.reviewed_at).is_(None),
        )
    ).first()


def _context(row: EmergencyAccess, field: str) -> FieldContext:
    return FieldContext(row.vault_id, "emergency_access", row.id, field, 1)


# -- opening --------------------------------------------------------------------------------
def handle_of(session: Session, agency_id: uuid.UUID, hint: str | None) -> PairwiseHandle | None:
    """The agency's own pairwise handle, locked, so two emergency requests for the same
    young person queue here and the no-chaining check cannot be raced. Connection codes
    are not looked at (nothing is used up, nothing is revealed)."""
    if not hint or len(hint) > 100:
        return None
    return session.exec(
        select(PairwiseHandle)
        .where(PairwiseHandle.handle == hint.strip(), PairwiseHandle.agency_id == agency_id)
        .with_for_update()
    ).first()


@dataclass(frozen=True)
class OpenedEmergency:
    request: AccessRequest
    grant: Grant
    emergency: EmergencyAccess
    auth_req_id: str  # handed to the client once; stored only as a keyed hash

    def __repr__(self) -> str:
        return f"OpenedEmergency(grant={self.grant.id}, auth_req_id=<hidden>)"


def request_access(
    session: Session, config: GrantsConfig, keyring: Any, notifier: Any, *, agency: Agency,
    client_id: str, handle: PairwiseHandle, practitioner: dict[str, str],
    details: EmergencyDetails,
) -> OpenedEmergency:  # fmt: skip
    """The backchannel's emergency path (CIBA Core 1.0 section 7.1, with an RFC 9396
    ``storykeep_emergency`` item): the caller checked eligibility and parsed the
    details. A chained request is logged and refused before anything is created; then
    the request row is made and ``open_access`` grants at once, so the first poll gets
    the tokens."""
    actor = actor_for(practitioner, agency.name, None)
    if unreviewed_emergency(session, handle.vault_id, agency.id) is not None:
        log_refusal(session, keyring.provider, actor, agency)
        raise EmergencyChained(
            "an earlier emergency access for this young person has not been reviewed yet; "
            "it must be reviewed before another can be opened"
        )
    auth_req_id = secrets.token_urlsafe(32)
    now = utcnow()
    request = AccessRequest(
        auth_req_hash=config.hash("auth-req", auth_req_id), client_id=client_id,
        agency_id=agency.id, vault_id=handle.vault_id, details=details.as_details(),
        practitioner=practitioner, created_at=now, decide_by=now,
        poll_interval=config.poll_interval_seconds,
    )  # fmt: skip
    session.add(request)
    session.flush()
    grant, row = open_access(session, keyring, actor, agency, request, details, notifier)
    return OpenedEmergency(request=request, grant=grant, emergency=row, auth_req_id=auth_req_id)


def open_access(
    session: Session, keyring: Any, actor: Actor, agency: Agency, request: AccessRequest,
    details: EmergencyDetails, notifier: Any,
) -> tuple[Grant, EmergencyAccess]:  # fmt: skip
    """Grant at once, from an already-created request row (status is set here). The
    caller has checked eligibility; this enforces the no-chaining rule itself."""
    if unreviewed_emergency(session, request.vault_id, agency.id) is not None:
        raise Conflict(
            "an earlier emergency access for this young person has not been reviewed yet; "
            "it must be reviewed before another can be opened"
        )
    now = utcnow()
    request.status, request.decided_at = "approved", now
    grant = Grant(
        request_id=request.id, vault_id=request.vault_id, agency_id=agency.id,
        client_id=request.client_id, categories=details.categories, actions=["read"],
        purpose=EMERGENCY_PURPOSE, practitioner=request.practitioner,
        practitioner_id=request.practitioner_id, lawful_basis=LAWFUL_BASIS,
        created_at=now, expires_at=now + timedelta(hours=details.duration_hours),
    )  # fmt: skip
    session.add_all([request, grant])
    session.flush()
    row = EmergencyAccess(
        grant_id=grant.id, vault_id=request.vault_id, agency_id=agency.id,
        reason_code=details.reason_code, reason_sealed=b"", created_at=now,
    )  # fmt: skip
    row.reason_sealed = keyring.seal_text(session, _context(row, "reason"), details.reason)
    if details.defer_reason is not None and details.defer_days is not None:
        row.notice_deferred_until = now + timedelta(days=details.defer_days)
        row.deferral_reason_sealed = keyring.seal_text(
            session, _context(row, "deferral_reason"), details.defer_reason
        )
    session.add(row)
    session.flush()
    actor = _tagged(actor, grant.id)
    audit.append(session, keyring.provider, request.vault_id.hex, actor, "emergency:opened",
                 object_type="grant", object_id=grant.id.hex)  # fmt: skip
    if row.notice_deferred_until is None:
        tell_young_person(session, row, grant, agency.name, notifier)
    else:
        audit.append(session, keyring.provider, request.vault_id.hex, actor,
                     "emergency:notice_deferred", object_type="grant",
                     object_id=grant.id.hex)  # fmt: skip
    return grant, row


def tell_young_person(
    session: Session, row: EmergencyAccess, grant: Grant, agency_name: str, notifier: Any
) -> None:
    """Tell the young person and every active advocate, now."""
    message = messages.emergency(agency_name, grant.categories, grant.expires_at)
    notifier.young_person(session, row.vault_id.hex, message,
                          dedupe_key=f"emergency:{row.id.hex}")  # fmt: skip
    links = session.exec(
        select(AdvocateLink).where(
            AdvocateLink.vault_id == row.vault_id, col(AdvocateLink.removed_at).is_(None)
        )
    ).all()
    for link in links:
        notifier.advocate(session, link.advocate_id, message,
                          dedupe_key=f"emergency:{row.id.hex}:{link.advocate_id.hex}")  # fmt: skip
    row.young_person_told_at = utcnow()
    session.add(row)


def notice_withheld(session: Session, grant_id: uuid.UUID) -> bool:
    """Whether the young person must not yet hear of this grant at all: it is an
    emergency grant whose telling is deferred. Other messages about the grant (an
    "ending soon" reminder, an "they looked" notice) would tell them early."""
    row = session.exec(select(EmergencyAccess).where(EmergencyAccess.grant_id == grant_id)).first()
    return row is not None and row.young_person_told_at is None


def vaults_with_notice_withheld(session: Session, vault_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Of these vaults, those with an emergency whose telling is still deferred: no
    message may tell them anything about that time yet (not even a daily summary)."""
    if not vault_ids:
        return set()
    rows = session.exec(
        select(EmergencyAccess.vault_id).where(
            col(EmergencyAccess.vault_id).in_(vault_ids),
            col(EmergencyAccess.young_person_told_at).is_(None),
        )
    ).all()
    return set(rows)


# -- review ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class EmergencyCase:
    """What a reviewer sees: enough to judge, nothing of the records themselves. The
    reasons are filled in only when one case is opened (and that read is logged)."""

    id: uuid.UUID
    agency: str
    practitioner: dict[str, Any]
    reason_code: str
    reason: str | None
    categories: list[str]
    opened_at: datetime
    ends_at: datetime
    deferred_until: datetime | None
    deferral_reason: str | None
    told_at: datetime | None
    reviewed_at: datetime | None
    outcome: str | None
    overdue: bool

    def __repr__(self) -> str:
        return f"EmergencyCase(id={self.id}, agency={self.agency!r})"

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["id"] = self.id.hex
        out["reason_words"] = REASON_CODES.get(self.reason_code, self.reason_code)
        for key in ("opened_at", "ends_at", "deferred_until", "told_at", "reviewed_at"):
            out[key] = out[key].isoformat() if out[key] else None
        return out


def is_reviewer(session: Session, practitioner_id: uuid.UUID) -> bool:
    return session.get(EmergencyReviewer, practitioner_id) is not None


def _case(
    session: Session, keyring: Any, row: EmergencyAccess, now: datetime, with_reasons: bool
) -> EmergencyCase:
    grant = session.get(Grant, row.grant_id)
    agency = session.get(Agency, row.agency_id)
    if grant is None or agency is None:  # foreign keys make this impossible
        raise NotFound("No such emergency access.")
    reason = deferral = None
    if with_reasons:
        reason = keyring.open_text(session, _context(row, "reason"), row.reason_sealed)
        if row.deferral_reason_sealed:
            deferral = keyring.open_text(
                session, _context(row, "deferral_reason"), row.deferral_reason_sealed
            )
    return EmergencyCase(
        id=row.id, agency=agency.name, practitioner=dict(grant.practitioner),
        reason_code=row.reason_code, reason=reason, categories=list(grant.categories),
        opened_at=row.created_at, ends_at=grant.expires_at,
        deferred_until=row.notice_deferred_until, deferral_reason=deferral,
        told_at=row.young_person_told_at, reviewed_at=row.reviewed_at,
        outcome=row.review_outcome,
        overdue=row.reviewed_at is None and now - row.created_at > REVIEW_DUE,
    )  # fmt: skip


def _require_reviewer(session: Session, reviewer_id: uuid.UUID) -> None:
    if not is_reviewer(session, reviewer_id):
        raise PermissionDenied("Only registered reviewers can review emergency access.")


def cases_for_reviewer(
    session: Session, keyring: Any, reviewer_id: uuid.UUID, reviewer_agency_id: uuid.UUID
) -> list[EmergencyCase]:
    """Unreviewed cases first; never the reviewer's own agency's. No reasons in the list:
    they are read one case at a time, and each reading is logged."""
    _require_reviewer(session, reviewer_id)
    rows = session.exec(
        select(EmergencyAccess)
        .where(EmergencyAccess.agency_id != reviewer_agency_id)
        .order_by(col(EmergencyAccess.reviewed_at).is_not(None), col(EmergencyAccess.created_at))
    ).all()
    now = utcnow()
    return [_case(session, keyring, row, now, with_reasons=False) for row in rows]


def _reviewable(
    session: Session, emergency_id: uuid.UUID, reviewer_agency_id: uuid.UUID, lock: bool
) -> EmergencyAccess:
    row = session.get(EmergencyAccess, emergency_id, with_for_update=lock or None)
    if row is None or row.agency_id == reviewer_agency_id:
        # Another agency's reviewer only: one's own agency's cases look absent.
        raise NotFound("No such emergency access to review.")
    return row


def case_for_reviewer(
    session: Session, keyring: Any, actor: Actor, reviewer_id: uuid.UUID,
    reviewer_agency_id: uuid.UUID, emergency_id: uuid.UUID,
) -> EmergencyCase:  # fmt: skip
    """One case with its reasons. The reasons are about a child, so reading them is an
    ``emergency:case_read`` entry in the young person's log (SECURITY.md, "Audit")."""
    _require_reviewer(session, reviewer_id)
    row = _reviewable(session, emergency_id, reviewer_agency_id, lock=False)
    audit.append(session, keyring.provider, row.vault_id.hex, _tagged(actor, row.grant_id),
                 "emergency:case_read", object_type="grant",
                 object_id=row.grant_id.hex)  # fmt: skip
    return _case(session, keyring, row, utcnow(), with_reasons=True)


def review(
    session: Session, keyring: Any, actor: Actor, reviewer_id: uuid.UUID,
    reviewer_agency_id: uuid.UUID, emergency_id: uuid.UUID, outcome: str, notes: str,
) -> EmergencyCase:  # fmt: skip
    _require_reviewer(session, reviewer_id)
    if outcome not in REVIEW_OUTCOMES:
        raise InvalidInput(f"outcome must be one of: {', '.join(REVIEW_OUTCOMES)}")
    if not 10 <= len(notes.strip()) <= 4000:
        raise InvalidInput("Write the review notes (10 to 4000 characters).")
    row = _reviewable(session, emergency_id, reviewer_agency_id, lock=True)
    if row.reviewed_at is not None:
        raise Conflict("This emergency access has already been reviewed. Nothing was changed.")
    row.reviewed_at, row.reviewer_id, row.review_outcome = utcnow(), reviewer_id, outcome
    row.review_notes_sealed = keyring.seal_text(
        session, _context(row, "review_notes"), notes.strip()
    )
    session.add(row)
    session.flush()
    audit.append(session, keyring.provider, row.vault_id.hex, _tagged(actor, row.grant_id),
                 "emergency:reviewed", object_type="grant",
                 object_id=row.grant_id.hex)  # fmt: skip
    return _case(session, keyring, row, utcnow(), with_reasons=True)


# -- the operator ------------------------------------------------------------------------
@dataclass(frozen=True)
class NewReviewer:
    practitioner: Practitioner
    agency: Agency
    created_account: bool
    # Only for a new account: shown to the operator once (RFC 6238), never stored in clear.
    totp_secret: str | None
    totp_uri: str | None

    def __repr__(self) -> str:
        return f"NewReviewer(email={self.practitioner.email!r}, totp_secret=<hidden>)"


def add_reviewer(
    session: Session, settings: Any, keys: Any, actor: Actor, *, email: str,
    agency_name: str, name: str | None, role: str | None, password: str | None,
) -> NewReviewer:  # fmt: skip
    """Register an independent reviewer (``storykeep reviewer add``). An existing
    practitioner account at that agency is flagged as a reviewer; otherwise the account
    is made exactly as ``storykeep practitioner add`` makes it."""
    # app.auth.practitioners imports the OAuth modules, which import this module.
    from app.auth import practitioners  # noqa: PLC0415 - an import cycle otherwise

    cleaned = practitioners.normalise_email(email)
    agency = session.exec(select(Agency).where(Agency.name == agency_name.strip())).first()
    if agency is None:
        raise NotFound(f"No agency called {agency_name!r}. Add it with `storykeep agency add`.")
    existing = people_repo.practitioner_by_email(session, cleaned)
    created = None
    if existing is not None:
        if existing.agency_id != agency.id:
            raise Conflict(f"{cleaned!r} already has an account at another agency.")
        if is_reviewer(session, existing.id):
            raise Conflict(f"{cleaned!r} is already an emergency access reviewer.")
        person = existing
    else:
        if password is None:
            raise InvalidInput(
                f"There is no account for {cleaned!r} yet: give a password with --password-stdin."
            )
        created = practitioners.add_practitioner(
            session, settings, keys, actor, email=cleaned, agency_name=agency.name, name=name,
            role=role or REVIEWER_ROLE, password=password,
        )  # fmt: skip
        person = created.practitioner
    session.add(EmergencyReviewer(practitioner_id=person.id))
    session.flush()
    audit.append(session, keys, audit.OPERATOR_CHAIN, actor, "emergency:reviewer_added",
                 object_type="practitioner", object_id=person.id.hex)  # fmt: skip
    return NewReviewer(
        practitioner=person, agency=agency, created_account=created is not None,
        totp_secret=created.totp_secret if created else None,
        totp_uri=created.totp_uri if created else None,
    )  # fmt: skip


def add_emergency_role(
    session: Session, keys: Any, actor: Actor, agency_name: str, role: str
) -> Agency:
    """Register one more practitioner role for emergency access at a statutory agency
    with the ``child_protection`` purpose (``storykeep agency emergency-role``)."""
    agency = session.exec(
        select(Agency).where(Agency.name == agency_name.strip()).with_for_update()
    ).first()
    if agency is None:
        raise NotFound(f"No agency called {agency_name!r}. Add it with `storykeep agency add`.")
    if not agency.statutory or CHILD_PROTECTION not in agency.purposes:
        raise InvalidInput(
            f"{agency.name!r} is not a statutory agency with the child_protection purpose, "
            "so none of its roles can use emergency access."
        )
    key = role_key(role)
    if not 1 <= len(key) <= ROLE_MAX:
        raise InvalidInput(f"A role needs 1 to {ROLE_MAX} characters.")
    known = {CHILD_PROTECTION, *(role_key(r) for r in agency.emergency_roles)}
    if key in known:
        raise Conflict(f"The role {key!r} can already use emergency access at {agency.name!r}.")
    agency.emergency_roles = [*agency.emergency_roles, key]  # a new list: JSON change tracked
    session.add(agency)
    session.flush()
    audit.append(session, keys, audit.OPERATOR_CHAIN, actor, "agency:emergency_role_added",
                 object_type="agency", object_id=agency.id.hex)  # fmt: skip
    return agency


@dataclass(frozen=True)
class OperatorLine:
    """What the operator sees: no reasons, no categories, nothing about the child."""

    id: str
    agency: str
    opened_at: str
    ends_at: str
    review: str  # "reviewed <when>", "waiting" or "OVERDUE"


def operator_list(session: Session, now: datetime, overdue_only: bool) -> list[OperatorLine]:
    rows = session.exec(select(EmergencyAccess).order_by(col(EmergencyAccess.created_at))).all()
    names = {a.id: a.name for a in session.exec(select(Agency)).all()}
    out = []
    for row in rows:
        overdue = row.reviewed_at is None and now - row.created_at > REVIEW_DUE
        if overdue_only and not overdue:
            continue
        grant = session.get(Grant, row.grant_id)
        if row.reviewed_at is not None:
            review_state = f"reviewed {row.reviewed_at.isoformat()}"
        else:
            review_state = "OVERDUE" if overdue else "waiting"
        out.append(
            OperatorLine(
                id=row.id.hex,
                agency=names.get(row.agency_id, "?"),
                opened_at=row.created_at.isoformat(),
                ends_at=grant.expires_at.isoformat() if grant else "",
                review=review_state,
            )
        )
    return out


# -- the job ---------------------------------------------------------------------------------
def overdue_reviews(session: Session, now: datetime) -> list[EmergencyAccess]:
    return list(
        session.exec(
            select(EmergencyAccess).where(
                col(EmergencyAccess.reviewed_at).is_(None),
                col(EmergencyAccess.created_at) < now - REVIEW_DUE,
            )
        ).all()
    )


def deferred_notices_due(session: Session, now: datetime) -> list[EmergencyAccess]:
    return list(
        session.exec(
            select(EmergencyAccess).where(
                col(EmergencyAccess.young_person_told_at).is_(None),
                col(EmergencyAccess.notice_deferred_until) <= now,
            )
        ).all()
    )


def run_due_work(engine: Any, keyring: Any, notifier: Any, now: datetime) -> tuple[int, int]:
    """For the job runner: tell young people whose deferral has ended, and flag reviews
    older than 5 days (once each, on the operator's chain). Returns (told, overdue)."""
    told = 0
    with Session(engine) as session, session.begin():
        for row in deferred_notices_due(session, now):
            grant = session.get(Grant, row.grant_id)
            agency = session.get(Agency, row.agency_id)
            if grant is None or agency is None:
                continue
            tell_young_person(session, row, grant, agency.name, notifier)
            audit.append(session, keyring.provider, row.vault_id.hex,
                         _tagged(JOB_ACTOR, row.grant_id), "emergency:young_person_told",
                         object_type="grant", object_id=row.grant_id.hex)  # fmt: skip
            told += 1
    with Session(engine) as session, session.begin():
        overdue = overdue_reviews(session, now)
        for row in overdue:
            if row.overdue_flagged_at is None:
                row.overdue_flagged_at = now
                session.add(row)
                audit.append(session, keyring.provider, audit.OPERATOR_CHAIN,
                             _tagged(JOB_ACTOR, row.grant_id), "emergency:review_overdue",
                             object_type="grant", object_id=row.grant_id.hex)  # fmt: skip
    return told, len(overdue)
