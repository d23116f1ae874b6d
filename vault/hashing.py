"""Keyed hashes for secrets we must recognise but never store (tokens, codes, cookies).

HMAC-SHA256 with the server's secret (SECURITY.md, "Tokens and grants"): a copy of the
database alone cannot be used to forge or replay any of them. ``purpose`` separates the
domains, so a session token can never be presented as an access token.
"""

from __future__ import annotations

import hashlib
import hmac


def keyed_hash(key: bytes, purpose: str, value: str) -> str:
    return hmac.new(key, f"{purpose}|{value}".encode(), hashlib.sha256).hexdigest()
