"""Emergency (child protection) access: lawful, narrow, visible, reviewed, never consent.

The rules, and the guidance each follows:

* **Who**: only an agency the operator registered as statutory with the
  ``child_protection`` purpose, and only a practitioner whose role is
  ``child_protection`` or another role the operator registered for that agency
  (National Guidance for Child Protection in Scotland 2021, updated 2023: sharing
  without agreement is for statutory child-protection work). Every refused attempt is
  logged on the operator's audit chain.
* **Why**: a ``reason_code`` from a fixed list and a written ``reason`` (UK GDPR Article
  6(1)(e)/(d) and the Data Protection Act 2018, Schedule 8 paragraph 4 "safeguarding of
  children": the condition must be recorded). The lawful basis stored on the grant is
  ``child_protection``, never ``consent``.
* **What**: read only, the categories named (never "everything" by default), at most 72
  hours (the data-minimisation principle, UK GDPR Article 5(1)(c)).
* **No standing access**: a second emergency grant for the same young person and agency
  is refused until the first has been reviewed.
* **Told**: the young person and their advocates are told at once, in plain words with
  where to get help (ICO Age Appropriate Design Code, standard 4 "transparency"); the
  only exception is a recorded deferral with a reason and an end date at most 7 days
  away, after which the lifecycle job tells them.
* **Reviewed**: an independent reviewer registered by the operator, not from the
  requesting agency, reviews every use; reviews older than 5 days are flagged.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from grants.models import (
    AccessRequest,
    AdvocateLink,
    Agency,
    EmergencyAccess,
    EmergencyReviewer,
    Grant,
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


class EmergencyRefused(PermissionDenied):
    """Not allowed to use emergency access. The attempt is logged, so it keeps changes."""

    keeps_changes = True


@dataclass(frozen=True)
class EmergencyDetails:
    categories: list[str]
    reason_code: str
    reason: str
    duration_hours: int
    defer_reason: str | None
    defer_days: int | None

    def as_details(self) -> dict[str, Any]:
        """What is stored on the request: no reason text (that is sealed elsewhere)."""
        return {
            "type": EMERGENCY_TYPE, "actions": ["read"], "categories": self.categories,
            "reason_code": self.reason_code, "duration_hours": self.duration_hours,
            "purpose": CHILD_PROTECTION, "duration_days": 1 + self.duration_hours // 24,
        }  # fmt: skip


def parse(item: Mapping[str, Any]) -> EmergencyDetails:
    """Validate one ``storykeep_emergency`` authorization_details item (RFC 9396)."""
    extra = sorted(set(item) - ALLOWED_KEYS)
    if extra:
        raise InvalidInput(f"unknown fields: {', '.join(extra)}")
    if item.get("actions") != ["read"]:
        raise InvalidInput('emergency access is read-only: actions must be ["read"]')
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
            raise InvalidInput('defer_notice must be {"reason": ..., "days": ...}')
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


def refusal(agency: Agency, practitioner: Mapping[str, str]) -> str | None:
    """Why this practitioner may not use emergency access, or None if they may."""
    if not agency.statutory or CHILD_PROTECTION not in agency.purposes:
        return "only statutory agencies registered for child protection can use emergency access"
    role = practitioner.get("role", "").strip().lower()
    allowed = {CHILD_PROTECTION, *(r.lower() for r in agency.emergency_roles)}
    if role not in allowed:
        return "this practitioner's role is not registered for child protection at this agency"
    return None


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
        purpose=CHILD_PROTECTION, practitioner=request.practitioner,
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


# -- review ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class EmergencyCase:
    """What a reviewer sees: enough to judge, nothing of the records themselves."""

    id: uuid.UUID
    agency: str
    practitioner: dict[str, Any]
    reason_code: str
    reason: str
    categories: list[str]
    opened_at: datetime
    ends_at: datetime
    deferred_until: datetime | None
    deferral_reason: str | None
    reviewed_at: datetime | None
    outcome: str | None
    overdue: bool


def is_reviewer(session: Session, practitioner_id: uuid.UUID) -> bool:
    return session.get(EmergencyReviewer, practitioner_id) is not None


def _case(session: Session, keyring: Any, row: EmergencyAccess, now: datetime) -> EmergencyCase:
    grant = session.get(Grant, row.grant_id)
    agency = session.get(Agency, row.agency_id)
    if grant is None or agency is None:  # foreign keys make this impossible
        raise NotFound("No such emergency access.")
    deferral = (
        keyring.open_text(session, _context(row, "deferral_reason"), row.deferral_reason_sealed)
        if row.deferral_reason_sealed
        else None
    )
    return EmergencyCase(
        id=row.id, agency=agency.name, practitioner=dict(grant.practitioner),
        reason_code=row.reason_code,
        reason=keyring.open_text(session, _context(row, "reason"), row.reason_sealed),
        categories=list(grant.categories), opened_at=row.created_at, ends_at=grant.expires_at,
        deferred_until=row.notice_deferred_until, deferral_reason=deferral,
        reviewed_at=row.reviewed_at, outcome=row.review_outcome,
        overdue=row.reviewed_at is None and now - row.created_at > REVIEW_DUE,
    )  # fmt: skip


def cases_for_reviewer(
    session: Session, keyring: Any, reviewer_id: uuid.UUID, reviewer_agency_id: uuid.UUID
) -> list[EmergencyCase]:
    """Unreviewed cases first; never the reviewer's own agency's."""
    if not is_reviewer(session, reviewer_id):
        raise PermissionDenied("Only registered reviewers can review emergency access.")
    rows = session.exec(
        select(EmergencyAccess)
        .where(EmergencyAccess.agency_id != reviewer_agency_id)
        .order_by(col(EmergencyAccess.reviewed_at).is_not(None), col(EmergencyAccess.created_at))
    ).all()
    now = utcnow()
    return [_case(session, keyring, row, now) for row in rows]


def review(
    session: Session, keyring: Any, actor: Actor, reviewer_id: uuid.UUID,
    reviewer_agency_id: uuid.UUID, emergency_id: uuid.UUID, outcome: str, notes: str,
) -> EmergencyCase:  # fmt: skip
    if not is_reviewer(session, reviewer_id):
        raise PermissionDenied("Only registered reviewers can review emergency access.")
    if outcome not in REVIEW_OUTCOMES:
        raise InvalidInput(f"outcome must be one of: {', '.join(REVIEW_OUTCOMES)}")
    if not 10 <= len(notes.strip()) <= 4000:
        raise InvalidInput("Write the review notes (10 to 4000 characters).")
    row = session.get(EmergencyAccess, emergency_id, with_for_update=True)
    if row is None or row.agency_id == reviewer_agency_id:
        # Another agency's reviewer only: one's own agency's cases look absent.
        raise NotFound("No such emergency access to review.")
    if row.reviewed_at is not None:
        raise Conflict("This emergency access has already been reviewed. Nothing was changed.")
    row.reviewed_at, row.reviewer_id, row.review_outcome = utcnow(), reviewer_id, outcome
    row.review_notes_sealed = keyring.seal_text(session, _context(row, "review_notes"), notes)
    session.add(row)
    session.flush()
    audit.append(session, keyring.provider, row.vault_id.hex, actor, "emergency:reviewed",
                 object_type="grant", object_id=row.grant_id.hex)  # fmt: skip
    return _case(session, keyring, row, utcnow())


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
            audit.append(session, keyring.provider, row.vault_id.hex, JOB_ACTOR,
                         "emergency:young_person_told", object_type="grant",
                         object_id=row.grant_id.hex)  # fmt: skip
            told += 1
    with Session(engine) as session, session.begin():
        overdue = overdue_reviews(session, now)
        for row in overdue:
            if row.overdue_flagged_at is None:
                row.overdue_flagged_at = now
                session.add(row)
                audit.append(session, keyring.provider, audit.OPERATOR_CHAIN, JOB_ACTOR,
                             "emergency:review_overdue", object_type="grant",
                             object_id=row.grant_id.hex)  # fmt: skip
    return told, len(overdue)
