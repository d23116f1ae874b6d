"""The agencies' resource API (RFC 6750 bearer tokens) and the practitioner pages:
"may this actor do this to this record now?" answered on every call.

There is one policy path with two doors. An agency's system presents a bearer token
(``authorize``): one query re-checks the token (active, an access token, this client's)
and the grant behind it (not revoked, not expired), then that the vault handle is this
agency's name for the grant's young person. A practitioner on Storykeep's own pages
names a grant made for them (``authorize_practitioner``). Both then go through
``grant_access``, which checks the grant is still active, builds the grant's
``VaultScope`` and the actor, and the same ``list_records``/``get_record``/
``write_record`` below call the vault service, which logs every read. So a revocation, by
anyone, bites on the very next call, whichever door. Records outside the grant are
answered as if they did not exist.

Refusals are authorization decisions too (SECURITY.md, "Audit"), so they are logged in the
young person's audit log, and the entry stays though the call fails (``keeps_changes``):
a token whose grant was revoked or ran out (or, on the pages, opening such a grant), this
agency's handle for another young person (logged in that person's log), a record outside
the grant, and an action the grant does not include. Not logged: a token nobody issued
(there is no one to log it for), and an access token past its own ten minutes while its
grant lives, which the agency's system routinely refreshes (logging it would tell a young
person of a "refusal" that is not one). So the young person and their advocate can see
that stopping sharing worked.

Every read tells the young person too, if they chose to hear "straight away"
(grants/notify/preferences.py): ``Notifier.looked`` queues one message per grant per
hour at most, in the read's own transaction. To keep the busiest call lean, that check
runs only when the grant's ``last_used_at`` is not yet in this hour (it is written once a
minute at most), so a grant read all hour long costs one or two checks, not one a read.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel import Field, Session, SQLModel

from grants import repository as repo
from grants import service as grants_service
from grants.config import GrantsConfig
from grants.models import Grant
from grants.oauth.errors import InvalidTokenError
from grants.oauth.tokens import hash_token
from grants.schemas import PractitionerGrantView
from grants.service import practitioner_actor
from vault import audit
from vault import repository as vault_repo
from vault import service as vault_service
from vault.actors import Actor
from vault.db_types import utcnow
from vault.errors import InvalidInput, NotFound, PermissionDenied, StorykeepError
from vault.keys import KeyProvider
from vault.repository import VaultScope
from vault.schemas import BODY_MAX, TITLE_MAX, EntryPublic, RecordCreate, RecordPublic
from vault.vocabulary import RECORD_CATEGORIES

if TYPE_CHECKING:
    from grants.lifecycle import Notifier

LAST_USED_GRANULARITY = timedelta(minutes=1)
REFUSED = "access:refused"  # vault/service.py words it for the young person and advocate


class InsufficientGrant(PermissionDenied):
    """The grant does not include this action (e.g. a write without ``write``); RFC 6750
    calls this insufficient_scope."""

    message = "The grant does not allow this."


class GrantEnded(PermissionDenied):
    """The grant was revoked or ran out: nothing from it can be shown any more."""

    message = (
        "This sharing has stopped. The young person ended it, or the time they agreed to "
        "ran out. Nothing from it can be shown now."
    )


class AgencyRecordWrite(SQLModel):
    """What an agency sends to add a record: content and metadata. Who wrote it (agency,
    practitioner, role) is taken from the grant, never from here."""

    category: str
    title: str = Field(min_length=1, max_length=TITLE_MAX)
    body: str = Field(min_length=1, max_length=BODY_MAX)
    shanarri: list[str] = Field(default_factory=list, max_length=8)
    occurred_at: datetime | None = None

    def to_create(self) -> RecordCreate:
        return RecordCreate(
            agency="-", author_name="-", author_role="-", category=self.category,
            shanarri=self.shanarri, title=self.title, body=self.body,
            occurred_at=self.occurred_at,
        )  # fmt: skip


@dataclass(frozen=True)
class GrantView:
    """The parts of a grant a resource call needs, read without ORM objects."""

    id: uuid.UUID
    vault_id: uuid.UUID
    client_id: str
    categories: list[str]
    actions: list[str]
    record_ids: list[str] | None
    purpose: str
    practitioner: dict[str, Any]
    expires_at: datetime
    revoked_at: datetime | None

    def is_active(self, now: datetime) -> bool:  # the same rule as Grant.is_active
        return self.revoked_at is None and now < self.expires_at

    @classmethod
    def of(cls, grant: Grant) -> GrantView:
        return cls(
            id=grant.id, vault_id=grant.vault_id, client_id=grant.client_id,
            categories=grant.categories, actions=grant.actions, record_ids=grant.record_ids,
            purpose=grant.purpose, practitioner=grant.practitioner,
            expires_at=grant.expires_at, revoked_at=grant.revoked_at,
        )  # fmt: skip


@dataclass(frozen=True)
class AgencyAccess:
    grant: GrantView
    actor: Actor
    scope: VaultScope
    # Set when a read now may be the first this hour: then the young person may be told.
    notifier: Notifier | None = None
    # The record asked for, read with the token check (``authorize(record_id=…)``) and not
    # yet held to the scope: get_record does that.
    fetched: vault_repo.FetchedRecord | None = None
    # For 'last used', written once the call has done what it asked (``used``).
    last_used_at: datetime | None = None
    now: datetime | None = None

    @property
    def can_write(self) -> bool:
        return "write" in self.grant.actions


def _grant_actor(grant: GrantView, agency_name: str) -> Actor:
    """The practitioner a grant was made for, acting under it (as every entry names them)."""
    return practitioner_actor(grant.practitioner, agency_name, grant.purpose, grant.id.hex)


def _refused(
    session: Session, keys: KeyProvider, error: StorykeepError, vault_id: uuid.UUID,
    actor: Actor, record_id: uuid.UUID | None = None,
) -> StorykeepError:  # fmt: skip
    """Log a refusal in ``vault_id``'s audit log, and mark ``error`` so that entry is kept
    when the call fails with it (app/group_commit.py and app/db.py honour
    ``keeps_changes``). Callers refuse before writing anything else, so nothing else of
    theirs is kept."""
    audit.append(
        session, keys, vault_id.hex, actor, REFUSED,
        object_type="agency_record" if record_id else None,
        object_id=record_id.hex if record_id else None,
    )  # fmt: skip
    error.keeps_changes = True  # type: ignore[attr-defined]
    return error


def authorize(
    session: Session, config: GrantsConfig, keys: KeyProvider, authorization: str | None,
    handle: str, notifier: Notifier | None = None, record_id: uuid.UUID | None = None,
) -> AgencyAccess:  # fmt: skip
    """Check the bearer token and its grant for this handle. ``record_id``: the call reads
    that record, so fetch it in the same statement (get_record then applies the scope).
    Refusals that are decisions about a young person are logged (see the module's
    docstring)."""
    if not authorization or not authorization.startswith("Bearer ") or len(authorization) > 300:
        raise InvalidTokenError(description="a Bearer access token is required")
    token_hash = hash_token(config, authorization[7:].strip())
    if record_id is None:
        row = repo.bearer_row(session, token_hash, handle)
    else:
        row = repo.bearer_row_and_record(session, token_hash, handle, record_id)
    if row is None:
        raise InvalidTokenError(description="the access token is not valid")
    now = utcnow()
    grant = GrantView(
        id=row.id, vault_id=row.vault_id, client_id=row.client_id, categories=row.categories,
        actions=row.actions, record_ids=row.record_ids, purpose=row.purpose,
        practitioner=row.practitioner, expires_at=row.expires_at, revoked_at=row.revoked_at,
    )  # fmt: skip
    token_active = (
        row.token_revoked_at is None and row.token_rotated_at is None and now < row.token_expires_at
    )
    ended = InvalidTokenError(description="the access token is no longer active")
    if row.kind != "access" or row.token_client_id != grant.client_id:
        raise ended
    if not grant.is_active(now):  # the young person stopped sharing, or its time ran out
        actor = _grant_actor(grant, row.agency_name)
        raise _refused(session, keys, ended, grant.vault_id, actor, record_id)
    if not token_active:
        raise ended
    if row.handle_vault_id != grant.vault_id:  # another agency's handle, or another person
        missing = NotFound("No such vault.")
        if row.handle_vault_id is None:
            raise missing
        # This agency's handle for another young person: a refusal about them, in their
        # log. No grant of theirs is involved, so none is named (not this one, either).
        actor = practitioner_actor(grant.practitioner, row.agency_name, grant.purpose, None)
        raise _refused(session, keys, missing, row.handle_vault_id, actor, record_id)
    access = grant_access(grant, row.agency_name, row.last_used_at, now, notifier)
    if record_id is None:
        return access
    return replace(access, fetched=vault_repo.record_from(row, record_id))


@dataclass(frozen=True)
class PageReader:
    """Who is using Storykeep's practitioner pages: their account and their agency."""

    practitioner_id: uuid.UUID
    agency_id: uuid.UUID
    agency_name: str


def _practitioner_door(
    session: Session, services: vault_service.VaultServices, reader: PageReader,
    grant_id: uuid.UUID, notifier: Notifier | None = None, record_id: uuid.UUID | None = None,
) -> tuple[Grant, AgencyAccess]:  # fmt: skip
    grant = repo.get_grant(session, grant_id)
    if (
        grant is None
        or grant.practitioner_id != reader.practitioner_id
        or grant.agency_id != reader.agency_id
    ):
        raise NotFound("We could not find that sharing.")
    view = GrantView.of(grant)
    try:
        access = grant_access(view, reader.agency_name, grant.last_used_at, notifier=notifier)
    except GrantEnded as ended:
        # The decision the bearer door logs for a token of a revoked or run-out grant, so
        # the young person sees that stopping worked on the pages too.
        keys, actor = services.keyring.provider, _grant_actor(view, reader.agency_name)
        raise _refused(session, keys, ended, view.vault_id, actor, record_id) from None
    return grant, access


def authorize_practitioner(
    session: Session, services: vault_service.VaultServices, reader: PageReader,
    grant_id: uuid.UUID,
) -> AgencyAccess:  # fmt: skip
    """The practitioner pages' door: only a grant made for this practitioner, at their
    agency. Anyone else's grant is answered as if it did not exist."""
    return _practitioner_door(session, services, reader, grant_id)[1]


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def grant_access(
    grant: GrantView, agency_name: str, last_used_at: datetime | None,
    now: datetime | None = None, notifier: Notifier | None = None,
) -> AgencyAccess:  # fmt: skip
    """Shared by both doors: the grant must be active now; then its scope and actor."""
    now = now or utcnow()
    if not grant.is_active(now):
        raise GrantEnded()
    categories = frozenset(grant.categories)
    scope = VaultScope(
        vault_id=grant.vault_id,
        categories=categories & frozenset(RECORD_CATEGORIES),
        story="my_story" in categories,
        shareable_only=True,
        record_ids=(
            frozenset(uuid.UUID(hex=i) for i in grant.record_ids) if grant.record_ids else None
        ),
    )
    actor = _grant_actor(grant, agency_name)
    first_this_hour = last_used_at is None or _hour(last_used_at) != _hour(now)
    return AgencyAccess(
        grant=grant, actor=actor, scope=scope, notifier=notifier if first_this_hour else None,
        last_used_at=last_used_at, now=now,
    )  # fmt: skip


def used(session: Session, access: AgencyAccess) -> None:
    """'Last used', to the minute (one write a minute per grant, not one per read). Each
    door calls it once per call, after the call has done what it asked: a refused call
    is not a use, and a page that reads records and the story is one use."""
    now = access.now or utcnow()
    if access.last_used_at is None or now - access.last_used_at > LAST_USED_GRANULARITY:
        repo.touch_grant(session, access.grant.id, now)


def _refuse(
    session: Session, services: vault_service.VaultServices, access: AgencyAccess,
    error: StorykeepError, record_id: uuid.UUID | None = None,
) -> StorykeepError:  # fmt: skip
    """A call beyond the grant: logged in the young person's log, under the grant."""
    return _refused(
        session, services.keyring.provider, error, access.grant.vault_id, access.actor, record_id
    )


def _tell_owner(session: Session, access: AgencyAccess, categories: set[str]) -> None:
    """Someone looked at these kinds of thing: tell the young person if they asked to hear
    straight away (names and kinds only, never what was read)."""
    if access.notifier is None or not categories:
        return
    access.notifier.looked(
        session, access.grant.vault_id, access.grant.id, access.actor.agency or "An agency",
        str(access.grant.practitioner.get("name") or "A worker"), sorted(categories), utcnow(),
    )  # fmt: skip


def list_records(
    session: Session, services: vault_service.VaultServices, access: AgencyAccess,
    category: str | None,
) -> list[RecordPublic]:  # fmt: skip
    if category is not None and category not in RECORD_CATEGORIES:
        raise InvalidInput(f"Unknown category {category!r}.")
    if "read" not in access.grant.actions:
        raise _refuse(session, services, access, InsufficientGrant())
    records = vault_service.list_records(session, services, access.actor, access.scope, category)
    _tell_owner(session, access, {r.category for r in records})
    return records


def get_record(
    session: Session, services: vault_service.VaultServices, access: AgencyAccess,
    record_id: uuid.UUID,
) -> RecordPublic:  # fmt: skip
    if "read" not in access.grant.actions:
        raise _refuse(session, services, access, InsufficientGrant(), record_id)
    try:
        record = vault_service.get_record(
            session, services, access.actor, access.scope, record_id, access.fetched
        )
    except NotFound as outside:  # outside the grant (or nowhere): answered as not there
        raise _refuse(session, services, access, outside, record_id) from None
    _tell_owner(session, access, {record.category})
    return record


def list_story(
    session: Session, services: vault_service.VaultServices, access: AgencyAccess
) -> list[EntryPublic]:
    if not access.scope.story or "read" not in access.grant.actions:
        error = InsufficientGrant("The grant does not include the young person's shared story.")
        raise _refuse(session, services, access, error)
    entries = vault_service.list_entries(session, services, access.actor, access.scope)
    _tell_owner(session, access, {"my_story"} if entries else set())
    return entries


def write_record(
    session: Session, services: vault_service.VaultServices, access: AgencyAccess,
    data: RecordCreate,
) -> RecordPublic:  # fmt: skip
    """An agency adds a record. Provenance (agency, practitioner, time) comes from the
    grant, never from the request body."""
    if not access.can_write:
        raise _refuse(
            session, services, access, InsufficientGrant("The grant does not allow adding records.")
        )
    if access.scope.categories is None or data.category not in access.scope.categories:
        error = InsufficientGrant(f"The grant does not cover {data.category!r} records.")
        raise _refuse(session, services, access, error)
    practitioner = access.grant.practitioner
    data = data.model_copy(
        update={
            "agency": access.actor.agency or "",
            "author_name": str(practitioner.get("name", "")),
            "author_role": str(practitioner.get("role", "")),
        }
    )
    record = vault_service.add_record(session, services, access.actor, access.grant.vault_id, data)
    return vault_service.record_public(record, data)


# -- the practitioner pages: the same checks and the same reads as the resource API ---------------
@dataclass(frozen=True)
class PractitionerGrantPage:
    grant: PractitionerGrantView
    records: list[RecordPublic]
    story: list[EntryPublic]


@dataclass(frozen=True)
class PractitionerRecordPage:
    grant: PractitionerGrantView
    record: RecordPublic


def practitioner_grant_page(
    session: Session, services: vault_service.VaultServices, reader: PageReader,
    grant_id: uuid.UUID, notifier: Notifier | None = None,
) -> PractitionerGrantPage:  # fmt: skip
    """What a grant lets this practitioner see now. Every record and entry shown is a
    logged read in the young person's audit log, as through the resource API."""
    grant, access = _practitioner_door(session, services, reader, grant_id, notifier)
    view = grants_service.practitioner_grant_view(session, grant)
    records = (
        list_records(session, services, access, None)
        if view.can_read and view.record_categories
        else []
    )
    story = list_story(session, services, access) if view.can_read and view.story else []
    used(session, access)
    return PractitionerGrantPage(grant=view, records=records, story=story)


def practitioner_record_page(
    session: Session, services: vault_service.VaultServices, reader: PageReader,
    grant_id: uuid.UUID, record_id: uuid.UUID, notifier: Notifier | None = None,
) -> PractitionerRecordPage:  # fmt: skip
    grant, access = _practitioner_door(session, services, reader, grant_id, notifier, record_id)
    record = get_record(session, services, access, record_id)
    used(session, access)
    return PractitionerRecordPage(
        grant=grants_service.practitioner_grant_view(session, grant), record=record
    )


def practitioner_write_record(
    session: Session, services: vault_service.VaultServices, reader: PageReader,
    grant_id: uuid.UUID, body: AgencyRecordWrite,
) -> RecordPublic:  # fmt: skip
    access = authorize_practitioner(session, services, reader, grant_id)
    record = write_record(session, services, access, body.to_create())
    used(session, access)
    return record
