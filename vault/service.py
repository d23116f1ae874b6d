"""The vault's business logic. Every function takes ``(session, …, actor, …)`` and never
commits: the caller's transaction commits or rolls back, so a change and its audit
entry land together or not at all (STYLE.md, practice 3).
"""

from __future__ import annotations

import hashlib
import itertools
import operator
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Protocol, TypeVar

from sqlmodel import Session

from vault import audit
from vault import repository as repo
from vault.actors import Actor
from vault.crypto import FieldContext, seal
from vault.db_types import utcnow
from vault.errors import (
    Conflict,
    IntegrityFailure,
    InvalidInput,
    NotFound,
    PermissionDenied,
    UnsupportedMediaType,
)
from vault.keyring import Keyring
from vault.models import (
    AgencyRecord,
    AgencyRecordVersion,
    AuditEvent,
    CorrectionRequest,
    StoryEntry,
    StoryPhoto,
    Vault,
    ViewNote,
    YoungPerson,
)
from vault.repository import VaultScope
from vault.schemas import (
    AUDIT_CURSOR_MAX,
    AgencyCorrectionSummary,
    AgencyCorrectionView,
    AuditEventPublic,
    AuditPage,
    CorrectionAccept,
    CorrectionCreate,
    CorrectionDecline,
    CorrectionPublic,
    EntryCreate,
    EntryPublic,
    EntryUpdate,
    NoteCreate,
    NotePublic,
    OwnerRecordView,
    RecordCreate,
    RecordHistory,
    RecordPublic,
    RecordVersionPublic,
    StatementCreate,
    StatementPublic,
    TrailDay,
    TrailLine,
    TrailPerson,
    TrailView,
)
from vault.vocabulary import RECORD_CATEGORIES, SHANARRI

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{2,39}$")
PASSWORD_MIN = 8  # NIST SP 800-63B, 3.1.1.2: at least 8, allow at least 64
PASSWORD_MAX = 256

# Image types we accept, and the first bytes that prove it (we never trust the header).
PHOTO_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/webp": (b"RIFF",),
}


@dataclass(frozen=True)
class VaultServices:
    """What the vault needs from the process: the keyring (and through it the provider)."""

    keyring: Keyring


# -- accounts ------------
def normalise_username(username: str) -> str:
    return username.strip().lower()


def validate_new_credentials(username: str, password: str) -> str:
    name = normalise_username(username)
    if not USERNAME_RE.fullmatch(name):
        raise InvalidInput(
            "A username needs 3 to 40 letters, numbers, dots, dashes or underscores, "
            "starting with a letter or number."
        )
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidInput(f"A password needs at least {PASSWORD_MIN} characters.")
    return name


def create_young_person(
    session: Session,
    services: VaultServices,
    actor: Actor | None,
    username: str,
    password_hash: str,
) -> tuple[YoungPerson, Vault]:
    """Create an account, its vault and the vault's data key, and log it.

    ``actor`` None means the young person signed themselves up.
    """
    if repo.get_young_person_by_username(session, username) is not None:
        raise Conflict("That username is taken. Please choose another.")
    person = YoungPerson(username=username, password_hash=password_hash)
    actor = actor or Actor.young_person(person.id, username)
    vault = Vault(young_person_id=person.id)
    session.add(person)
    session.flush()
    session.add(vault)
    session.flush()
    services.keyring.create_vault_key(session, vault.id)
    audit.append(
        session,
        services.keyring.provider,
        vault.id.hex,
        actor,
        "vault:created",
        object_type="vault",
        object_id=vault.id.hex,
    )
    return person, vault


def vault_of(session: Session, person: YoungPerson) -> Vault:
    vault = repo.get_vault_of(session, person.id)
    if vault is None or vault.erased_at is not None:
        raise NotFound()
    return vault


def _log(
    session: Session,
    services: VaultServices,
    vault_id: uuid.UUID,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: uuid.UUID,
) -> int:
    return audit.append(
        session,
        services.keyring.provider,
        vault_id.hex,
        actor,
        action,
        object_type=object_type,
        object_id=object_id.hex,
    )


def _is_owner(actor: Actor, vault: Vault) -> bool:
    return (
        actor.type == "young_person"
        and vault.young_person_id is not None
        and actor.id == vault.young_person_id.hex
    )


def _log_read_unless_owner(
    session: Session,
    services: VaultServices,
    actor: Actor,
    vault_id: uuid.UUID,
    action: str,
    object_type: str,
    object_id: uuid.UUID,
) -> None:
    """Every read by anyone other than the owner is logged; the owner's own reads are not
    (they would bury "who has looked" under "you looked")."""
    if actor.type == "young_person":  # only then can it be the owner: look
        vault = session.get(Vault, vault_id)
        if vault is not None and _is_owner(actor, vault):
            return
    _log(session, services, vault_id, actor, action, object_type, object_id)


# -- story entries ------------
def _entry_ctx(entry: StoryEntry, field: str) -> FieldContext:
    return FieldContext(entry.vault_id, "story_entry", entry.id, field, entry.version)


def _entry_public(
    session: Session, services: VaultServices, entry: StoryEntry, has_photo: bool
) -> EntryPublic:
    ring = services.keyring
    return EntryPublic(
        id=entry.id,
        title=ring.open_text(session, _entry_ctx(entry, "title"), entry.title_sealed),
        body=ring.open_text(session, _entry_ctx(entry, "body"), entry.body_sealed),
        shareable=entry.shareable,
        created_at=entry.created_at,
        updated_at=entry.updated_at,
        version=entry.version,
        has_photo=has_photo,
    )


def _seal_entry(
    session: Session, services: VaultServices, entry: StoryEntry, title: str, body: str
) -> None:
    ring = services.keyring
    entry.title_sealed = ring.seal_text(session, _entry_ctx(entry, "title"), title)
    entry.body_sealed = ring.seal_text(session, _entry_ctx(entry, "body"), body)


def create_entry(
    session: Session, services: VaultServices, actor: Actor, vault: Vault, data: EntryCreate
) -> EntryPublic:
    entry = StoryEntry(
        vault_id=vault.id, shareable=data.shareable, title_sealed=b"", body_sealed=b""
    )
    _seal_entry(session, services, entry, data.title, data.body)
    session.add(entry)
    session.flush()
    _log(session, services, vault.id, actor, "entry:created", "story_entry", entry.id)
    return _entry_public(session, services, entry, has_photo=False)


def list_entries(
    session: Session, services: VaultServices, actor: Actor, scope: VaultScope
) -> list[EntryPublic]:
    with_photos = repo.entry_ids_with_photos(session, scope.vault_id)
    out = []
    for entry in repo.list_entries(session, scope):
        _log_read_unless_owner(
            session, services, actor, scope.vault_id, "entry:read", "story_entry", entry.id
        )
        out.append(_entry_public(session, services, entry, entry.id in with_photos))
    return out


def _entry(session: Session, scope: VaultScope, entry_id: uuid.UUID) -> StoryEntry:
    entry = repo.get_entry(session, scope, entry_id)
    if entry is None:
        raise NotFound("We could not find that story entry.")
    return entry


def get_entry(
    session: Session,
    services: VaultServices,
    actor: Actor,
    scope: VaultScope,
    entry_id: uuid.UUID,
) -> EntryPublic:
    entry = _entry(session, scope, entry_id)
    _log_read_unless_owner(
        session, services, actor, scope.vault_id, "entry:read", "story_entry", entry.id
    )
    has_photo = entry.id in repo.entry_ids_with_photos(session, scope.vault_id)
    return _entry_public(session, services, entry, has_photo)


def update_entry(
    session: Session,
    services: VaultServices,
    actor: Actor,
    vault: Vault,
    entry_id: uuid.UUID,
    data: EntryUpdate,
) -> EntryPublic:
    entry = _entry(session, VaultScope.owner(vault.id), entry_id)
    current = _entry_public(session, services, entry, has_photo=False)
    title = data.title if data.title is not None else current.title
    body = data.body if data.body is not None else current.body
    photo = session.get(StoryPhoto, entry.id)
    photo_bytes = _open_photo(session, services, photo) if photo else None
    entry.version += 1
    _seal_entry(session, services, entry, title, body)
    if photo is not None and photo_bytes is not None:
        # The photo's associated data binds the entry version, so re-seal it too.
        photo.version = entry.version
        photo.content_sealed = services.keyring.seal_bytes(session, _photo_ctx(photo), photo_bytes)
        session.add(photo)
    if data.shareable is not None:
        entry.shareable = data.shareable
    entry.updated_at = utcnow()
    session.add(entry)
    session.flush()
    _log(session, services, vault.id, actor, "entry:updated", "story_entry", entry.id)
    return _entry_public(session, services, entry, has_photo=photo is not None)


def delete_entry(
    session: Session, services: VaultServices, actor: Actor, vault: Vault, entry_id: uuid.UUID
) -> None:
    entry = _entry(session, VaultScope.owner(vault.id), entry_id)
    photo = session.get(StoryPhoto, entry.id)
    if photo is not None:
        session.delete(photo)
        session.flush()  # child first: the unit of work does not know this dependency
    session.delete(entry)
    session.flush()
    _log(session, services, vault.id, actor, "entry:deleted", "story_entry", entry_id)


# -- photos ------------
def _photo_ctx(photo: StoryPhoto) -> FieldContext:
    return FieldContext(photo.vault_id, "story_photo", photo.entry_id, "content", photo.version)


def _open_photo(session: Session, services: VaultServices, photo: StoryPhoto) -> bytes:
    return services.keyring.open_bytes(session, _photo_ctx(photo), photo.content_sealed)


def check_photo_type(content_type: str, data: bytes) -> str:
    """Accept only JPEG, PNG or WebP, and only if the bytes say so too."""
    kind = content_type.split(";", maxsplit=1)[0].strip().lower()
    signatures = PHOTO_SIGNATURES.get(kind)
    if signatures is None:
        raise UnsupportedMediaType("Photos must be JPEG, PNG or WebP.")
    matches = any(data.startswith(sig) for sig in signatures)
    if kind == "image/webp":
        matches = matches and data[8:12] == b"WEBP"
    if not matches:
        raise UnsupportedMediaType("That file is not the kind of picture it says it is.")
    return kind


def set_photo(
    session: Session,
    services: VaultServices,
    actor: Actor,
    vault: Vault,
    entry_id: uuid.UUID,
    content_type: str,
    data: bytes,
) -> None:
    """Attach or replace an entry's photo. The caller has already bounded ``data``."""
    entry = _entry(session, VaultScope.owner(vault.id), entry_id)
    if not data:
        raise InvalidInput("The photo is empty.")
    kind = check_photo_type(content_type, data)
    photo = session.get(StoryPhoto, entry.id) or StoryPhoto(
        entry_id=entry.id,
        vault_id=vault.id,
        content_type=kind,
        size_bytes=0,
        content_sealed=b"",
        version=entry.version,
    )
    photo.content_type, photo.size_bytes, photo.version = kind, len(data), entry.version
    photo.content_sealed = services.keyring.seal_bytes(session, _photo_ctx(photo), data)
    session.add(photo)
    session.flush()
    _log(session, services, vault.id, actor, "photo:added", "story_entry", entry.id)


def get_photo(
    session: Session,
    services: VaultServices,
    actor: Actor,
    scope: VaultScope,
    entry_id: uuid.UUID,
) -> tuple[str, bytes]:
    photo = repo.get_photo(session, scope, entry_id)
    if photo is None:
        raise NotFound("That entry has no photo.")
    _log_read_unless_owner(
        session, services, actor, scope.vault_id, "photo:read", "story_entry", entry_id
    )
    return photo.content_type, _open_photo(session, services, photo)


# -- agency records ------------
def _record_ctx(record: AgencyRecord | repo.RecordRow, field: str) -> FieldContext:
    return FieldContext(record.vault_id, "agency_record", record.id, field, record.version)


def _note_ctx(note: ViewNote) -> FieldContext:
    return FieldContext(note.vault_id, "view_note", note.id, "body", 1)


def add_record(
    session: Session, services: VaultServices, actor: Actor, vault_id: uuid.UUID,
    data: RecordCreate,
) -> repo.RecordRow:  # fmt: skip
    """Seal and store a record, and log it. The record comes back as a read-only row
    (``repository.RecordRow``, as reads give it): it is written with one prebuilt driver
    statement, as agencies write on the hot path, so no ORM object is built for it (that
    alone cost more than sealing both fields)."""
    if data.category not in RECORD_CATEGORIES:
        raise InvalidInput(
            f"Unknown category {data.category!r}. Use one of: {', '.join(RECORD_CATEGORIES)}."
        )
    unknown = sorted(set(data.shanarri) - set(SHANARRI))
    if unknown:
        raise InvalidInput(f"Unknown SHANARRI tag(s): {', '.join(unknown)}.")
    try:
        key = services.keyring.current_key(session, vault_id)
    except IntegrityFailure:
        if not repo.vault_is_open(session, vault_id):  # no vault, or erased with its keys
            raise NotFound("No such vault.") from None
        raise
    now = utcnow()
    record = repo.RecordRow(
        id=uuid.uuid4(), vault_id=vault_id, agency=data.agency, author_name=data.author_name,
        author_role=data.author_role, category=data.category,
        shanarri=sorted(set(data.shanarri)), title_sealed=b"", body_sealed=b"",
        occurred_at=data.occurred_at or now, created_at=now,
        version=AgencyRecord.model_fields["version"].default, has_notes=False,
        has_statements=False,
    )  # fmt: skip
    # Sealed against the record's own context (_record_ctx), as every read opens it.
    record = record._replace(
        title_sealed=seal(key, _record_ctx(record, "title"), data.title.encode()),
        body_sealed=seal(key, _record_ctx(record, "body"), data.body.encode()),
    )
    # Whether the vault is (still) open is checked by the insert itself: one statement.
    if not repo.insert_record_if_open(session, record):
        raise NotFound("No such vault.")
    _log(session, services, vault_id, actor, "record:added", "agency_record", record.id)
    return record


def record_public(record: repo.RecordRow, data: RecordCreate) -> RecordPublic:
    """A record just written by ``add_record`` from ``data``, shown back to its writer (no
    read is logged for that). Its title and body are the ones just sealed, not opened
    again."""
    return RecordPublic(
        id=record.id, agency=record.agency, author_name=record.author_name,
        author_role=record.author_role, category=record.category, shanarri=record.shanarri,
        title=data.title, body=data.body, occurred_at=record.occurred_at,
        created_at=record.created_at, version=record.version,
    )  # fmt: skip


def _record_public(
    session: Session, services: VaultServices, record: AgencyRecord, with_notes: bool
) -> RecordPublic:
    ring = services.keyring
    # Read-only rows straight from the driver: this runs on every agency read.
    # A row from record_row says whether there are any; an ORM record does not.
    notes = (
        repo.note_rows(session, record) if with_notes and getattr(record, "has_notes", True) else ()
    )
    statements = (
        repo.statement_rows(session, record)
        if with_notes and getattr(record, "has_statements", True)
        else ()
    )
    return RecordPublic(
        id=record.id,
        agency=record.agency,
        author_name=record.author_name,
        author_role=record.author_role,
        category=record.category,
        shanarri=record.shanarri,
        title=ring.open_text(session, _record_ctx(record, "title"), record.title_sealed),
        body=ring.open_text(session, _record_ctx(record, "body"), record.body_sealed),
        occurred_at=record.occurred_at,
        created_at=record.created_at,
        version=record.version,
        notes=[
            NotePublic(
                id=n.id,
                record_id=n.record_id,
                created_at=n.created_at,
                body=ring.open_text(session, _note_ctx(n), n.body_sealed),
            )
            for n in notes
        ],
        statements=[_statement_public(session, services, c) for c in statements],
    )


def list_records(
    session: Session,
    services: VaultServices,
    actor: Actor,
    scope: VaultScope,
    category: str | None = None,
) -> list[RecordPublic]:
    if category is not None and category not in RECORD_CATEGORIES:
        raise InvalidInput(f"Unknown category {category!r}.")
    records = repo.list_records(session, scope, category)
    out = []
    for record in records:
        _log_read_unless_owner(
            session, services, actor, scope.vault_id, "record:read", "agency_record", record.id
        )
        out.append(_record_public(session, services, record, with_notes=True))
    return out


def get_record(
    session: Session,
    services: VaultServices,
    actor: Actor,
    scope: VaultScope,
    record_id: uuid.UUID,
    fetched: repo.FetchedRecord | None = None,
) -> RecordPublic:
    """One record in ``scope``, its read logged. ``fetched``: the record as a caller
    already read it by id (or found it missing) without the scope's filters; it is then
    held to the same filters here, so what is out of scope still does not exist."""
    if fetched is None or fetched.record_id != record_id:
        fetched = repo.fetch_record(session, scope.vault_id, record_id)
    record = fetched.in_scope(scope)
    if record is None:
        raise NotFound("We could not find that record.")
    _log_read_unless_owner(
        session, services, actor, scope.vault_id, "record:read", "agency_record", record.id
    )
    return _record_public(session, services, record, with_notes=True)


def add_note(
    session: Session,
    services: VaultServices,
    actor: Actor,
    vault: Vault,
    record_id: uuid.UUID,
    data: NoteCreate,
) -> NotePublic:
    record = repo.get_record(session, VaultScope.owner(vault.id), record_id)
    if record is None:
        raise NotFound("We could not find that record.")
    note = ViewNote(vault_id=vault.id, record_id=record.id, body_sealed=b"")
    note.body_sealed = services.keyring.seal_text(session, _note_ctx(note), data.body)
    session.add(note)
    session.flush()
    _log(session, services, vault.id, actor, "note:added", "view_note", note.id)
    return NotePublic(id=note.id, record_id=record.id, body=data.body, created_at=note.created_at)


# -- audit trail ------------
ACTION_WORDS = {
    "vault:created": "made this vault",
    "vault:exported": "downloaded everything",
    "vault:erased": "deleted the account",
    "entry:created": "wrote a story entry",
    "entry:updated": "changed a story entry",
    "entry:deleted": "deleted a story entry",
    "photo:added": "added a photo",
    "record:added": "added a record",
    "record:read": "read a record",
    "entry:read": "read a story entry",
    "photo:read": "looked at a photo",
    "audit:read": "looked at this list",
    "notifications:changed": "changed how they hear from Storykeep",
    "note:added": "added their view to a record",
    "advocate:invited": "made an invite code for an advocate",
    "advocate:invite_cancelled": "stopped an invite code for an advocate",
    "advocate:joined": "joined as an advocate",
    "advocate:removed": "removed an advocate",
    "advocate:viewed_sharing": "looked at who can see things, who asked and who looked",
    "correction:requested": "asked for a change to a record",
    "correction:read": "read a request for a change to a record",
    "correction:accepted": "said yes to a change to a record and changed it",
    "correction:declined": "said no to a change to a record",
    "statement:added": "added a statement to a record",
    "statement:changed": "changed a statement on a record",
    "code:created": "made a connection code",
    "code:cancelled": "cancelled a connection code",
    "request:received": "asked to see some things",
    "request:declined": "said no to a request",
    "grant:created": "said yes to a request",
    "grant:revoked": "stopped sharing",
    # grants/access.py: a call the young person had not agreed to (sharing stopped, or
    # beyond what was shared), refused.
    "access:refused": "tried to look without the young person's OK, and Storykeep said no",
    # Emergency (child protection) access: grants/emergency.py.
    "emergency:opened": "used emergency access and did not ask first",
    "emergency:notice_deferred": "chose to wait a while to tell the young person",
    "emergency:young_person_told": "sent the young person a message about it",
    "emergency:case_read": "read why emergency access was used, to check it",
    "emergency:reviewed": "checked if the emergency access was right",
}


def describe(event: AuditEvent) -> str:
    """Plain words for one event, for the "who has looked" view."""
    who = "You" if event.actor_type == "young_person" else event.actor_label
    if event.agency and event.actor_type != "young_person":
        who = f"{who} ({event.agency})"
    what = ACTION_WORDS.get(event.action, event.action.replace(":", " "))
    if event.actor_type == "young_person":
        what = what.replace("their view", "your view")
    text = f"{who} {what}"
    if event.purpose:
        text += f", for: {event.purpose.replace('_', ' ')}"
    return text + "."


def _check_paging(before: int | None, limit: int) -> None:
    """Before anything is read or logged: a page of 1 to 200 entries, and a cursor that
    is a sequence number a chain can have (``AUDIT_CURSOR_MAX``; the databases refuse to
    compare the column with a larger one)."""
    if not 1 <= limit <= 200:
        raise InvalidInput("limit must be between 1 and 200.")
    if before is not None and not 1 <= before <= AUDIT_CURSOR_MAX:
        raise InvalidInput("before must be a positive sequence number.")


def audit_trail(
    session: Session,
    services: VaultServices,
    actor: Actor,
    vault: Vault,
    before: int | None,
    limit: int,
) -> AuditPage:
    _check_paging(before, limit)
    _log_read_unless_owner(session, services, actor, vault.id, "audit:read", "vault", vault.id)
    events = repo.audit_page(session, vault.id.hex, before, limit + 1)
    more = len(events) > limit
    events = events[:limit]
    return AuditPage(
        events=[
            AuditEventPublic(
                seq=e.seq,
                occurred_at=e.occurred_at,
                action=e.action,
                actor_type=e.actor_type,
                actor_label=e.actor_label,
                agency=e.agency,
                purpose=e.purpose,
                grant_id=e.grant_id,
                object_type=e.object_type,
                object_id=e.object_id,
                description=describe(e),
            )
            for e in events
        ],
        next_before=events[-1].seq if more and events else None,
    )


# -- correction requests ------------
def _correction_ctx(correction: CorrectionRequest) -> FieldContext:
    return FieldContext(correction.vault_id, "correction_request", correction.id, "body", 1)


def _correction_public(
    session: Session, services: VaultServices, correction: CorrectionRequest
) -> CorrectionPublic:
    return CorrectionPublic(
        id=correction.id,
        record_id=correction.record_id,
        body=services.keyring.open_text(
            session, _correction_ctx(correction), correction.body_sealed
        ),
        status=correction.status,
        created_at=correction.created_at,
        decided_at=correction.decided_at,
        decline_reason=_open_decline_reason(session, services, correction),
        statement=_open_statement(session, services, correction),
        statement_at=correction.statement_at,
    )


def _owned_record(
    session: Session, actor: Actor, vault: Vault, record_id: uuid.UUID
) -> AgencyRecord:
    """Correction requests are the owner's alone: nobody else asks, or reads them, here."""
    if not _is_owner(actor, vault):
        raise PermissionDenied("Only the young person can ask for a correction.")
    record = repo.get_record(session, VaultScope.owner(vault.id), record_id)
    if record is None:
        raise NotFound("We could not find that record.")
    return record


def request_correction(
    session: Session,
    services: VaultServices,
    actor: Actor,
    vault: Vault,
    record_id: uuid.UUID,
    data: CorrectionCreate,
) -> CorrectionPublic:
    """Record a request to correct a record (UK GDPR Article 16, right to rectification).

    The words are sealed like "my view" notes. The request stays ``open``: routing it to
    the agency that wrote the record is the safeguarding issue's work.
    """
    record = _owned_record(session, actor, vault, record_id)
    correction = CorrectionRequest(vault_id=vault.id, record_id=record.id, body_sealed=b"")
    correction.body_sealed = services.keyring.seal_text(
        session, _correction_ctx(correction), data.body
    )
    session.add(correction)
    session.flush()
    _log(
        session, services, vault.id, actor, "correction:requested", "correction_request",
        correction.id,
    )  # fmt: skip
    return _correction_public(session, services, correction)


def list_corrections(
    session: Session, services: VaultServices, actor: Actor, vault: Vault, record_id: uuid.UUID
) -> list[CorrectionPublic]:
    record = _owned_record(session, actor, vault, record_id)
    return [
        _correction_public(session, services, c)
        for c in repo.corrections_for_record(session, VaultScope.owner(vault.id), record.id)
    ]


def record_for_owner(
    session: Session, services: VaultServices, actor: Actor, vault: Vault, record_id: uuid.UUID
) -> OwnerRecordView:
    """The record page: the record, the owner's views and their correction requests."""
    record = _owned_record(session, actor, vault, record_id)
    corrections = repo.corrections_for_record(session, VaultScope.owner(vault.id), record.id)
    return OwnerRecordView(
        record=_record_public(session, services, record, with_notes=True),
        corrections=[_correction_public(session, services, c) for c in corrections],
    )


# -- "Who has looked": the audit trail in plain words, for the owner ------------
# (with a title, without one). "{t}" is the item's title in quotes. Reading age about 10.
OWNER_WORDS: dict[str, tuple[str, str]] = {
    "vault:created": ("made your account", "made your account"),
    "vault:exported": ("downloaded all your things", "downloaded all your things"),
    "entry:created": ("wrote {t}", "wrote a story entry"),
    "entry:updated": ("changed {t}", "changed a story entry"),
    "entry:deleted": ("deleted a story entry", "deleted a story entry"),
    "photo:added": ("added a photo to {t}", "added a photo"),
    "record:added": ("added a record called {t}", "added a record"),
    "record:read": ("read your {t}", "read a record"),
    "entry:read": ("read your story entry {t}", "read a story entry"),
    "photo:read": ("looked at the photo in {t}", "looked at a photo"),
    "audit:read": ("looked at this list", "looked at this list"),
    "notifications:changed": ("changed how we tell you things", "changed how we tell you things"),
    "note:added": ("added your view to {t}", "added your view to a record"),
    "correction:requested": ("asked for a change to {t}", "asked for a change to a record"),
    "correction:read": ("read what you asked to change in {t}", "read what you asked to change"),
    "correction:accepted": ("said yes and changed {t}", "said yes and changed a record"),
    "correction:declined": ("said no to your change to {t}", "said no to your change"),
    "statement:added": ("added your own words to {t}", "added your own words to a record"),
    "statement:changed": ("changed your own words on {t}", "changed your own words on a record"),
    "code:created": ("made a code to give a worker", "made a code to give a worker"),
    "code:cancelled": ("stopped a code", "stopped a code"),
    "request:received": ("asked to see your things", "asked to see your things"),
    "request:declined": ("said no to a request", "said no to a request"),
    "grant:created": ("said yes to a request", "said yes to a request"),
    "grant:revoked": ("stopped sharing", "stopped sharing"),
    "access:refused": (
        "tried to open your {t} without your OK, but Storykeep said no",
        "tried to look at your things without your OK, but Storykeep said no",
    ),
    # Emergency access (grants/emergency.py): plain words, never "you said yes". Each
    # line ends "— in an emergency, to keep you safe" (the grant's purpose words).
    "emergency:opened": (
        "used Emergency access and did not ask you",
        "used Emergency access and did not ask you",
    ),
    "emergency:notice_deferred": (
        "chose to wait a while to tell you",
        "chose to wait a while to tell you",
    ),
    "emergency:young_person_told": ("sent you a message about it", "sent you a message about it"),
    "emergency:case_read": (
        "read why it was done, to check it",
        "read why it was done, to check it",
    ),
    "emergency:reviewed": ("checked if it was right", "checked if it was right"),
    "advocate:invited": ("made a code for an advocate", "made a code for an advocate"),
    "advocate:invite_cancelled": ("stopped an advocate code", "stopped an advocate code"),
    "advocate:joined": ("joined as your advocate", "joined as your advocate"),
    "advocate:removed": ("removed an advocate", "removed an advocate"),
    "advocate:viewed_sharing": (
        "looked at who can see your things",
        "looked at who can see your things",
    ),
}
# Which object types name a record (through a note or a correction) or a story entry.
_TITLED = {"agency_record", "story_entry", "view_note", "correction_request"}


def trail_key(actor_type: str, actor_id: str) -> str:
    """An opaque name for one actor, for the filter's query string (no emails in URLs)."""
    return hashlib.sha256(f"{actor_type}|{actor_id}".encode()).hexdigest()[:16]


def trail_who(actor_type: str, actor_label: str, agency: str | None) -> str:
    if actor_type == "young_person":
        return "You"
    if actor_type == "operator":
        return "The Storykeep team"
    return f"{actor_label} ({agency})" if agency else actor_label


def describe_for_owner(
    event: AuditEvent,
    title: str | None,
    tz: tzinfo,
    purpose_words: Callable[[str], str] | None = None,
    times: int = 1,
    first_at: datetime | None = None,
) -> str:
    """One plain sentence, e.g. "Jo Bloggs (Example High School) read your 'School
    report, June' at 10:14 — to plan support at school." ``title`` is decrypted content,
    so only the vault's owner may be given it (``audit_view`` checks). For the same thing
    done ``times`` times in a row, ``event`` is the last and ``first_at`` the first time:
    "… read your 'School report, June' 12 times, from 10:02 to 10:14 — …"."""
    words = OWNER_WORDS.get(event.action)
    if words is None:
        what = event.action.replace(":", " ").replace("_", " ")
    elif title:
        what = words[0].replace("{t}", f"'{title}'")
    else:
        what = words[1]
    who = trail_who(event.actor_type, event.actor_label, event.agency)
    last = event.occurred_at.astimezone(tz).strftime("%H:%M")
    first = first_at.astimezone(tz).strftime("%H:%M") if first_at else last
    if times == 1:
        when = f"at {last}"
    elif first == last:
        when = f"{times} times at {last}"
    else:
        when = f"{times} times, from {first} to {last}"
    text = f"{who} {what} {when}"
    if event.purpose:
        why = purpose_words(event.purpose) if purpose_words else event.purpose.replace("_", " ")
        text += f" — {why}"
    return text + "."


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(hex=value) if value else None
    except ValueError:
        return None


def _titles(
    session: Session, services: VaultServices, vault: Vault, events: Sequence[AuditEvent]
) -> dict[tuple[str, str], str]:
    """(object_type, object_id) -> decrypted title, for the items an owner's trail names."""
    ids: dict[str, list[uuid.UUID]] = {t: [] for t in _TITLED}
    for e in events:
        found = _uuid_or_none(e.object_id) if e.object_type in _TITLED else None
        if found is not None and e.object_type is not None:
            ids[e.object_type].append(found)
    via = repo.record_ids_of_notes(session, vault.id, ids["view_note"])
    via |= repo.record_ids_of_corrections(session, vault.id, ids["correction_request"])
    scope = VaultScope.owner(vault.id)
    ring = services.keyring
    record_titles = {
        r.id: ring.open_text(session, _record_ctx(r, "title"), r.title_sealed)
        for r in repo.records_by_ids(session, scope, [*ids["agency_record"], *via.values()])
    }
    entry_titles = {
        e.id: ring.open_text(session, _entry_ctx(e, "title"), e.title_sealed)
        for e in repo.entries_by_ids(session, scope, ids["story_entry"])
    }
    out: dict[tuple[str, str], str] = {}
    for kind, found_ids in ids.items():
        for found in found_ids:
            if kind == "story_entry":
                title = entry_titles.get(found)
            else:
                title = record_titles.get(via.get(found, found))
            if title is not None:
                out[(kind, found.hex)] = title
    return out


class _Logged(Protocol):
    @property
    def occurred_at(self) -> datetime: ...


Entry = TypeVar("Entry", bound=_Logged)
# What makes two entries record the same thing (``runs_of_the_same``); ``actor_id`` too,
# where the entry has it (the public form, which the advocate's page reads, does not).
_SAME_THING = operator.attrgetter(
    "actor_type",
    "actor_label",
    "agency",
    "action",
    "object_type",
    "object_id",
    "grant_id",
    "purpose",
)


def runs_of_the_same(events: Sequence[Entry], tz: tzinfo) -> list[list[Entry]]:
    """Entries next to each other that record the same thing (one person, one action, on
    one item, under one grant and purpose, on one day), as one line each. An agency's
    system that reads a record every few seconds, or keeps trying after sharing stopped,
    would otherwise bury every other line of the page under copies of one. Every entry
    is still counted in its line, and the JSON API lists each one."""

    def same_thing(e: Entry) -> tuple[Any, ...]:
        day = e.occurred_at.astimezone(tz).date()
        return (day, getattr(e, "actor_id", None), *_SAME_THING(e))

    return [list(run) for _key, run in itertools.groupby(events, key=same_thing)]


def audit_view(
    session: Session,
    services: VaultServices,
    actor: Actor,
    vault: Vault,
    *,
    who: str | None,
    before: int | None,
    limit: int,
    tz: tzinfo,
    purpose_words: Callable[[str], str] | None = None,
) -> TrailView:
    """The trail for the "Who has looked" page: newest first, grouped by day in ``tz``,
    optionally only one person's entries. Titles are shown to the owner only."""
    _check_paging(before, limit)
    _log_read_unless_owner(session, services, actor, vault.id, "audit:read", "vault", vault.id)
    chain = vault.id.hex
    people: dict[str, tuple[str, str]] = {}  # key -> (name, actor_type)
    actors: dict[str, tuple[str, str]] = {}  # key -> (actor_type, actor_id)
    for actor_type, actor_id, label, agency in repo.audit_actors(session, chain):
        key = trail_key(actor_type, actor_id)
        people[key] = (trail_who(actor_type, label, agency), actor_type)
        actors[key] = (actor_type, actor_id)
    if who is not None and who not in actors:
        raise InvalidInput("Please pick someone from the list.")
    if who is None:
        events = repo.audit_page(session, chain, before, limit + 1)
    else:
        events = repo.audit_page_by_actor(session, chain, *actors[who], before, limit + 1)
    more = len(events) > limit
    events = events[:limit]
    titles = _titles(session, services, vault, events) if _is_owner(actor, vault) else {}
    days: list[TrailDay] = []
    for run in runs_of_the_same(events, tz):
        last, first = run[0], run[-1]  # newest first
        day = last.occurred_at.astimezone(tz).date()
        if not days or days[-1].day != day:
            days.append(TrailDay(day=day, lines=[]))
        title = titles.get((last.object_type or "", last.object_id or ""))
        days[-1].lines.append(
            TrailLine(
                seq=last.seq,
                occurred_at=last.occurred_at,
                who_key=trail_key(last.actor_type, last.actor_id),
                text=describe_for_owner(
                    last, title, tz, purpose_words, times=len(run), first_at=first.occurred_at
                ),
            )
        )
    ordered = sorted(people.items(), key=lambda kv: (kv[1][1] != "young_person", kv[1][0]))
    return TrailView(
        days=days,
        people=[TrailPerson(key=k, name=name) for k, (name, _t) in ordered],
        who=who,
        next_before=events[-1].seq if more and events else None,
    )


# -- erasure ------------
def erase(
    session: Session, services: VaultServices, actor: Actor, person: YoungPerson
) -> uuid.UUID:
    """Delete the account and crypto-shred the vault (UK GDPR Art. 17).

    Content rows go, the wrapped data key goes, and the key provider destroys the
    vault's secret, so even a database backup from before today cannot be decrypted.
    The audit log stays (it names no content, and no longer links to a person) with a
    last entry saying the vault was erased. Key destruction comes last, so a failure
    before it leaves everything as it was; if the commit fails after it, the vault is
    already unreadable and erasing again finishes the job.
    """
    vault = vault_of(session, person)
    repo.delete_vault_content(session, vault.id)
    vault.erased_at = utcnow()
    vault.young_person_id = None
    session.add(vault)
    session.flush()
    session.delete(person)
    session.flush()
    _log(session, services, vault.id, actor, "vault:erased", "vault", vault.id)
    services.keyring.destroy_vault_keys(session, vault.id)
    session.flush()
    return vault.id


# -- corrections: the agency's answer, statements and version history ------------
# UK GDPR Article 16 (right to rectification) and the ICO's guidance on it: the agency
# that wrote a record answers a request; accepting makes a new version and keeps the old
# one; declining needs a reason the young person is told; either way the young person may
# add a statement (Art. 16's "supplementary statement"), which goes wherever the record
# goes. Only the writing agency (``AgencyRecord.agency``) ever sees a request.
CORRECTION_STATUSES = ("open", "accepted", "declined")
INBOX_LIMIT = 500


def _decline_ctx(correction: CorrectionRequest) -> FieldContext:
    return FieldContext(
        correction.vault_id, "correction_request", correction.id, "decline_reason", 1
    )


def _statement_ctx(correction: CorrectionRequest) -> FieldContext:
    return FieldContext(correction.vault_id, "correction_request", correction.id, "statement", 1)


def _open_decline_reason(
    session: Session, services: VaultServices, correction: CorrectionRequest
) -> str | None:
    if correction.decline_reason_sealed is None:
        return None
    return services.keyring.open_text(
        session, _decline_ctx(correction), correction.decline_reason_sealed
    )


def _open_statement(
    session: Session, services: VaultServices, correction: CorrectionRequest
) -> str | None:
    if correction.statement_sealed is None:
        return None
    sealed = correction.statement_sealed
    return services.keyring.open_text(session, _statement_ctx(correction), sealed)


def _statement_public(
    session: Session, services: VaultServices, correction: CorrectionRequest
) -> StatementPublic:
    return StatementPublic(
        correction_id=correction.id,
        outcome=correction.status,
        body=_open_statement(session, services, correction) or "",
        added_at=correction.statement_at or correction.created_at,
    )


@dataclass(frozen=True)
class AgencyCorrection:
    """A request as the writing agency sees it, and the vault it is in. The vault id is
    for telling the young person; it is never shown to an agency (agencies know young
    people only by their own pairwise handle)."""

    vault_id: uuid.UUID
    view: AgencyCorrectionView


def corrections_for_agency(
    session: Session, agency: str, status: str | None
) -> list[tuple[uuid.UUID, AgencyCorrectionSummary]]:
    """The writing agency's inbox: metadata only (opening one is a logged read)."""
    if status is not None and status not in CORRECTION_STATUSES:
        raise InvalidInput(f"status must be one of: {', '.join(CORRECTION_STATUSES)}, or all.")
    return [
        (c.vault_id, _summary(c, r))
        for c, r in repo.agency_corrections(session, agency, status, INBOX_LIMIT)
    ]


def _summary(correction: CorrectionRequest, record: AgencyRecord) -> AgencyCorrectionSummary:
    return AgencyCorrectionSummary(
        id=correction.id,
        record_id=record.id,
        status=correction.status,
        created_at=correction.created_at,
        decided_at=correction.decided_at,
        record_category=record.category,
        record_author_name=record.author_name,
        record_occurred_at=record.occurred_at,
        record_version=record.version,
    )


def _agency_correction(
    session: Session, agency: str, correction_id: uuid.UUID, lock: bool = False
) -> tuple[CorrectionRequest, AgencyRecord]:
    found = repo.agency_correction(session, agency, correction_id, lock)
    if found is None:  # another agency's request is answered as if it did not exist
        raise NotFound("We could not find that correction request.")
    return found


def _agency_view(
    session: Session, services: VaultServices, correction: CorrectionRequest, record: AgencyRecord
) -> AgencyCorrection:
    # The record as it is now, with every statement (no "my view" notes: those are shared
    # only through a grant).
    shown = _record_public(session, services, record, with_notes=False)
    shown.statements = [
        _statement_public(session, services, c) for c in repo.statement_rows(session, record)
    ]
    view = AgencyCorrectionView(
        id=correction.id,
        status=correction.status,
        created_at=correction.created_at,
        decided_at=correction.decided_at,
        decided_by=correction.decided_by,
        request=services.keyring.open_text(
            session, _correction_ctx(correction), correction.body_sealed
        ),
        record=shown,
        decline_reason=_open_decline_reason(session, services, correction),
        statement=_open_statement(session, services, correction),
        statement_at=correction.statement_at,
    )
    return AgencyCorrection(vault_id=correction.vault_id, view=view)


def correction_for_agency(
    session: Session, services: VaultServices, actor: Actor, agency: str, correction_id: uuid.UUID
) -> AgencyCorrection:
    """Open one request: a read of the young person's words, so it is logged."""
    correction, record = _agency_correction(session, agency, correction_id)
    _log(
        session, services, correction.vault_id, actor, "correction:read", "correction_request",
        correction.id,
    )  # fmt: skip
    return _agency_view(session, services, correction, record)


def _still_open(correction: CorrectionRequest) -> None:
    if correction.status != "open":
        raise Conflict(f"This request was already answered ({correction.status}). Nothing changed.")


def accept_correction(
    session: Session,
    services: VaultServices,
    actor: Actor,
    agency: str,
    correction_id: uuid.UUID,
    decided_by: str,
    data: CorrectionAccept,
) -> AgencyCorrection:
    """Accept: the record gets a new version; the old one is kept, unchanged.

    The current ciphertexts move to ``agency_record_version`` as they are, so they still
    open only with their original context (table ``agency_record``, the record's id and
    *that* version); the new text is sealed under version + 1.
    """
    correction, record = _agency_correction(session, agency, correction_id, lock=True)
    _still_open(correction)
    if data.title is None and data.body is None:
        raise InvalidInput("Give the corrected title, the corrected text, or both.")
    ring = services.keyring
    title_now = ring.open_text(session, _record_ctx(record, "title"), record.title_sealed)
    body_now = ring.open_text(session, _record_ctx(record, "body"), record.body_sealed)
    title = data.title if data.title is not None else title_now
    body = data.body if data.body is not None else body_now
    if (title, body) == (title_now, body_now):
        raise InvalidInput("The corrected record is the same as the record now. Change it first.")
    earlier = repo.record_versions(session, VaultScope.owner(record.vault_id), record.id)
    now = utcnow()
    kept = AgencyRecordVersion(
        record_id=record.id,
        vault_id=record.vault_id,
        version=record.version,
        title_sealed=record.title_sealed,
        body_sealed=record.body_sealed,
        written_at=earlier[0].replaced_at if earlier else record.created_at,
        replaced_at=now,
        correction_id=correction.id,
    )
    session.add(kept)
    record.version += 1
    record.title_sealed = ring.seal_text(session, _record_ctx(record, "title"), title)
    record.body_sealed = ring.seal_text(session, _record_ctx(record, "body"), body)
    correction.status, correction.decided_at = "accepted", now
    correction.decided_by = decided_by[:254]
    session.add_all([record, correction])
    session.flush()
    _log(
        session, services, record.vault_id, actor, "correction:accepted", "correction_request",
        correction.id,
    )  # fmt: skip
    return _agency_view(session, services, correction, record)


def decline_correction(
    session: Session,
    services: VaultServices,
    actor: Actor,
    agency: str,
    correction_id: uuid.UUID,
    decided_by: str,
    data: CorrectionDecline,
) -> AgencyCorrection:
    """Decline, with a reason (sealed: it is about the child). The record stays as it is."""
    correction, record = _agency_correction(session, agency, correction_id, lock=True)
    _still_open(correction)
    correction.decline_reason_sealed = services.keyring.seal_text(
        session, _decline_ctx(correction), data.reason
    )
    correction.status, correction.decided_at = "declined", utcnow()
    correction.decided_by = decided_by[:254]
    session.add(correction)
    session.flush()
    _log(
        session, services, record.vault_id, actor, "correction:declined", "correction_request",
        correction.id,
    )  # fmt: skip
    return _agency_view(session, services, correction, record)


def add_statement(
    session: Session,
    services: VaultServices,
    actor: Actor,
    vault: Vault,
    record_id: uuid.UUID,
    correction_id: uuid.UUID,
    data: StatementCreate,
) -> CorrectionPublic:
    """The young person's statement on an answered request (UK GDPR Art. 16,
    "supplementary statement"). It goes wherever the record goes; writing it again
    replaces it."""
    record = _owned_record(session, actor, vault, record_id)
    correction = repo.correction_of_record(
        session, VaultScope.owner(vault.id), record.id, correction_id
    )
    if correction is None:
        raise NotFound("We could not find that request.")
    if correction.status == "open":
        raise Conflict("You can add your own words once they have answered.")
    action = "statement:changed" if correction.statement_sealed is not None else "statement:added"
    correction.statement_sealed = services.keyring.seal_text(
        session, _statement_ctx(correction), data.body
    )
    correction.statement_at = utcnow()
    session.add(correction)
    session.flush()
    _log(session, services, vault.id, actor, action, "correction_request", correction.id)
    return _correction_public(session, services, correction)


def _version_ctx(old: AgencyRecordVersion, field: str) -> FieldContext:
    """An earlier version opens with the context it was sealed under: the record's table,
    the record's id, and that version's number."""
    return FieldContext(old.vault_id, "agency_record", old.record_id, field, old.version)


def record_history(
    session: Session, services: VaultServices, actor: Actor, vault: Vault, record_id: uuid.UUID
) -> RecordHistory:
    """Every version of a record, newest first, for its owner. Each earlier version opens
    with the context it was sealed under (its own version number)."""
    record = _owned_record(session, actor, vault, record_id)
    ring = services.keyring
    earlier = repo.record_versions(session, VaultScope.owner(vault.id), record.id)
    versions = [
        RecordVersionPublic(
            version=record.version,
            title=ring.open_text(session, _record_ctx(record, "title"), record.title_sealed),
            body=ring.open_text(session, _record_ctx(record, "body"), record.body_sealed),
            written_at=earlier[0].replaced_at if earlier else record.created_at,
            replaced_at=None,
            correction_id=None,
        )
    ]
    for old in earlier:
        versions.append(
            RecordVersionPublic(
                version=old.version,
                title=ring.open_text(session, _version_ctx(old, "title"), old.title_sealed),
                body=ring.open_text(session, _version_ctx(old, "body"), old.body_sealed),
                written_at=old.written_at,
                replaced_at=old.replaced_at,
                correction_id=old.correction_id,
            )
        )
    return RecordHistory(record_id=record.id, agency=record.agency, versions=versions)
