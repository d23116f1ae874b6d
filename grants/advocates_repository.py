"""Every query for advocates: invites, links, and the young people an advocate helps."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from app.auth.models import Advocate
from grants.models import AdvocateInvite, AdvocateLink, Grant
from vault.models import Vault, YoungPerson


# -- invites -----------------------------------------------------------------------------------
def lock_invite_by_hash(session: Session, code_hash: str) -> AdvocateInvite | None:
    """Locked, so two advocates racing with one code cannot both use it."""
    return session.exec(
        select(AdvocateInvite).where(AdvocateInvite.code_hash == code_hash).with_for_update()
    ).first()


def open_invites_of_vault(
    session: Session, vault_id: uuid.UUID, now: datetime
) -> Sequence[AdvocateInvite]:
    return session.exec(
        select(AdvocateInvite)
        .where(
            AdvocateInvite.vault_id == vault_id,
            col(AdvocateInvite.used_at).is_(None),
            col(AdvocateInvite.cancelled_at).is_(None),
            AdvocateInvite.expires_at > now,
        )
        .order_by(col(AdvocateInvite.created_at).desc())
    ).all()


def get_invite(
    session: Session, vault_id: uuid.UUID, invite_id: uuid.UUID
) -> AdvocateInvite | None:
    """Only within the given vault: another person's invite id finds nothing."""
    return session.exec(
        select(AdvocateInvite).where(
            AdvocateInvite.vault_id == vault_id, AdvocateInvite.id == invite_id
        )
    ).first()


# -- links -------------------------------------------------------------------------------------
def active_links_of_vault(
    session: Session, vault_id: uuid.UUID
) -> Sequence[tuple[AdvocateLink, Advocate]]:
    rows = session.exec(
        select(AdvocateLink, Advocate)
        .join(Advocate, col(Advocate.id) == col(AdvocateLink.advocate_id))
        .where(AdvocateLink.vault_id == vault_id, col(AdvocateLink.removed_at).is_(None))
        .order_by(col(AdvocateLink.created_at))
    ).all()
    return [(link, advocate) for link, advocate in rows]


def get_link_of_vault(
    session: Session, vault_id: uuid.UUID, link_id: uuid.UUID
) -> tuple[AdvocateLink, Advocate] | None:
    row = session.exec(
        select(AdvocateLink, Advocate)
        .join(Advocate, col(Advocate.id) == col(AdvocateLink.advocate_id))
        .where(AdvocateLink.vault_id == vault_id, AdvocateLink.id == link_id)
    ).first()
    return (row[0], row[1]) if row else None


def active_link(
    session: Session, vault_id: uuid.UUID, advocate_id: uuid.UUID
) -> AdvocateLink | None:
    return session.exec(
        select(AdvocateLink).where(
            AdvocateLink.vault_id == vault_id,
            AdvocateLink.advocate_id == advocate_id,
            col(AdvocateLink.removed_at).is_(None),
        )
    ).first()


def people_of_advocate(
    session: Session, advocate_id: uuid.UUID
) -> Sequence[tuple[AdvocateLink, str]]:
    """Active links and the young person's username. The inner join to ``young_person``
    drops erased vaults (erasure detaches the person), so nothing is shown for them."""
    rows = session.exec(
        select(AdvocateLink, YoungPerson.username)
        .join(Vault, col(Vault.id) == col(AdvocateLink.vault_id))
        .join(YoungPerson, col(YoungPerson.id) == col(Vault.young_person_id))
        .where(
            AdvocateLink.advocate_id == advocate_id,
            col(AdvocateLink.removed_at).is_(None),
            col(Vault.erased_at).is_(None),
        )
        .order_by(col(YoungPerson.username))
    ).all()
    return [(link, username) for link, username in rows]


def person_link(
    session: Session, advocate_id: uuid.UUID, link_id: uuid.UUID
) -> tuple[AdvocateLink, Vault, str] | None:
    """One active link of this advocate, with its vault and username; None for a removed
    link, another advocate's link or an erased vault (all the same to the caller: 404)."""
    row = session.exec(
        select(AdvocateLink, Vault, YoungPerson.username)
        .join(Vault, col(Vault.id) == col(AdvocateLink.vault_id))
        .join(YoungPerson, col(YoungPerson.id) == col(Vault.young_person_id))
        .where(
            AdvocateLink.id == link_id,
            AdvocateLink.advocate_id == advocate_id,
            col(AdvocateLink.removed_at).is_(None),
            col(Vault.erased_at).is_(None),
        )
    ).first()
    return (row[0], row[1], row[2]) if row else None


# -- advocates ---------------------------------------------------------------------------------
def advocate_by_email(session: Session, email: str) -> Advocate | None:
    return session.exec(select(Advocate).where(Advocate.email == email)).first()


def get_grant(session: Session, grant_id: uuid.UUID) -> Grant | None:
    return session.get(Grant, grant_id)
