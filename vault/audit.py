"""Appending to and verifying the per-vault audit log ("who has seen what").

SECURITY.md, "Audit": every decision, read, write and grant change is logged with the
UTC time, actor, agency, purpose, grant and record id, never content. The append runs in
the caller's transaction, so if it fails the action it records fails with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from vault import chain as chainlib
from vault import repository as repo
from vault.actors import Actor
from vault.db_types import utcnow
from vault.keys import KeyProvider
from vault.models import AuditEvent, AuditHead

OPERATOR_CHAIN = "operator"


def event_fields(event: AuditEvent) -> dict[str, Any]:
    """The dict form hashed by the chain, exported, and verified offline."""
    return {
        "id": event.id,
        "seq": event.seq,
        "chain": event.chain,
        "occurred_at": event.occurred_at.isoformat(),
        "action": event.action,
        "actor_type": event.actor_type,
        "actor_id": event.actor_id,
        "actor_label": event.actor_label,
        "agency": event.agency,
        "purpose": event.purpose,
        "grant_id": event.grant_id,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "prev_hash": event.prev_hash,
        "entry_hash": event.entry_hash,
    }


def head_fields(head: AuditHead) -> dict[str, Any]:
    return {
        "chain": head.chain,
        "seq": head.seq,
        "entry_hash": head.entry_hash,
        "signature": head.signature,
        "signed_at": head.signed_at.isoformat(),
    }


def _signature(keys: KeyProvider, chain: str, seq: int, entry_hash: str) -> str:
    return keys.sign(chainlib.head_message(chain, seq, entry_hash)).hex()


def _locked_head(session: Session, keys: KeyProvider, chain: str) -> tuple[int, str]:
    """The chain's (seq, entry_hash), locked for this transaction; created if new."""
    head = repo.lock_audit_head_row(session, chain)
    if head is not None:
        return head
    genesis = chainlib.genesis_hash(chain)
    try:
        with session.begin_nested():
            repo.insert_audit_head(
                session, chain, genesis, _signature(keys, chain, 0, genesis), utcnow()
            )
    except IntegrityError:
        pass  # another transaction created it first; lock theirs below
    head = repo.lock_audit_head_row(session, chain)
    if head is None:  # created just above or by a concurrent transaction
        raise RuntimeError(f"audit head for chain {chain} disappeared")
    return head


def append(
    session: Session,
    keys: KeyProvider,
    chain: str,
    actor: Actor,
    action: str,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
) -> int:
    """Append one entry to ``chain`` in the caller's transaction and re-sign the head.
    Returns the entry's sequence number.

    The head row is locked (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite transactions
    are already serial), so two appends to one vault never share a sequence number.
    This is on every read's hot path, so it runs as three Core statements.
    """
    head_seq, head_hash = _locked_head(session, keys, chain)
    now = utcnow()
    fields: dict[str, Any] = {
        "chain": chain,
        "occurred_at": now,
        "action": action,
        "actor_type": actor.type,
        "actor_id": actor.id,
        "actor_label": actor.label,
        "agency": actor.agency,
        "purpose": actor.purpose,
        "grant_id": actor.grant_id,
        "object_type": object_type,
        "object_id": object_id,
    }
    digest = chainlib.entry_hash(head_hash, {**fields, "occurred_at": now.isoformat()})
    seq = head_seq + 1
    repo.insert_audit_event(session, {**fields, "seq": seq, "prev_hash": head_hash,
                                      "entry_hash": digest})  # fmt: skip
    repo.update_audit_head(session, chain, seq, digest, _signature(keys, chain, seq, digest), now)
    return seq


@dataclass(frozen=True)
class ChainReport:
    chain: str
    entries: int
    problem: chainlib.Problem | None


def verify_all(session: Session, keys: KeyProvider) -> Iterable[ChainReport]:
    """Verify every chain in the database, one at a time, streaming its events."""
    pem = keys.public_key_pem()
    for chain in repo.audit_chains(session):
        events = [event_fields(e) for e in repo.audit_events_in_order(session, chain)]
        head = repo.get_audit_head(session, chain)
        problem = chainlib.verify_chain(chain, events, head_fields(head) if head else None, pem)
        yield ChainReport(chain=chain, entries=len(events), problem=problem)
