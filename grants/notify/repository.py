"""Queries for notifications: young people's choices, and the day's looks for summaries."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from grants.models import AgencyWebhook, Notification
from vault.driver_sql import DriverStatement
from vault.models import AuditEvent, NotificationPreference, Vault

# What counts as "looking at your things": reads of content by someone other than the
# young person (vault/service.py logs one of these for every item shown to them).
LOOK_ACTIONS = ("record:read", "entry:read", "photo:read")


def preference_of(
    session: Session, young_person_id: uuid.UUID, lock: bool = False
) -> NotificationPreference | None:
    return session.get(NotificationPreference, young_person_id, with_for_update=lock)


_PREFERENCE = NotificationPreference.__table__  # type: ignore[attr-defined]
_VAULT = Vault.__table__  # type: ignore[attr-defined]
_ACCESS_MODE = DriverStatement(
    sa_select(_PREFERENCE.c.access_mode)
    .select_from(
        _PREFERENCE.join(_VAULT, _VAULT.c.young_person_id == _PREFERENCE.c.young_person_id)
    )
    .where(_VAULT.c.id == bindparam("vault_id"), _VAULT.c.erased_at.is_(None))
)


def access_mode_of_vault(session: Session, vault_id: uuid.UUID) -> str | None:
    """How the vault's owner chose to hear that someone looked (None: no choice made, or
    erased). On the driver: the first read of each grant each hour asks this."""
    row = _ACCESS_MODE.first(session, {"vault_id": vault_id})
    return None if row is None else str(row.access_mode)


def preference_of_vault(session: Session, vault_id: uuid.UUID) -> NotificationPreference | None:
    """The choices of the young person who owns this vault (None: none made, or erased)."""
    return session.exec(
        select(NotificationPreference)
        .join(Vault, col(Vault.young_person_id) == col(NotificationPreference.young_person_id))
        .where(Vault.id == vault_id, col(Vault.erased_at).is_(None))
    ).first()


def has_webhook(session: Session, agency_id: uuid.UUID) -> bool:
    return session.get(AgencyWebhook, agency_id) is not None


def is_queued(session: Session, dedupe_key: str) -> bool:
    return (
        session.exec(select(Notification.id).where(Notification.dedupe_key == dedupe_key)).first()
        is not None
    )


@dataclass(frozen=True)
class VaultLooks:
    vault_id: uuid.UUID
    looks: int
    agencies: list[str]


def looks_between(session: Session, start: datetime, end: datetime) -> list[VaultLooks]:
    """Per vault, how many times others looked at its things in [start, end), and from
    which agencies. Only vaults whose owner still has an account."""
    rows = session.exec(
        select(AuditEvent.chain, AuditEvent.agency, func.count())
        .where(
            col(AuditEvent.occurred_at) >= start,
            col(AuditEvent.occurred_at) < end,
            col(AuditEvent.action).in_(LOOK_ACTIONS),
            AuditEvent.actor_type != "young_person",
        )
        .group_by(col(AuditEvent.chain), col(AuditEvent.agency))
    ).all()
    by_vault: dict[str, tuple[int, set[str]]] = {}
    for chain, agency, count in rows:
        looks, agencies = by_vault.get(chain, (0, set()))
        by_vault[chain] = (looks + int(count), agencies | {agency or "Storykeep"})
    out = []
    for chain, (looks, agencies) in sorted(by_vault.items()):
        try:
            out.append(VaultLooks(uuid.UUID(hex=chain), looks, sorted(agencies)))
        except ValueError:  # the operator's chain, or anything that is not a vault
            continue
    return out


def vaults_choosing_daily(session: Session, vault_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Of these vaults, those whose owner (still there) wants a daily summary: everyone
    who has not chosen "straight away", since daily is the default."""
    ids = list(vault_ids)
    if not ids:
        return set()
    rows: Sequence[tuple[uuid.UUID, str | None]] = session.exec(
        select(Vault.id, NotificationPreference.access_mode)
        .outerjoin(
            NotificationPreference,
            col(NotificationPreference.young_person_id) == col(Vault.young_person_id),
        )
        .where(
            col(Vault.id).in_(ids),
            col(Vault.young_person_id).is_not(None),
            col(Vault.erased_at).is_(None),
        )
    ).all()
    return {vault_id for vault_id, mode in rows if mode != "immediate"}


def queued_keys(session: Session, keys: Iterable[str]) -> set[str]:
    wanted = list(keys)
    if not wanted:
        return set()
    found = session.exec(
        select(Notification.dedupe_key).where(col(Notification.dedupe_key).in_(wanted))
    ).all()
    return {key for key in found if key is not None}
