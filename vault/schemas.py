"""Public shapes of vault data (SQLModel families: Create, Update, Public).

Ciphertext never appears here; these carry decrypted text to the owner only.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from typing import Any

from pydantic import field_validator
from sqlmodel import Field, SQLModel

TITLE_MAX = 200
# The largest audit cursor (``?before=``). ``audit_event.seq`` is an INTEGER column: 32
# bits on PostgreSQL, which refuses a larger parameter (SQLite cannot bind one past 64
# bits). No chain's sequence number gets near it, so a larger cursor is bad input.
AUDIT_CURSOR_MAX = 2**31 - 1
BODY_MAX = 20_000


def is_number(text: str) -> bool:
    """Whether ``text`` is a whole number written in the digits 0-9 only. ``str.isdigit``
    alone also says yes to "²" (which ``int()`` refuses) and to other scripts' digits
    (which ``secrets.compare_digest`` refuses); numbers in forms, headers and RFC 6749
    parameters are ASCII."""
    return text.isascii() and text.isdigit()


def parse_json(raw: str | bytes) -> Any:
    """``json.loads`` for text from outside (forms, assertions, files handed to the CLI).
    Python's decoder recurses once per nested array or object, so a few thousand "["
    raise RecursionError, which is not a ValueError: every caller's ``except
    JSONDecodeError`` would miss it and the request would end as a server error. Here it
    is a ``JSONDecodeError`` like any other bad JSON."""
    try:
        return json.loads(raw)
    except RecursionError:
        text = raw if isinstance(raw, str) else ""
        raise json.JSONDecodeError("nested too deeply", text, 0) from None


def _clean(text: str) -> str:
    """Refuse control characters (except newlines and tabs) rather than store them."""
    if any(ord(ch) < 32 and ch not in "\n\r\t" for ch in text):
        raise ValueError("must not contain control characters")
    return text


class EntryBase(SQLModel):
    title: str = Field(min_length=1, max_length=TITLE_MAX)
    body: str = Field(default="", max_length=BODY_MAX)
    shareable: bool = False

    @field_validator("title", "body")
    @classmethod
    def _no_control_chars(cls, value: str) -> str:
        return _clean(value)


class EntryCreate(EntryBase):
    """What the young person sends to write a new entry."""


class EntryUpdate(SQLModel):
    title: str | None = Field(default=None, min_length=1, max_length=TITLE_MAX)
    body: str | None = Field(default=None, max_length=BODY_MAX)
    shareable: bool | None = None

    @field_validator("title", "body")
    @classmethod
    def _no_control_chars(cls, value: str | None) -> str | None:
        return None if value is None else _clean(value)


class EntryPublic(EntryBase):
    id: uuid.UUID
    created_at: datetime
    updated_at: datetime
    version: int
    has_photo: bool


class NoteCreate(SQLModel):
    body: str = Field(min_length=1, max_length=BODY_MAX)

    @field_validator("body")
    @classmethod
    def _no_control_chars(cls, value: str) -> str:
        return _clean(value)


class NotePublic(SQLModel):
    id: uuid.UUID
    record_id: uuid.UUID
    body: str
    created_at: datetime


class RecordCreate(SQLModel):
    agency: str = Field(min_length=1, max_length=200)
    author_name: str = Field(min_length=1, max_length=200)
    author_role: str = Field(min_length=1, max_length=200)
    category: str
    shanarri: list[str] = Field(default_factory=list)
    title: str = Field(min_length=1, max_length=TITLE_MAX)
    body: str = Field(min_length=1, max_length=BODY_MAX)
    occurred_at: datetime | None = None


class StatementPublic(SQLModel):
    """A young person's statement about a record, after the agency answered their request
    for a correction. It travels with the record whenever the record is shared (UK GDPR
    Article 16, "supplementary statement"; ICO guidance on the right to rectification)."""

    correction_id: uuid.UUID
    outcome: str  # accepted | declined: what the agency said to the request
    body: str
    added_at: datetime


class RecordPublic(SQLModel):
    id: uuid.UUID
    agency: str
    author_name: str
    author_role: str
    category: str
    shanarri: list[str]
    title: str
    body: str
    occurred_at: datetime
    created_at: datetime
    version: int
    notes: list[NotePublic] = Field(default_factory=list)
    # The young person's statements: shown wherever the record is shown.
    statements: list[StatementPublic] = Field(default_factory=list)


class AuditEventPublic(SQLModel):
    """Metadata only: who did what to which item, when, and under which grant."""

    seq: int
    occurred_at: datetime
    action: str
    actor_type: str
    actor_label: str
    agency: str | None
    purpose: str | None
    grant_id: str | None
    object_type: str | None
    object_id: str | None
    description: str


class AuditPage(SQLModel):
    events: list[AuditEventPublic]
    # Pass as ?before= to get the next (older) page; None when there is no more.
    next_before: int | None


class CorrectionCreate(SQLModel):
    """A young person's request to correct a record, in their own words (UK GDPR Art. 16)."""

    body: str = Field(min_length=1, max_length=BODY_MAX)

    @field_validator("body")
    @classmethod
    def _no_control_chars(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return _clean(value)


class CorrectionPublic(SQLModel):
    id: uuid.UUID
    record_id: uuid.UUID
    body: str
    status: str  # open | accepted | declined
    created_at: datetime
    decided_at: datetime | None
    # The agency's reason, when it said no; and the young person's own statement.
    decline_reason: str | None = None
    statement: str | None = None
    statement_at: datetime | None = None


class OwnerRecordView(SQLModel):
    """A record as its owner sees it: with their views and their correction requests."""

    record: RecordPublic
    corrections: list[CorrectionPublic]


class TrailPerson(SQLModel):
    """Someone in a vault's audit trail, for the "filter by who" list. ``key`` is opaque
    (a hash of actor type and id), so the page never shows a worker's email address."""

    key: str
    name: str


class TrailLine(SQLModel):
    seq: int
    occurred_at: datetime
    who_key: str
    text: str


class TrailDay(SQLModel):
    day: date
    lines: list[TrailLine]


class TrailView(SQLModel):
    """The owner's "Who has looked" page: newest first, grouped by local day."""

    days: list[TrailDay]
    people: list[TrailPerson]
    who: str | None
    next_before: int | None


# -- corrections: the agency's side, statements and version history ------------------------------
def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return _clean(value)


class StatementCreate(SQLModel):
    """The young person's own words to go with a record (UK GDPR Art. 16)."""

    body: str = Field(min_length=1, max_length=BODY_MAX)

    @field_validator("body")
    @classmethod
    def _no_control_chars(cls, value: str) -> str:
        return _not_blank(value)


class CorrectionAccept(SQLModel):
    """The corrected record: a new title, a new text, or both. What is left out stays."""

    title: str | None = Field(default=None, min_length=1, max_length=TITLE_MAX)
    body: str | None = Field(default=None, min_length=1, max_length=BODY_MAX)

    @field_validator("title", "body")
    @classmethod
    def _no_control_chars(cls, value: str | None) -> str | None:
        return None if value is None else _not_blank(value)


DECLINE_REASON_MAX = 5_000


class CorrectionDecline(SQLModel):
    """Why the agency will not change the record. Required: the young person is told it
    (ICO guidance: explain the decision and the right to complain)."""

    reason: str = Field(min_length=1, max_length=DECLINE_REASON_MAX)

    @field_validator("reason")
    @classmethod
    def _no_control_chars(cls, value: str) -> str:
        return _not_blank(value)


class RecordVersionPublic(SQLModel):
    """One version of a record. ``replaced_at`` is None for the version in use now."""

    version: int
    title: str
    body: str
    written_at: datetime
    replaced_at: datetime | None
    # The accepted correction that replaced this version.
    correction_id: uuid.UUID | None


class RecordHistory(SQLModel):
    """A record's versions, newest first (the first is the record as it is now)."""

    record_id: uuid.UUID
    agency: str
    versions: list[RecordVersionPublic]


class AgencyCorrectionSummary(SQLModel):
    """One correction request in the inbox of the agency that wrote the record. No
    content: opening one (``AgencyCorrectionView``) is a logged read."""

    id: uuid.UUID
    record_id: uuid.UUID
    status: str
    created_at: datetime
    decided_at: datetime | None
    record_category: str
    record_author_name: str
    record_occurred_at: datetime
    record_version: int
    # The agency's pairwise handle for the young person, when it has one.
    reference: str | None = None


class AgencyCorrectionView(SQLModel):
    """One correction request, opened by the agency that wrote the record: the record as
    it is now, the young person's words, and (once answered) the decision and statement."""

    id: uuid.UUID
    status: str
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    request: str
    record: RecordPublic
    decline_reason: str | None = None
    statement: str | None = None
    statement_at: datetime | None = None
    reference: str | None = None
