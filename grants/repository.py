"""Every query of the grants domain."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Text, and_, bindparam, case, cast, delete, literal_column, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from app.auth.models import SignInThrottle
from grants.models import (
    AccessRequest,
    Agency,
    AgencyOidc,
    ConnectionCode,
    Grant,
    OAuthClient,
    OAuthToken,
    PairwiseHandle,
    UsedAssertion,
)
from vault import repository as vault_repo
from vault.db_types import utcnow
from vault.driver_sql import DriverStatement
from vault.models import AgencyRecord


# -- agencies and clients -----------------------------------------------------------------
def get_agency(session: Session, agency_id: uuid.UUID) -> Agency | None:
    return session.get(Agency, agency_id)


def get_agency_by_name(session: Session, name: str) -> Agency | None:
    return session.exec(select(Agency).where(Agency.name == name)).first()


def get_agency_oidc(session: Session, agency_id: uuid.UUID) -> AgencyOidc | None:
    return session.get(AgencyOidc, agency_id)


def agencies_with_oidc(session: Session) -> Sequence[Agency]:
    """Agencies whose practitioners can sign in with their own OpenID Connect provider."""
    return session.exec(
        select(Agency)
        .join(AgencyOidc, col(AgencyOidc.agency_id) == col(Agency.id))
        .order_by(col(Agency.name))
    ).all()


_USED = UsedAssertion.__table__  # type: ignore[attr-defined]
_FORGET_EXPIRED = delete(_USED).where(_USED.c.expires_at < bindparam("now"))


_REMEMBER = {
    # INSERT … ON CONFLICT DO NOTHING RETURNING: one statement, no savepoint, and it says
    # for sure whether the row went in (rowcount is not reliable for this on every driver).
    name: DriverStatement(
        dialect_insert(_USED)
        .values(
            client_id=bindparam("client_id"),
            jti=bindparam("jti"),
            expires_at=bindparam("expires_at"),
        )
        .on_conflict_do_nothing()
        .returning(_USED.c.jti)
    )
    for name, dialect_insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}


def remember_assertion(session: Session, client_id: str, jti: str, expires_at: datetime) -> bool:
    """Record a jti; False if it was already there (a replay)."""
    statement = _REMEMBER[session.get_bind().dialect.name]
    values = {"client_id": client_id, "jti": jti, "expires_at": expires_at}
    return statement.first(session, values) is not None


def forget_expired_assertions(session: Session) -> None:
    """Uses the expires_at index, so it touches only the expired rows."""
    session.execute(_FORGET_EXPIRED, {"now": utcnow()})


# -- connection codes and handles ------------------------------------------------------------
def lock_code_by_hash(session: Session, code_hash: str) -> ConnectionCode | None:
    return session.exec(
        select(ConnectionCode).where(ConnectionCode.code_hash == code_hash).with_for_update()
    ).first()


def codes_of_vault(
    session: Session, vault_id: uuid.UUID, now: datetime
) -> Sequence[ConnectionCode]:
    return session.exec(
        select(ConnectionCode)
        .where(
            ConnectionCode.vault_id == vault_id,
            col(ConnectionCode.used_at).is_(None),
            col(ConnectionCode.cancelled_at).is_(None),
            ConnectionCode.expires_at > now,
        )
        .order_by(col(ConnectionCode.created_at).desc())
    ).all()


def get_code(session: Session, vault_id: uuid.UUID, code_id: uuid.UUID) -> ConnectionCode | None:
    return session.exec(
        select(ConnectionCode).where(
            ConnectionCode.vault_id == vault_id, ConnectionCode.id == code_id
        )
    ).first()


def handle_for(
    session: Session, agency_id: uuid.UUID, vault_id: uuid.UUID
) -> PairwiseHandle | None:
    return session.exec(
        select(PairwiseHandle).where(
            PairwiseHandle.agency_id == agency_id, PairwiseHandle.vault_id == vault_id
        )
    ).first()


def get_handle(session: Session, handle: str, agency_id: uuid.UUID) -> PairwiseHandle | None:
    """A handle only resolves for the agency it was made for."""
    return session.exec(
        select(PairwiseHandle).where(
            PairwiseHandle.handle == handle, PairwiseHandle.agency_id == agency_id
        )
    ).first()


# -- requests --------------------------------------------------------------------------------
def lock_request_by_auth_hash(session: Session, auth_req_hash: str) -> AccessRequest | None:
    return session.exec(
        select(AccessRequest).where(AccessRequest.auth_req_hash == auth_req_hash).with_for_update()
    ).first()


def requests_of_vault(session: Session, vault_id: uuid.UUID) -> Sequence[AccessRequest]:
    return session.exec(
        select(AccessRequest)
        .where(AccessRequest.vault_id == vault_id)
        .order_by(col(AccessRequest.created_at).desc())
        .limit(200)
    ).all()


def lock_request(
    session: Session, vault_id: uuid.UUID, request_id: uuid.UUID
) -> AccessRequest | None:
    return session.exec(
        select(AccessRequest)
        .where(AccessRequest.vault_id == vault_id, AccessRequest.id == request_id)
        .with_for_update()
    ).first()


# -- grants and tokens -------------------------------------------------------------------------
def grants_of_vault(session: Session, vault_id: uuid.UUID) -> Sequence[Grant]:
    return session.exec(
        select(Grant).where(Grant.vault_id == vault_id).order_by(col(Grant.created_at).desc())
    ).all()


def lock_grant(session: Session, grant_id: uuid.UUID) -> Grant | None:
    return session.exec(select(Grant).where(Grant.id == grant_id).with_for_update()).first()


def grant_for_request(session: Session, request_id: uuid.UUID) -> Grant | None:
    return session.exec(select(Grant).where(Grant.request_id == request_id)).first()


def get_grant(session: Session, grant_id: uuid.UUID) -> Grant | None:
    return session.get(Grant, grant_id)


# -- a practitioner's own requests and grants (Storykeep's practitioner pages) --------------------
def requests_of_practitioner(
    session: Session, practitioner_id: uuid.UUID, limit: int = 100
) -> Sequence[AccessRequest]:
    return session.exec(
        select(AccessRequest)
        .where(AccessRequest.practitioner_id == practitioner_id)
        .order_by(col(AccessRequest.created_at).desc())
        .limit(limit)
    ).all()


def request_of_practitioner(
    session: Session, practitioner_id: uuid.UUID, request_id: uuid.UUID
) -> AccessRequest | None:
    return session.exec(
        select(AccessRequest).where(
            AccessRequest.id == request_id, AccessRequest.practitioner_id == practitioner_id
        )
    ).first()


def grants_for_requests(
    session: Session, request_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Grant]:
    if not request_ids:
        return {}
    rows = session.exec(select(Grant).where(col(Grant.request_id).in_(list(request_ids)))).all()
    return {g.request_id: g for g in rows}


def grants_of_practitioner(
    session: Session, practitioner_id: uuid.UUID, limit: int = 100
) -> Sequence[Grant]:
    return session.exec(
        select(Grant)
        .where(Grant.practitioner_id == practitioner_id)
        .order_by(col(Grant.created_at).desc())
        .limit(limit)
    ).all()


def handles_for(
    session: Session, agency_id: uuid.UUID, vault_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The agency's pairwise handle for each of these young people."""
    if not vault_ids:
        return {}
    rows = session.exec(
        select(PairwiseHandle).where(
            PairwiseHandle.agency_id == agency_id,
            col(PairwiseHandle.vault_id).in_(sorted(set(vault_ids))),
        )
    ).all()
    return {h.vault_id: h.handle for h in rows}


def lock_token_by_hash(session: Session, token_hash: str) -> OAuthToken | None:
    return session.exec(
        select(OAuthToken).where(OAuthToken.token_hash == token_hash).with_for_update()
    ).first()


def revoke_tokens_of_grant(session: Session, grant_id: uuid.UUID, now: datetime) -> None:
    session.exec(
        update(OAuthToken)
        .where(col(OAuthToken.grant_id) == grant_id, col(OAuthToken.revoked_at).is_(None))
        .values(revoked_at=now)
    )


def revoke_token_family(session: Session, family_id: uuid.UUID, now: datetime) -> None:
    session.exec(
        update(OAuthToken)
        .where(col(OAuthToken.family_id) == family_id, col(OAuthToken.revoked_at).is_(None))
        .values(revoked_at=now)
    )


# -- the resource API's hot path (Core, one statement) ------------------------------------------
_TOKEN = OAuthToken.__table__  # type: ignore[attr-defined]
_GRANT = Grant.__table__  # type: ignore[attr-defined]
_AGENCY = Agency.__table__  # type: ignore[attr-defined]
_HANDLE = PairwiseHandle.__table__  # type: ignore[attr-defined]
_RECORD = AgencyRecord.__table__  # type: ignore[attr-defined]


# Built once, executed with bind parameters: building a statement per call costs more
# than running it.
# Whether the token itself is live, and whose it is (both hot queries read these).
_TOKEN_STATE = (
    _TOKEN.c.kind,
    _TOKEN.c.client_id.label("token_client_id"),
    _TOKEN.c.expires_at.label("token_expires_at"),
    _TOKEN.c.revoked_at.label("token_revoked_at"),
    _TOKEN.c.rotated_at.label("token_rotated_at"),
)
_HANDLE_IS_THE_AGENCYS = _HANDLE.c.agency_id == _GRANT.c.agency_id
_BEARER_COLUMNS = (
    *_TOKEN_STATE,
    _GRANT.c.id,
    _GRANT.c.vault_id,
    _GRANT.c.agency_id,
    _GRANT.c.client_id,
    _GRANT.c.categories,
    _GRANT.c.actions,
    _GRANT.c.record_ids,
    _GRANT.c.purpose,
    _GRANT.c.practitioner,
    _GRANT.c.expires_at,
    _GRANT.c.revoked_at,
    _GRANT.c.last_used_at,
    _AGENCY.c.name.label("agency_name"),
    # The handle's vault only if the handle is this agency's (NULL for another agency's).
    case((_HANDLE_IS_THE_AGENCYS, _HANDLE.c.vault_id), else_=None).label("handle_vault_id"),
)
# The handle is joined on its primary key alone, and whose it is is checked in the select
# list, not in the join: that way no database can find the handle another way. With the
# agency in the join condition PostgreSQL, before its first ANALYZE of the table, chose
# the (agency_id, vault_id) index and walked every handle of the agency (1,000 in the
# benchmark) on every call: 0.1 to 0.4 ms of PostgreSQL a read, growing with the agency's
# young people.
_BEARER_FROM = (
    _TOKEN.join(_GRANT, _GRANT.c.id == _TOKEN.c.grant_id)
    .join(_AGENCY, _AGENCY.c.id == _GRANT.c.agency_id)
    .outerjoin(_HANDLE, _HANDLE.c.handle == bindparam("handle"))
)
_BEARER = DriverStatement(
    sa_select(*_BEARER_COLUMNS)
    .select_from(_BEARER_FROM)
    .where(_TOKEN.c.token_hash == bindparam("token_hash"))
)
# The same, and the record asked for in the handle's vault, with no other filter: the
# caller holds it to the grant's scope (VaultScope.admits_record). One round trip fewer
# on the busiest call, a record read.
_BEARER_AND_RECORD = DriverStatement(
    sa_select(*_BEARER_COLUMNS, *vault_repo.record_columns())
    .select_from(
        _BEARER_FROM.outerjoin(
            _RECORD,
            and_(
                _RECORD.c.id == bindparam("record_id"),
                _RECORD.c.vault_id == _HANDLE.c.vault_id,
                _HANDLE_IS_THE_AGENCYS,
            ),
        )
    )
    .where(_TOKEN.c.token_hash == bindparam("token_hash"))
)
_TOUCH = DriverStatement(
    update(_GRANT).where(_GRANT.c.id == bindparam("grant_id")).values(last_used_at=bindparam("now"))
)


# The presented token, its grant and the agency's handle (RFC 7662 answers from these).
_INTROSPECT_COLUMNS = (
    *_TOKEN_STATE,
    _TOKEN.c.issued_at,
    _GRANT.c.id.label("grant_id"),
    _GRANT.c.actions,
    _GRANT.c.categories,
    _GRANT.c.record_ids,
    _GRANT.c.purpose,
    _GRANT.c.expires_at,
    _GRANT.c.revoked_at,
    _HANDLE.c.handle,
)
_INTROSPECT_FROM = _TOKEN.join(_GRANT, _GRANT.c.id == _TOKEN.c.grant_id).outerjoin(
    _HANDLE,
    and_(_HANDLE.c.agency_id == _GRANT.c.agency_id, _HANDLE.c.vault_id == _GRANT.c.vault_id),
)

# -- an OAuth client's call, in one statement -----------------------------------------------
_CLIENT = OAuthClient.__table__  # type: ignore[attr-defined]
_THROTTLE = SignInThrottle.__table__  # type: ignore[attr-defined]
# An OAuth call has two failure counters (grants/oauth/client_auth): client, address.
_THROTTLE_COUNTERS = tuple(_THROTTLE.alias(f"throttle_{i}") for i in range(2))
_CLIENT_COLUMNS = (
    _CLIENT.c.client_id,
    # As its stored text, not parsed: rfc7523 keeps the parsed key set cached by that text,
    # so a call parses nothing (the drivers would parse JSON on every call).
    cast(_CLIENT.c.jwks, Text).label("jwks"),
    _CLIENT.c.auth_method,
    _CLIENT.c.secret_hash,
    _CLIENT.c.disabled_at,
    _AGENCY.c.id.label("agency_id"),
    _AGENCY.c.name.label("agency_name"),
)


def _client_call_statement(with_token: bool) -> DriverStatement:
    """One row, always: the client and its agency (NULLs if there is no such client), the
    client's and the address's failure counters (NULLs for one that has none), and for
    introspection the presented token's row (NULLs if there is no such token). Everything
    an OAuth call reads before it may trust the caller, in one round trip, not three."""
    one_row = sa_select(literal_column("1").label("one")).subquery("one_row")
    source = one_row.outerjoin(
        _CLIENT.join(_AGENCY, _AGENCY.c.id == _CLIENT.c.agency_id),
        _CLIENT.c.client_id == bindparam("client_id"),
    )
    columns: list[Any] = list(_CLIENT_COLUMNS)
    for i, counter in enumerate(_THROTTLE_COUNTERS):
        source = source.outerjoin(counter, counter.c.key == bindparam(f"throttle_{i}"))
        columns += [
            counter.c.window_started_at.label(f"throttle_{i}_started_at"),
            counter.c.failures.label(f"throttle_{i}_failures"),
        ]
    if with_token:
        source = source.outerjoin(_INTROSPECT_FROM, _TOKEN.c.token_hash == bindparam("token_hash"))
        columns += _INTROSPECT_COLUMNS
    return DriverStatement(sa_select(*columns).select_from(source))


_CLIENT_CALL = _client_call_statement(with_token=False)
_CLIENT_CALL_WITH_TOKEN = _client_call_statement(with_token=True)


def client_call_row(
    session: Session, client_id: str, throttle_keys: Sequence[str], token_hash: str | None = None
) -> Any:
    """What an OAuth call by ``client_id`` needs before it can trust the caller, in one
    statement: the client and its agency, the call's failure counters
    (``throttle_keys``: the client's key, then the address's) and, given ``token_hash``,
    the introspected token (``_INTROSPECT_COLUMNS``). The client's columns are None when
    there is no such client, the token's when there is no such token."""
    client_key, address_key = throttle_keys
    params = {"client_id": client_id, "throttle_0": client_key, "throttle_1": address_key}
    if token_hash is None:
        return _CLIENT_CALL.first(session, params)
    return _CLIENT_CALL_WITH_TOKEN.first(session, {**params, "token_hash": token_hash})


def throttle_counts_of(row: Any, throttle_keys: Sequence[str]) -> dict[str, tuple[datetime, int]]:
    """A ``client_call_row``'s failure counters, keyed as ``throttle_counts`` keys them."""
    counts = {}
    for i, key in enumerate(throttle_keys):
        started = getattr(row, f"throttle_{i}_started_at")
        if started is not None:
            counts[key] = (started, getattr(row, f"throttle_{i}_failures"))
    return counts


def bearer_row(session: Session, token_hash: str, handle: str) -> Any:
    """Token, its grant, the grant's agency and the handle's vault, in one query: every
    resource call runs this, so it is one round trip and no ORM objects."""
    return _BEARER.first(session, {"token_hash": token_hash, "handle": handle})


def bearer_row_and_record(
    session: Session, token_hash: str, handle: str, record_id: uuid.UUID
) -> Any:
    """``bearer_row``, and the record ``record_id`` in the handle's vault, unscoped (its
    columns are read back by ``vault.repository.record_from``)."""
    return _BEARER_AND_RECORD.first(
        session, {"token_hash": token_hash, "handle": handle, "record_id": record_id}
    )


def touch_grant(session: Session, grant_id: uuid.UUID, now: datetime) -> None:
    _TOUCH.execute(session, {"grant_id": grant_id, "now": now})
