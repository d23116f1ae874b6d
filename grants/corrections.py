"""Corrections, the agency's side (UK GDPR Article 16, right to rectification).

A young person asks for a record to be corrected, in their own words
(``vault.service.request_correction``). Here the agency that *wrote* the record answers:

* **Who sees it**: only the writing agency (``AgencyRecord.agency`` is its registered
  name), through its OAuth client (authenticated like the token endpoint, RFC 7523
  ``private_key_jwt``) or its practitioners' pages. Anyone else's request is answered as
  if it did not exist (404). The inbox is metadata only; opening a request is a read of
  the young person's words, so it is logged on their audit chain (``correction:read``).
* **Accept**: a new version of the record; the old version is kept, unchanged, in its
  history (ICO guidance: rectify, and keep a record of what changed).
* **Decline**: a reason is required, and the young person is told it, with their right
  to complain to the ICO (ICO guidance: explain why, and how to complain).
* **Either way** the young person may add a statement (Art. 16: "including by means of
  providing a supplementary statement"), which goes wherever the record goes.
* Deciding is done once: a second decision is a conflict (409) and changes nothing.
* The young person is told through the outbox, in plain words that name the agency and
  never the record's content (SECURITY.md; ICO Age Appropriate Design Code, standard 4).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass

from pydantic import ValidationError
from sqlmodel import Session

from grants import repository as grants_repo
from grants.lifecycle import Notifier
from grants.notify.messages import Message
from grants.service import practitioner_actor
from vault import service as vault_service
from vault.actors import Actor
from vault.errors import InvalidInput
from vault.schemas import (
    AgencyCorrectionSummary,
    AgencyCorrectionView,
    CorrectionAccept,
    CorrectionDecline,
    parse_json,
)

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")
STATUS_CHOICES = ("open", "accepted", "declined", "all")


@dataclass(frozen=True)
class CorrectionsDesk:
    """Who at an agency is handling correction requests, whichever door they came in by:
    the agency, the actor named in the young person's audit log, and the ``decided_by``
    kept on a decision (a practitioner's email, or the client id)."""

    agency_id: uuid.UUID
    agency_name: str
    actor: Actor
    decided_by: str


def desk_for_practitioner(
    agency_id: uuid.UUID, agency_name: str, name: str, role: str, email: str
) -> CorrectionsDesk:
    """A practitioner signed in to the practitioner pages, at their own agency."""
    person = {"name": name, "role": role, "email": email}
    return CorrectionsDesk(
        agency_id=agency_id,
        agency_name=agency_name,
        actor=practitioner_actor(person, agency_name, None, None),
        decided_by=email,
    )


def desk_for_client(
    agency_id: uuid.UUID, agency_name: str, client_id: str, practitioner: str | None
) -> CorrectionsDesk:
    """An agency's system. It may name the practitioner deciding (the same JSON object as
    the backchannel request's ``practitioner``); otherwise the client itself is named."""
    if practitioner is None or practitioner == "":
        actor = Actor(type="agency", id=client_id, label="Their records system", agency=agency_name)
        return CorrectionsDesk(agency_id, agency_name, actor, client_id)
    person = _practitioner(practitioner)
    return desk_for_practitioner(
        agency_id, agency_name, person["name"], person["role"], person["email"]
    )


def _practitioner(raw: str) -> dict[str, str]:
    try:
        data = parse_json(raw)
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise InvalidInput("practitioner must be a JSON object with name, role and email.")
    out = {}
    for name, limit in (("name", 100), ("role", 100), ("email", 254)):
        value = data.get(name)
        if not isinstance(value, str) or not 1 <= len(value.strip()) <= limit:
            raise InvalidInput(f"practitioner.{name} is required (1-{limit} characters).")
        out[name] = value.strip()
    if not EMAIL_RE.fullmatch(out["email"]):
        raise InvalidInput("practitioner.email is not an email address.")
    return out


# -- what the young person is told (no content: the agency's name only) ---------------------
def accepted_message(agency: str) -> Message:
    return Message(
        "correction_accepted",
        "Your record has been changed",
        f"{agency} said yes to the change you asked for. They have changed your record. "
        "You can still see the old words in Storykeep. You can add your own words too.",
    )


def declined_message(agency: str) -> Message:
    return Message(
        "correction_declined",
        "Your record has not been changed",
        f"{agency} said no to the change you asked for. Sign in to Storykeep to see why. "
        "You can add your own words to the record. They will go with it when it is shared. "
        "If you are not happy, you can tell the ICO. Your advocate can help you.",
    )


# -- the agency's inbox and decisions ---------------------------------------------------------
def parse_status(raw: str | None) -> str | None:
    """``open`` by default; ``all`` for every request."""
    value = (raw or "open").strip()
    if value not in STATUS_CHOICES:
        raise InvalidInput(f"status must be one of: {', '.join(STATUS_CHOICES)}.")
    return None if value == "all" else value


def inbox(
    session: Session, desk: CorrectionsDesk, status: str | None
) -> list[AgencyCorrectionSummary]:
    """Requests about records this agency wrote, oldest first, with the agency's own
    reference for each young person where it has one. No content, so no read is logged."""
    rows = vault_service.corrections_for_agency(session, desk.agency_name, status)
    handles = grants_repo.handles_for(session, desk.agency_id, [vault_id for vault_id, _ in rows])
    return [
        summary.model_copy(update={"reference": handles.get(vault_id)})
        for vault_id, summary in rows
    ]


def _with_reference(
    session: Session, desk: CorrectionsDesk, found: vault_service.AgencyCorrection
) -> AgencyCorrectionView:
    handle = grants_repo.handle_for(session, desk.agency_id, found.vault_id)
    return found.view.model_copy(update={"reference": handle.handle if handle else None})


def open_correction(
    session: Session,
    services: vault_service.VaultServices,
    desk: CorrectionsDesk,
    correction_id: uuid.UUID,
) -> AgencyCorrectionView:
    """One request: the record as it is now and the young person's words (a logged read)."""
    found = vault_service.correction_for_agency(
        session, services, desk.actor, desk.agency_name, correction_id
    )
    return _with_reference(session, desk, found)


def accept_form(title: str | None, body: str | None) -> CorrectionAccept:
    """Build the accepted correction from form fields; a field left out keeps its text."""
    try:
        return CorrectionAccept(title=title or None, body=body or None)
    except ValidationError as exc:
        raise InvalidInput(_problem(exc)) from None


def decline_form(reason: str | None) -> CorrectionDecline:
    if not (reason or "").strip():
        raise InvalidInput("Give a reason for saying no. The young person will read it.")
    try:
        return CorrectionDecline(reason=reason or "")
    except ValidationError as exc:
        raise InvalidInput(_problem(exc)) from None


def _problem(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
    )


def accept(
    session: Session,
    services: vault_service.VaultServices,
    notifier: Notifier,
    desk: CorrectionsDesk,
    correction_id: uuid.UUID,
    data: CorrectionAccept,
) -> AgencyCorrectionView:
    """Accept: a new version of the record, the old one kept; the young person is told."""
    found = vault_service.accept_correction(
        session, services, desk.actor, desk.agency_name, correction_id, desk.decided_by, data
    )
    notifier.young_person(
        session, found.vault_id.hex, accepted_message(desk.agency_name),
        dedupe_key=f"correction:{correction_id.hex}:decided",
    )  # fmt: skip
    return _with_reference(session, desk, found)


def decline(
    session: Session,
    services: vault_service.VaultServices,
    notifier: Notifier,
    desk: CorrectionsDesk,
    correction_id: uuid.UUID,
    data: CorrectionDecline,
) -> AgencyCorrectionView:
    """Decline, with a reason the young person is shown; they are told."""
    found = vault_service.decline_correction(
        session, services, desk.actor, desk.agency_name, correction_id, desk.decided_by, data
    )
    notifier.young_person(
        session, found.vault_id.hex, declined_message(desk.agency_name),
        dedupe_key=f"correction:{correction_id.hex}:decided",
    )  # fmt: skip
    return _with_reference(session, desk, found)
