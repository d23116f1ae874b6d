"""Appending to and verifying the per-vault audit log ("who has seen what").

SECURITY.md, "Audit": every decision, read, write and grant change is logged with the
UTC time, actor, agency, purpose, grant and record id, never content. The append runs in
the caller's transaction, so if it fails the action it records fails with it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from vault import chain as chainlib
from vault import repository as repo
from vault.actors import Actor
from vault.db_types import utcnow
from vault.keys import KeyProvider
from vault.models import AuditEvent, AuditHead

OPERATOR_CHAIN = "operator"

# The head of each chain as this process last wrote it: (seq, entry_hash). Only a guess,
# used to skip locking and reading the head before an append. The append is a
# compare-and-swap (``repo.advance_audit_head``), so a stale guess (another process
# appended, or a transaction rolled back) costs one statement and changes nothing.
_known_heads: dict[str, tuple[int, str]] = {}
KNOWN_HEADS_MAX = 50_000  # about 20 MB at most; cleared whole when full


def _know_head(chain: str, seq: int, entry_hash: str) -> None:
    if len(_known_heads) >= KNOWN_HEADS_MAX:
        _known_heads.clear()
    _known_heads[chain] = (seq, entry_hash)


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

    Two appends to one vault never share a sequence number, and no entry is hashed
    against anything but the head it follows. This is on every read's hot path, so it
    first tries the head this process last wrote, as a compare-and-swap: one statement
    on PostgreSQL, two on SQLite. If the head has moved on, it locks the head row
    (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite transactions are already serial),
    reads it, and appends after it.
    """
    known = _known_heads.get(chain)
    if known is not None:
        event, signature = _next_event(keys, chain, known, actor, action, object_type, object_id)
        if repo.advance_audit_head(session, known, event, signature):
            _know_head(chain, event["seq"], event["entry_hash"])
            return int(event["seq"])
    head = _locked_head(session, keys, chain)
    event, signature = _next_event(keys, chain, head, actor, action, object_type, object_id)
    repo.insert_audit_event(session, event)
    repo.update_audit_head(
        session, chain, event["seq"], event["entry_hash"], signature, event["occurred_at"]
    )
    _know_head(chain, event["seq"], event["entry_hash"])
    return int(event["seq"])


def _next_event(
    keys: KeyProvider, chain: str, head: tuple[int, str], actor: Actor, action: str,
    object_type: str | None, object_id: str | None,
) -> tuple[dict[str, Any], str]:  # fmt: skip
    """The entry that follows ``head`` (seq, entry_hash), and the head's new signature."""
    head_seq, head_hash = head
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
    event = {**fields, "seq": seq, "prev_hash": head_hash, "entry_hash": digest}
    return event, _signature(keys, chain, seq, digest)


@dataclass(frozen=True)
class ChainReport:
    chain: str
    entries: int
    problem: chainlib.Problem | None
    vault_id: uuid.UUID | None = None  # set when the chain is a vault's


def verify_all(session: Session, keys: KeyProvider) -> Iterable[ChainReport]:
    """Verify every chain in the database, one at a time, and find vaults with none.

    Every vault must have a chain: ``create_young_person`` writes the vault row and its
    first entry (``vault:created``) with the chain's head in one transaction, and
    erasure keeps the vault row as a tombstone and adds ``vault:erased`` to its chain.
    So a vault row, erased or not, whose chain has no head and no entries lost its whole
    chain. The operator chain is not required: it starts with the first operator action.
    Chains with no vault row are verified but not otherwise questioned (tests and
    operator tools may use other names).
    """
    # Vaults first: a vault committed after this read is not expected, and one committed
    # before it brought its chain in the same transaction, so the chains read next
    # include it even under READ COMMITTED.
    vaults = {vault_id.hex: vault_id for vault_id in repo.vault_ids(session)}
    pem = keys.public_key_pem()
    for chain in sorted(set(repo.audit_chains(session)) | vaults.keys()):
        events = [event_fields(e) for e in repo.audit_events_in_order(session, chain)]
        head = repo.get_audit_head(session, chain)
        problem = chainlib.verify_chain(chain, events, head_fields(head) if head else None, pem)
        yield ChainReport(chain, len(events), problem, vaults.get(chain))


def is_our_public_key(keys: KeyProvider, pem: bytes) -> bool:
    """Whether ``pem`` is this server's audit public key.

    An export carries a public key so that anyone can check it offline, but whoever
    edits the log can re-sign its head with a key of their own and put that key in the
    zip. Only a key got from somewhere else (here, the server's own) shows who signed.
    Compared as raw Ed25519 keys (RFC 8032), so a PEM re-saved with other line endings
    still matches.
    """
    try:
        theirs = load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False
    ours = load_pem_public_key(keys.public_key_pem())
    raw = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return (
        isinstance(theirs, Ed25519PublicKey)
        and isinstance(ours, Ed25519PublicKey)
        and theirs.public_bytes(*raw) == ours.public_bytes(*raw)
    )
