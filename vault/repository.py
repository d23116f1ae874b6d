"""Every query of the vault domain. Nothing outside a repository module writes SQL.

Reads of a young person's data go through :class:`VaultScope`: one query builder that is
scoped either to the owner (everything in their vault) or, later, to a grant (some
categories, shareable story only). Nobody writes an owner filter inline.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, exists, false, insert, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from vault.driver_sql import DriverStatement
from vault.models import (
    AgencyRecord,
    AgencyRecordVersion,
    AuditEvent,
    AuditHead,
    CorrectionRequest,
    StoryEntry,
    StoryPhoto,
    Vault,
    VaultDataKey,
    ViewNote,
    YoungPerson,
)


@dataclass(frozen=True)
class VaultScope:
    """What one reader may see in one vault.

    ``categories`` None means every record category (the owner). ``story`` says whether
    story entries are visible at all, and ``shareable_only`` whether private ones are hidden.
    """

    vault_id: uuid.UUID
    categories: frozenset[str] | None = None
    story: bool = True
    shareable_only: bool = False
    # A grant may name the only records it covers.
    record_ids: frozenset[uuid.UUID] | None = None

    @classmethod
    def owner(cls, vault_id: uuid.UUID) -> VaultScope:
        return cls(vault_id=vault_id)

    def records(self) -> SelectOfScalar[AgencyRecord]:
        query = select(AgencyRecord).where(AgencyRecord.vault_id == self.vault_id)
        if self.categories is not None:
            query = query.where(col(AgencyRecord.category).in_(sorted(self.categories)))
        if self.record_ids is not None:
            query = query.where(col(AgencyRecord.id).in_(sorted(self.record_ids)))
        return query

    def admits_record(self, record: Any) -> bool:
        """Python's form of ``records()``'s filters, for one record fetched by id without
        them (``fetch_record``, ``record_columns``): True if this scope may see it."""
        return (
            record.vault_id == self.vault_id
            and (self.categories is None or record.category in self.categories)
            and (self.record_ids is None or record.id in self.record_ids)
        )

    def record_by_id(
        self, record_id: uuid.UUID
    ) -> tuple[SelectOfScalar[AgencyRecord], dict[str, Any]]:
        """One record within this scope, as a prebuilt statement and its parameters
        (the resource API's hot path; the same filters as ``records()``)."""
        params: dict[str, Any] = {"vault_id": self.vault_id, "record_id": record_id}
        if self.categories is not None:
            params["categories"] = sorted(self.categories)
        if self.record_ids is not None:
            params["record_ids"] = sorted(self.record_ids)
        stmt = _record_by_id(self.categories is not None, self.record_ids is not None)
        return stmt, params

    def entries(self) -> SelectOfScalar[StoryEntry]:
        query = select(StoryEntry).where(StoryEntry.vault_id == self.vault_id)
        if not self.story:
            return query.where(false())
        if self.shareable_only:
            query = query.where(col(StoryEntry.shareable).is_(True))
        return query


@functools.lru_cache(maxsize=4)
def _record_by_id(by_category: bool, by_ids: bool) -> SelectOfScalar[AgencyRecord]:
    query = select(AgencyRecord).where(
        AgencyRecord.vault_id == bindparam("vault_id"), AgencyRecord.id == bindparam("record_id")
    )
    if by_category:
        query = query.where(col(AgencyRecord.category).in_(bindparam("categories", expanding=True)))
    if by_ids:
        query = query.where(col(AgencyRecord.id).in_(bindparam("record_ids", expanding=True)))
    return query


_RECORD = AgencyRecord.__table__  # type: ignore[attr-defined]


def _has_notes_and_statements(prefix: str = "") -> list[Any]:
    """Whether a record has notes or statements, as columns of its own row: most have
    neither, and then note_rows and statement_rows need not run at all.

    Only a hint, so it asks by record id alone (a record's id is its primary key; the
    rows themselves are then read by vault and record). Asked by vault too, SQLite,
    which has no statistics unless ANALYZE has run, takes the vault index and walks
    every note of the vault for a record that has none: 0.3 ms a read at 3,000 notes."""
    notes, corrections = ViewNote.__table__, CorrectionRequest.__table__  # type: ignore[attr-defined]
    has_notes = exists().where(notes.c.record_id == _RECORD.c.id)
    has_statements = exists().where(
        corrections.c.record_id == _RECORD.c.id, corrections.c.statement_sealed.is_not(None)
    )
    return [has_notes.label(f"{prefix}has_notes"), has_statements.label(f"{prefix}has_statements")]


RECORD_PREFIX = "record_"
_RECORD_ROW_FIELDS = [c.key for c in _RECORD.columns] + ["has_notes", "has_statements"]


class RecordRow(NamedTuple):
    """An agency record as a read-only row: the table's columns (checked below), and
    whether it has notes or statements. Reads give it, and ``add_record`` returns one."""

    id: uuid.UUID
    vault_id: uuid.UUID
    agency: str
    author_name: str
    author_role: str
    category: str
    shanarri: list[str]
    title_sealed: bytes
    body_sealed: bytes
    occurred_at: datetime
    created_at: datetime
    version: int
    has_notes: bool
    has_statements: bool


if list(RecordRow._fields) != _RECORD_ROW_FIELDS:  # the model changed: change RecordRow too
    raise RuntimeError(f"RecordRow {RecordRow._fields} does not match {_RECORD_ROW_FIELDS}")


def record_columns() -> list[Any]:
    """An agency record's columns, and its ``has_notes``/``has_statements``, each named
    ``record_…``: for a statement that fetches one record alongside other rows (the
    resource API's token check). ``record_from(row)`` reads them back."""
    return [c.label(RECORD_PREFIX + c.key) for c in _RECORD.columns] + _has_notes_and_statements(
        RECORD_PREFIX
    )


@dataclass(frozen=True)
class FetchedRecord:
    """A record looked up by id with no scope applied yet; ``row`` None if there is none."""

    record_id: uuid.UUID
    row: Any  # a RecordRow, or None

    def in_scope(self, scope: VaultScope) -> Any:
        """The row if ``scope`` may see it, else None: the one rule for every read of
        one record by id (``VaultScope.admits_record``)."""
        return self.row if self.row is not None and scope.admits_record(self.row) else None


def record_from(row: Any, record_id: uuid.UUID) -> FetchedRecord:
    """The record in a row made with ``record_columns()`` (looked up by ``record_id``)."""
    if getattr(row, RECORD_PREFIX + "id") is None:
        return FetchedRecord(record_id, None)
    return FetchedRecord(
        record_id,
        RecordRow._make(getattr(row, RECORD_PREFIX + name) for name in _RECORD_ROW_FIELDS),
    )


# One record by id in one vault, with no grant filter: the caller holds it to its
# VaultScope (admits_record), the one rule for single records, read with the token check
# or here.
_RECORD_BY_ID_ROW = DriverStatement(
    sa_select(_RECORD, *_has_notes_and_statements()).where(
        _RECORD.c.vault_id == bindparam("vault_id"), _RECORD.c.id == bindparam("record_id")
    )
)


# -- people and vaults -----------------------------------------------------------------
def get_young_person_by_username(session: Session, username: str) -> YoungPerson | None:
    return session.exec(select(YoungPerson).where(YoungPerson.username == username)).first()


def get_young_person(session: Session, person_id: uuid.UUID) -> YoungPerson | None:
    return session.get(YoungPerson, person_id)


def get_vault_of(session: Session, person_id: uuid.UUID) -> Vault | None:
    return session.exec(select(Vault).where(Vault.young_person_id == person_id)).first()


# -- data keys -------------------------------------------------------------------------
# Data keys are read on the driver: the first read of each vault in a while unwraps its
# key, and on a busy server that happens many times a minute.
_DATA_KEY = VaultDataKey.__table__  # type: ignore[attr-defined]
_CURRENT_DATA_KEY = DriverStatement(
    sa_select(_DATA_KEY)
    .where(_DATA_KEY.c.vault_id == bindparam("vault_id"))
    .order_by(_DATA_KEY.c.version.desc())  # the first row; a vault has one key or few
)
_DATA_KEY_BY_ID = DriverStatement(
    sa_select(_DATA_KEY).where(
        _DATA_KEY.c.vault_id == bindparam("vault_id"), _DATA_KEY.c.id == bindparam("key_id")
    )
)


def current_data_key(session: Session, vault_id: uuid.UUID) -> Any:
    """The vault's newest data key as a read-only row (VaultDataKey's names), or None."""
    return _CURRENT_DATA_KEY.first(session, {"vault_id": vault_id})


def get_data_key(session: Session, vault_id: uuid.UUID, key_id: uuid.UUID) -> Any:
    """One of the vault's data keys as a read-only row, or None."""
    return _DATA_KEY_BY_ID.first(session, {"vault_id": vault_id, "key_id": key_id})


def data_keys_needing_rewrap(
    session: Session, kek_version: int, limit: int
) -> Sequence[VaultDataKey]:
    return session.exec(
        select(VaultDataKey)
        .where(VaultDataKey.kek_version != kek_version)
        .order_by(col(VaultDataKey.id))
        .limit(limit)
        .with_for_update()
    ).all()


def delete_data_keys(session: Session, vault_id: uuid.UUID) -> None:
    session.exec(delete(VaultDataKey).where(col(VaultDataKey.vault_id) == vault_id))


# -- content ------------------------------------------------------------------------------
def list_entries(session: Session, scope: VaultScope) -> Sequence[StoryEntry]:
    return session.exec(
        scope.entries().order_by(col(StoryEntry.created_at).desc(), col(StoryEntry.id))
    ).all()


def get_entry(session: Session, scope: VaultScope, entry_id: uuid.UUID) -> StoryEntry | None:
    return session.exec(scope.entries().where(StoryEntry.id == entry_id)).first()


def get_photo(session: Session, scope: VaultScope, entry_id: uuid.UUID) -> StoryPhoto | None:
    entry = get_entry(session, scope, entry_id)
    return session.get(StoryPhoto, entry.id) if entry else None


def entry_ids_with_photos(session: Session, vault_id: uuid.UUID) -> set[uuid.UUID]:
    return set(
        session.exec(select(StoryPhoto.entry_id).where(StoryPhoto.vault_id == vault_id)).all()
    )


def list_records(
    session: Session, scope: VaultScope, category: str | None = None
) -> Sequence[AgencyRecord]:
    query = scope.records()
    if category is not None:
        query = query.where(AgencyRecord.category == category)
    return session.exec(
        query.order_by(col(AgencyRecord.occurred_at).desc(), col(AgencyRecord.id))
    ).all()


def get_record(session: Session, scope: VaultScope, record_id: uuid.UUID) -> AgencyRecord | None:
    stmt, params = scope.record_by_id(record_id)
    return session.exec(stmt, params=params).first()


_VAULT = Vault.__table__  # type: ignore[attr-defined]
_VAULT_ERASED_AT = DriverStatement(
    sa_select(_VAULT.c.erased_at).where(_VAULT.c.id == bindparam("vault_id"))
)
_RECORD_COLUMNS = (
    "id", "vault_id", "agency", "author_name", "author_role", "category", "shanarri",
    "title_sealed", "body_sealed", "occurred_at", "created_at", "version",
)  # fmt: skip
# The record goes in only if its vault is there and not erased: one statement, which
# says by its RETURNING whether it did.
_INSERT_RECORD_IF_OPEN = DriverStatement(
    insert(_RECORD)
    .from_select(
        list(_RECORD_COLUMNS),
        sa_select(*(bindparam(c, type_=_RECORD.c[c].type) for c in _RECORD_COLUMNS)).where(
            exists().where(
                _VAULT.c.id == bindparam("vault_id", type_=_VAULT.c.id.type),
                _VAULT.c.erased_at.is_(None),
            )
        ),
    )
    .returning(_RECORD.c.id)
)


def vault_is_open(session: Session, vault_id: uuid.UUID) -> bool:
    """The vault exists and has not been erased."""
    row = _VAULT_ERASED_AT.first(session, {"vault_id": vault_id})
    return row is not None and row.erased_at is None


def insert_record_if_open(session: Session, record: Any) -> bool:
    """Write a new record (a ``RecordRow``, or any object with its columns) with one
    driver statement, if its vault exists and is not erased. False: nothing was written."""
    values = {c: getattr(record, c) for c in _RECORD_COLUMNS}
    return _INSERT_RECORD_IF_OPEN.first(session, values) is not None


def fetch_record(session: Session, vault_id: uuid.UUID, record_id: uuid.UUID) -> FetchedRecord:
    """A record of the vault by id, not yet held to any scope (a RecordRow, with
    ``has_notes`` and ``has_statements``)."""
    row = _RECORD_BY_ID_ROW.first(session, {"vault_id": vault_id, "record_id": record_id})
    return FetchedRecord(record_id, None if row is None else RecordRow._make(row))


def record_row(session: Session, scope: VaultScope, record_id: uuid.UUID) -> Any:
    """One record in scope as a read-only row with the model's attribute names, or None.
    The row also says ``has_notes`` and ``has_statements``."""
    return fetch_record(session, scope.vault_id, record_id).in_scope(scope)


_NOTE_TABLE = ViewNote.__table__  # type: ignore[attr-defined]
_NOTE_ROWS = DriverStatement(
    sa_select(_NOTE_TABLE)
    .where(
        _NOTE_TABLE.c.vault_id == bindparam("vault_id"),
        _NOTE_TABLE.c.record_id == bindparam("record_id"),
    )
    .order_by(_NOTE_TABLE.c.created_at)
)


def note_rows(session: Session, record: Any) -> list[Any]:
    """A record's "my view" notes, oldest first, as read-only rows (run on the driver)."""
    return _NOTE_ROWS.all(session, {"vault_id": record.vault_id, "record_id": record.id})


def delete_vault_content(session: Session, vault_id: uuid.UUID) -> None:
    """Erasure: remove every content row (children first, for databases without cascades)."""
    session.exec(delete(AgencyRecordVersion).where(col(AgencyRecordVersion.vault_id) == vault_id))
    session.exec(delete(CorrectionRequest).where(col(CorrectionRequest.vault_id) == vault_id))
    session.exec(delete(ViewNote).where(col(ViewNote.vault_id) == vault_id))
    session.exec(delete(StoryPhoto).where(col(StoryPhoto.vault_id) == vault_id))
    session.exec(delete(StoryEntry).where(col(StoryEntry.vault_id) == vault_id))
    session.exec(delete(AgencyRecord).where(col(AgencyRecord.vault_id) == vault_id))


# -- audit -----------------------------------------------------------------------------------
_HEAD = AuditHead.__table__  # type: ignore[attr-defined]
_EVENT = AuditEvent.__table__  # type: ignore[attr-defined]


# Every read appends: these run on the driver (vault/driver_sql.py).
_LOCK_HEAD = DriverStatement(
    sa_select(_HEAD.c.seq, _HEAD.c.entry_hash)
    .where(_HEAD.c.chain == bindparam("chain"))
    .with_for_update()
)
_EVENT_COLUMNS = (
    "chain", "seq", "occurred_at", "action", "actor_type", "actor_id", "actor_label", "agency",
    "purpose", "grant_id", "object_type", "object_id", "prev_hash", "entry_hash",
)  # fmt: skip
_INSERT_EVENT = DriverStatement(insert(_EVENT).values({c: bindparam(c) for c in _EVENT_COLUMNS}))
_UPDATE_HEAD = DriverStatement(
    update(_HEAD)
    .where(_HEAD.c.chain == bindparam("head_chain"))
    .values(
        seq=bindparam("seq"),
        entry_hash=bindparam("entry_hash"),
        signature=bindparam("signature"),
        signed_at=bindparam("signed_at"),
    )
)


# Compare-and-swap of a head: move it from (prev_seq, prev_hash) to (seq, entry_hash) only
# if it is still there. On PostgreSQL the new event goes in by the same statement (a
# data-modifying WITH): one round trip for the whole append, and no event without its head.
_HEAD_MATCHES = (
    (_HEAD.c.chain == bindparam("chain"))
    & (_HEAD.c.seq == bindparam("prev_seq", type_=_HEAD.c.seq.type))
    & (_HEAD.c.entry_hash == bindparam("prev_hash", type_=_HEAD.c.entry_hash.type))
)
_HEAD_MOVES = (
    update(_HEAD)
    .where(_HEAD_MATCHES)
    .values(
        seq=bindparam("seq", type_=_HEAD.c.seq.type),
        entry_hash=bindparam("entry_hash", type_=_HEAD.c.entry_hash.type),
        signature=bindparam("signature"),
        signed_at=bindparam("signed_at"),
    )
    .returning(_HEAD.c.chain)
)
_ADVANCE_HEAD = DriverStatement(_HEAD_MOVES)
_moved = _HEAD_MOVES.cte("moved_head")
_ADVANCE_HEAD_WITH_EVENT = DriverStatement(
    insert(_EVENT)
    .from_select(
        list(_EVENT_COLUMNS),
        # Typed binds: psycopg's dialect casts each (``%(seq)s::INTEGER``), as PostgreSQL
        # needs for values selected rather than inserted.
        sa_select(*(bindparam(c, type_=_EVENT.c[c].type) for c in _EVENT_COLUMNS)).select_from(
            _moved
        ),
    )
    .returning(_EVENT.c.seq)
)


def advance_audit_head(
    session: Session, prev: tuple[int, str], event: dict[str, Any], signature: str
) -> bool:
    """Append ``event`` (with its ``chain``, ``seq`` and ``entry_hash``) and move the head
    to it, if the head is still at ``prev`` (seq, entry_hash). False, and nothing written,
    if it has moved on: the caller then locks the head and appends the slow way."""
    params = {**event, "prev_seq": prev[0], "prev_hash": prev[1], "signature": signature,
              "signed_at": event["occurred_at"]}  # fmt: skip
    if session.get_bind().dialect.name == "postgresql":
        return _ADVANCE_HEAD_WITH_EVENT.first(session, params) is not None
    # SQLite cannot modify in a WITH; its transactions are serial, so two statements.
    if _ADVANCE_HEAD.first(session, params) is None:
        return False
    _INSERT_EVENT.execute(session, event)
    return True


def lock_audit_head_row(session: Session, chain: str) -> tuple[int, str] | None:
    """(seq, entry_hash) of a chain's head, locked. Prebuilt Core: it is on the hot path."""
    row = _LOCK_HEAD.first(session, {"chain": chain})
    return (row[0], row[1]) if row else None


def insert_audit_head(
    session: Session, chain: str, entry_hash: str, signature: str, at: datetime
) -> None:
    session.execute(
        insert(_HEAD).values(
            chain=chain, seq=0, entry_hash=entry_hash, signature=signature, signed_at=at
        )
    )


def insert_audit_event(session: Session, values: dict[str, object]) -> None:
    _INSERT_EVENT.execute(session, values)


def update_audit_head(
    session: Session, chain: str, seq: int, entry_hash: str, signature: str, at: datetime
) -> None:
    _UPDATE_HEAD.execute(
        session,
        {"head_chain": chain, "seq": seq, "entry_hash": entry_hash, "signature": signature,
         "signed_at": at},
    )  # fmt: skip


def get_audit_head(session: Session, chain: str) -> AuditHead | None:
    return session.get(AuditHead, chain)


def vault_ids(session: Session) -> Sequence[uuid.UUID]:
    """Every vault, erased ones too (a tombstone keeps its chain)."""
    return session.exec(select(Vault.id)).all()


def audit_chains(session: Session) -> Sequence[str]:
    """Every chain with a head or an entry."""
    chains = set(session.exec(select(AuditHead.chain)).all())
    chains |= set(session.exec(select(AuditEvent.chain).distinct()).all())
    return sorted(chains)


def audit_events_in_order(session: Session, chain: str) -> Sequence[AuditEvent]:
    return session.exec(
        select(AuditEvent).where(AuditEvent.chain == chain).order_by(col(AuditEvent.seq))
    ).all()


def audit_page(
    session: Session, chain: str, before_seq: int | None, limit: int
) -> Sequence[AuditEvent]:
    """Newest first, keyset-paged by sequence number (fast at 100M events)."""
    query = select(AuditEvent).where(AuditEvent.chain == chain)
    if before_seq is not None:
        query = query.where(AuditEvent.seq < before_seq)
    return session.exec(query.order_by(col(AuditEvent.seq).desc()).limit(limit)).all()


def audit_page_by_actor(
    session: Session,
    chain: str,
    actor_type: str,
    actor_id: str,
    before_seq: int | None,
    limit: int,
) -> Sequence[AuditEvent]:
    """Like ``audit_page``, but only one actor's entries ("filter by who")."""
    query = select(AuditEvent).where(
        AuditEvent.chain == chain,
        AuditEvent.actor_type == actor_type,
        AuditEvent.actor_id == actor_id,
    )
    if before_seq is not None:
        query = query.where(AuditEvent.seq < before_seq)
    return session.exec(query.order_by(col(AuditEvent.seq).desc()).limit(limit)).all()


def audit_actors(session: Session, chain: str) -> Sequence[tuple[str, str, str, str | None]]:
    """Everyone in one chain: (actor_type, actor_id, actor_label, agency), distinct."""
    rows = session.exec(
        select(
            AuditEvent.actor_type, AuditEvent.actor_id, AuditEvent.actor_label, AuditEvent.agency
        )
        .where(AuditEvent.chain == chain)
        .distinct()
    ).all()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


# -- correction requests -----------------------------------------------------------------
def corrections_for_record(
    session: Session, scope: VaultScope, record_id: uuid.UUID
) -> Sequence[CorrectionRequest]:
    """A record's correction requests, oldest first. Owner scope only (no grant sees them)."""
    return session.exec(
        select(CorrectionRequest)
        .where(
            CorrectionRequest.vault_id == scope.vault_id, CorrectionRequest.record_id == record_id
        )
        .order_by(col(CorrectionRequest.created_at), col(CorrectionRequest.id))
    ).all()


# -- the objects named in an audit trail (the owner's view) ---------------------------------------
def records_by_ids(
    session: Session, scope: VaultScope, ids: Sequence[uuid.UUID]
) -> Sequence[AgencyRecord]:
    if not ids:
        return []
    return session.exec(scope.records().where(col(AgencyRecord.id).in_(sorted(set(ids))))).all()


def entries_by_ids(
    session: Session, scope: VaultScope, ids: Sequence[uuid.UUID]
) -> Sequence[StoryEntry]:
    if not ids:
        return []
    return session.exec(scope.entries().where(col(StoryEntry.id).in_(sorted(set(ids))))).all()


def record_ids_of_notes(
    session: Session, vault_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    """note id -> record id, for notes still in this vault."""
    if not ids:
        return {}
    rows = session.exec(
        select(ViewNote.id, ViewNote.record_id).where(
            ViewNote.vault_id == vault_id, col(ViewNote.id).in_(sorted(set(ids)))
        )
    ).all()
    return {r[0]: r[1] for r in rows}


def record_ids_of_corrections(
    session: Session, vault_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    """correction request id -> record id, for requests still in this vault."""
    if not ids:
        return {}
    rows = session.exec(
        select(CorrectionRequest.id, CorrectionRequest.record_id).where(
            CorrectionRequest.vault_id == vault_id,
            col(CorrectionRequest.id).in_(sorted(set(ids))),
        )
    ).all()
    return {r[0]: r[1] for r in rows}


# -- corrections: statements, versions, and the writing agency's inbox ---------------------------
_CORRECTION = CorrectionRequest.__table__  # type: ignore[attr-defined]
_STATEMENT_ROWS = DriverStatement(
    sa_select(_CORRECTION)
    .where(
        _CORRECTION.c.vault_id == bindparam("vault_id"),
        _CORRECTION.c.record_id == bindparam("record_id"),
        _CORRECTION.c.statement_sealed.is_not(None),
    )
    .order_by(_CORRECTION.c.statement_at, _CORRECTION.c.id)
)


def statement_rows(session: Session, record: Any) -> list[Any]:
    """The corrections of a record that carry a statement (they go wherever it goes), as
    read-only rows run on the driver."""
    return _STATEMENT_ROWS.all(session, {"vault_id": record.vault_id, "record_id": record.id})


def correction_of_record(
    session: Session, scope: VaultScope, record_id: uuid.UUID, correction_id: uuid.UUID
) -> CorrectionRequest | None:
    return session.exec(
        select(CorrectionRequest)
        .where(
            CorrectionRequest.vault_id == scope.vault_id,
            CorrectionRequest.record_id == record_id,
            CorrectionRequest.id == correction_id,
        )
        .with_for_update()
    ).first()


def record_versions(
    session: Session, scope: VaultScope, record_id: uuid.UUID
) -> Sequence[AgencyRecordVersion]:
    """Earlier versions of a record, newest first."""
    return session.exec(
        select(AgencyRecordVersion)
        .where(
            AgencyRecordVersion.vault_id == scope.vault_id,
            AgencyRecordVersion.record_id == record_id,
        )
        .order_by(col(AgencyRecordVersion.version).desc())
    ).all()


def agency_corrections(
    session: Session, agency: str, status: str | None, limit: int
) -> Sequence[tuple[CorrectionRequest, AgencyRecord]]:
    """Correction requests about records this agency wrote, oldest first. The agency is
    the record's writer (``AgencyRecord.agency``); nobody else's requests are here."""
    query = (
        select(CorrectionRequest, AgencyRecord)
        .join(AgencyRecord, col(AgencyRecord.id) == col(CorrectionRequest.record_id))
        .where(AgencyRecord.agency == agency)
    )
    if status is not None:
        query = query.where(CorrectionRequest.status == status)
    rows = session.exec(
        query.order_by(col(CorrectionRequest.created_at), col(CorrectionRequest.id)).limit(limit)
    ).all()
    return [(r[0], r[1]) for r in rows]


def agency_correction(
    session: Session, agency: str, correction_id: uuid.UUID, lock: bool = False
) -> tuple[CorrectionRequest, AgencyRecord] | None:
    """One request about a record this agency wrote, or None (anyone else's is unknown).
    ``lock``: hold both rows until commit, so two decisions cannot both land."""
    query = (
        select(CorrectionRequest, AgencyRecord)
        .join(AgencyRecord, col(AgencyRecord.id) == col(CorrectionRequest.record_id))
        .where(CorrectionRequest.id == correction_id, AgencyRecord.agency == agency)
    )
    if lock:
        query = query.with_for_update()
    row = session.exec(query).first()
    return (row[0], row[1]) if row else None
