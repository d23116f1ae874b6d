"""The audit hash chain: how entries are hashed, how a head is signed, how to verify.

This module imports nothing from Storykeep, so the very same file ships inside every
export as ``verify.py``. Anyone holding a downloaded log and the public key can check it
offline (``python verify.py audit.json public_key.pem``); it needs only ``cryptography``.

Each entry's hash covers the previous entry's hash and the entry's fields, so editing,
removing or reordering any entry breaks the chain (a hash chain as in RFC 6962's
append-only logs, without the tree). The chain head (last sequence number and hash) is
signed with Ed25519 (RFC 8032), so cutting entries off the end is detected too.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

# Fields covered by an entry's hash, in this order. Never add content here.
HASHED_FIELDS = (
    "chain",
    "occurred_at",
    "action",
    "actor_type",
    "actor_id",
    "actor_label",
    "agency",
    "purpose",
    "grant_id",
    "object_type",
    "object_id",
)


NO_CHAIN = "no entries and no signed head: the whole chain is gone"


def genesis_hash(chain: str) -> str:
    return hashlib.sha256(b"storykeep-audit-genesis|" + chain.encode()).hexdigest()


def entry_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    body = json.dumps(
        [fields.get(name) for name in HASHED_FIELDS], separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def head_message(chain: str, seq: int, head_hash: str) -> bytes:
    """The exact bytes the Ed25519 signature covers."""
    return json.dumps(
        {"chain": chain, "entry_hash": head_hash, "seq": seq},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


@dataclass(frozen=True)
class Problem:
    seq: int | None
    event_id: int | None
    kind: str  # "edited" | "removed" | "reordered" | "missing" | "bad signature" | "malformed"
    detail: str

    def __str__(self) -> str:
        if self.seq is not None:
            where = f"entry seq={self.seq}"
        elif self.detail == NO_CHAIN:
            where = "whole chain"
        else:
            where = "chain head"
        if self.event_id is not None:
            where += f" (id {self.event_id})"
        return f"{where}: {self.kind}: {self.detail}"


def verify_chain(  # noqa: PLR0911 - one early return per kind of tampering reads best
    chain: str,
    events: list[dict[str, Any]],
    head: dict[str, Any] | None,
    public_key_pem: bytes,
) -> Problem | None:
    """Return the first problem in one chain, or None when it is intact.

    ``events`` are dicts with the hashed fields plus ``seq``, ``id``, ``prev_hash`` and
    ``entry_hash``, sorted by ``seq``. A chain is written with its first entry and its
    head in one transaction, so an intact chain has both: no entries, or no head, is a
    problem too.
    """
    if not events and head is None:
        return Problem(None, None, "missing", NO_CHAIN)
    shape = _shape_problem(events, head) if isinstance(chain, str) else "the chain is not named"
    if shape is not None:
        return Problem(None, None, "malformed", shape)
    by_prev = {e["prev_hash"]: e for e in events}
    expected_prev = genesis_hash(chain)
    expected_seq = 1
    for event in events:
        seq, event_id = event["seq"], event.get("id")
        if event.get("chain") != chain:
            return Problem(seq, event_id, "edited", "entry claims another chain")
        if entry_hash(event["prev_hash"], event) != event["entry_hash"]:
            return Problem(seq, event_id, "edited", "its fields do not match its hash")
        if event["prev_hash"] != expected_prev:
            follower = by_prev.get(expected_prev)
            if follower is not None:
                return Problem(
                    seq,
                    event_id,
                    "reordered",
                    f"the entry that belongs here is now at seq={follower['seq']}",
                )
            return Problem(seq, event_id, "removed", "an entry before this one is missing")
        if seq != expected_seq:
            return Problem(seq, event_id, "reordered", f"expected seq={expected_seq}")
        expected_prev = event["entry_hash"]
        expected_seq += 1
    return _verify_head(chain, head, expected_seq - 1, expected_prev, public_key_pem)


def _shape_problem(events: Any, head: Any) -> str | None:
    """What is wrong with the log's shape, if anything, so that a file edited by hand (or
    not a Storykeep log at all) is reported, not a crash."""
    typed = {"seq": int, "prev_hash": str, "entry_hash": str}
    if not isinstance(events, list):
        return "the entries are not a list"
    for number, event in enumerate(events, 1):
        if not isinstance(event, dict) or not all(
            isinstance(event.get(name), kind) for name, kind in typed.items()
        ):
            return f"entry {number} is not an audit entry (seq, prev_hash, entry_hash)"
    if head is not None and not (
        isinstance(head, dict)
        and isinstance(head.get("seq"), int)
        and all(isinstance(head.get(name), str) for name in ("entry_hash", "signature"))
    ):
        return "the signed head is not a head (seq, entry_hash, signature)"
    return None


def _verify_head(  # noqa: PLR0911 - as verify_chain
    chain: str,
    head: dict[str, Any] | None,
    last_seq: int,
    last_hash: str,
    public_key_pem: bytes,
) -> Problem | None:
    """The head must be signed, and say the log ends at (``last_seq``, ``last_hash``)."""
    if head is None:
        return Problem(None, None, "missing", "the chain has entries but no signed head")
    try:
        public_key = load_pem_public_key(public_key_pem)
        if not isinstance(public_key, Ed25519PublicKey):
            return Problem(None, None, "bad signature", "the public key is not Ed25519")
        public_key.verify(
            bytes.fromhex(head["signature"]),
            head_message(chain, head["seq"], head["entry_hash"]),
        )
    except (InvalidSignature, ValueError):
        return Problem(None, None, "bad signature", "the head's signature does not verify")
    if last_seq == 0 and head["seq"] == 0:
        return Problem(None, None, "missing", "the chain has a signed head but no entries")
    if head["seq"] != last_seq or head["entry_hash"] != last_hash:
        if head["seq"] > last_seq:
            return Problem(
                last_seq + 1,
                None,
                "removed",
                f"the signed head has {head['seq']} entries, the log has {last_seq}",
            )
        return Problem(None, None, "edited", "the log does not end where the signed head says")
    return None


def main(argv: list[str]) -> int:
    """Verify an exported log: ``python verify.py audit.json public_key.pem``."""
    if len(argv) != 3:
        print("usage: python verify.py audit.json public_key.pem", file=sys.stderr)
        return 2
    try:
        doc = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
        pem = Path(argv[2]).read_bytes()
        chain, events, head = doc["chain"], doc["events"], doc["head"]
    except (OSError, ValueError, RecursionError, KeyError, TypeError) as exc:
        print(f"Not a Storykeep audit log and key ({type(exc).__name__})", file=sys.stderr)
        return 2
    problem = verify_chain(chain, events, head, pem)
    if problem is not None:
        print(f"NOT INTACT: {problem}")
        return 1
    print(f"Intact: {len(doc['events'])} entries, signed head verified.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
