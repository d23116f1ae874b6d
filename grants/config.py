"""What the grants domain needs from the process, built once from Settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from vault.hashing import keyed_hash


@dataclass(frozen=True)
class GrantsConfig:
    secret: bytes = field(repr=False)
    issuer: str
    # SECURITY.md: access tokens live at most 10 minutes.
    access_token_seconds: int = 600
    # CIBA poll interval the client is told to keep to.
    poll_interval_seconds: int = 5
    connection_code_hours: int = 24
    default_decide_seconds: int = 7 * 24 * 3600
    max_decide_seconds: int = 30 * 24 * 3600
    # A client assertion may be valid for at most this long (bounds the jti store).
    max_assertion_seconds: int = 600
    # Clock skew allowed for a client assertion's iat.
    assertion_leeway_seconds: int = 60

    def hash(self, purpose: str, value: str) -> str:
        return keyed_hash(self.secret, purpose, value)
