"""RFC 9396 Rich Authorization Requests: ``authorization_details`` in our vocabulary.

One item of type ``storykeep_records`` per request, for example::

    [{"type": "storykeep_records", "actions": ["read"], "categories": ["education"],
      "purpose": "education_support", "duration_days": 30}]

``record_ids`` may narrow it to named records. Anything else is refused with
``invalid_authorization_details`` (RFC 9396, section 5), and nothing is stored.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from grants.models import Agency
from grants.oauth.errors import InvalidAuthorizationDetailsError
from vault.vocabulary import GRANT_CATEGORIES

RECORDS_TYPE = "storykeep_records"
ACTIONS = ("read", "write")
MAX_RAW_CHARS = 8_000
MAX_RECORD_IDS = 100
ALLOWED_KEYS = {"type", "actions", "categories", "purpose", "duration_days", "record_ids"}


def _fail(description: str) -> InvalidAuthorizationDetailsError:
    return InvalidAuthorizationDetailsError(description=description)


def _string_list(item: dict[str, Any], name: str, allowed: tuple[str, ...]) -> list[str]:
    values = item.get(name)
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise _fail(f"{name} must be a non-empty list of strings")
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise _fail(f"unknown {name}: {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    return sorted(set(values))


def parse(raw: str | None, agency: Agency) -> dict[str, Any]:  # noqa: PLR0912 - one check per rule
    """Validate the form parameter and return the one normalised item."""
    if not raw:
        raise _fail("authorization_details is required")
    if len(raw) > MAX_RAW_CHARS:
        raise _fail("authorization_details is too long")
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError:
        raise _fail("authorization_details must be a JSON array") from None
    if not isinstance(doc, list) or len(doc) != 1 or not isinstance(doc[0], dict):
        raise _fail("authorization_details must be a JSON array with exactly one object")
    item: dict[str, Any] = doc[0]
    if item.get("type") != RECORDS_TYPE:
        raise _fail(f"type must be {RECORDS_TYPE!r}")
    extra = sorted(set(item) - ALLOWED_KEYS)
    if extra:
        raise _fail(f"unknown fields: {', '.join(extra)}")
    actions = _string_list(item, "actions", ACTIONS)
    categories = _string_list(item, "categories", GRANT_CATEGORIES)
    if "write" in actions and "my_story" in categories:
        raise _fail("agencies cannot write into a young person's own story")
    purpose = item.get("purpose")
    if not isinstance(purpose, str) or purpose not in agency.purposes:
        raise _fail(f"purpose must be one registered for this agency: {', '.join(agency.purposes)}")
    days = item.get("duration_days")
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        raise _fail("duration_days must be a whole number of days, at least 1")
    if days > agency.max_duration_days:
        raise _fail(f"duration_days can be at most {agency.max_duration_days} for this agency")
    normalised: dict[str, Any] = {
        "type": RECORDS_TYPE,
        "actions": actions,
        "categories": categories,
        "purpose": purpose,
        "duration_days": days,
    }
    if "record_ids" in item:
        ids = item["record_ids"]
        if not isinstance(ids, list) or not ids or len(ids) > MAX_RECORD_IDS:
            raise _fail(f"record_ids must be a list of 1 to {MAX_RECORD_IDS} ids")
        try:
            normalised["record_ids"] = sorted({uuid.UUID(str(i)).hex for i in ids})
        except ValueError:
            raise _fail("record_ids must be record ids") from None
    return normalised
