"""Authorization server metadata (RFC 8414), with the CIBA and RFC 9396 fields. Both
authorization_details types are listed: ``storykeep_records`` (asked of the young
person) and ``storykeep_emergency`` (child protection, granted at once; see
``grants.emergency``)."""

from __future__ import annotations

from typing import Any

from grants.emergency import EMERGENCY_TYPE
from grants.oauth.rfc6749 import GRANT_TYPES
from grants.oauth.rfc7523 import ACCEPTED_ALGORITHMS
from grants.oauth.rfc9396 import RECORDS_TYPE

TOKEN_PATH = "/oauth/token"  # noqa: S105 - a path, not a secret
BACKCHANNEL_PATH = "/oauth/backchannel"
INTROSPECTION_PATH = "/oauth/introspect"
REVOCATION_PATH = "/oauth/revoke"


def metadata(issuer: str) -> dict[str, Any]:
    base = issuer.rstrip("/")
    auth_methods = ["private_key_jwt", "client_secret_basic"]
    return {
        "issuer": issuer,
        "token_endpoint": base + TOKEN_PATH,
        "backchannel_authentication_endpoint": base + BACKCHANNEL_PATH,
        "backchannel_token_delivery_modes_supported": ["poll"],
        "backchannel_user_code_parameter_supported": False,
        "introspection_endpoint": base + INTROSPECTION_PATH,
        "revocation_endpoint": base + REVOCATION_PATH,
        "grant_types_supported": list(GRANT_TYPES),
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": list(ACCEPTED_ALGORITHMS),
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "authorization_details_types_supported": [RECORDS_TYPE, EMERGENCY_TYPE],
    }
