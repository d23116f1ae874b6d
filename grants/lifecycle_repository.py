"""Queries for the life of a grant: what has lapsed, ended or is about to."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from grants.models import AccessRequest, Agency, Grant


def lock_lapsed_requests(session: Session, now: datetime, limit: int) -> Sequence[AccessRequest]:
    """Pending requests whose decision time has passed, locked so two runners agree."""
    return session.exec(
        select(AccessRequest)
        .where(AccessRequest.status == "pending", col(AccessRequest.decide_by) <= now)
        .order_by(col(AccessRequest.decide_by))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def requests_deciding_before(
    session: Session, now: datetime, until: datetime, limit: int
) -> Sequence[AccessRequest]:
    return session.exec(
        select(AccessRequest)
        .where(
            AccessRequest.status == "pending",
            col(AccessRequest.decide_by) > now,
            col(AccessRequest.decide_by) <= until,
        )
        .limit(limit)
    ).all()


def lock_ended_unnoted_grants(session: Session, now: datetime, limit: int) -> Sequence[Grant]:
    """Grants that ran out (not revoked) and that the job has not yet logged."""
    return session.exec(
        select(Grant)
        .where(
            col(Grant.revoked_at).is_(None),
            col(Grant.end_noted_at).is_(None),
            col(Grant.expires_at) <= now,
        )
        .order_by(col(Grant.expires_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def grants_ending_between(
    session: Session, start: datetime, end: datetime, limit: int
) -> Sequence[Grant]:
    """Grants not revoked whose end falls in [start, end)."""
    return session.exec(
        select(Grant)
        .where(
            col(Grant.revoked_at).is_(None),
            col(Grant.expires_at) >= start,
            col(Grant.expires_at) < end,
        )
        .order_by(col(Grant.expires_at))
        .limit(limit)
    ).all()


def agency_names(session: Session) -> dict[object, str]:
    return {a.id: a.name for a in session.exec(select(Agency))}
