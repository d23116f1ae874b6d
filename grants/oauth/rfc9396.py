"""RFC 9396 Rich Authorization Requests: ``authorization_details`` in our vocabulary.

One item of type ``storykeep_records`` per request, for example::

    [{"type": "storykeep_records", "actions": ["read"], "categories": ["education"],
      "purpose": "education_support", "duration_days": 30}]

``record_ids`` may narrow it to named records. Or one item of type
``storykeep_emergency`` (child protection, granted at once without the young person's
approval; the rules are in ``grants.emergency``)::

    [{"type": "storykeep_emergency", "actions": ["read"], "categories": ["care_plan"],
      "reason_code": "risk_of_significant_harm", "reason": "...", "duration_hours": 24,
      "defer_notice": {"reason": "...", "days": 3}}]

Anything else is refused with ``invalid_authorization_details`` (RFC 9396, section 5),
and nothing is stored.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from grants import emergency
from grants.emergency import EMERGENCY_PURPOSE, EMERGENCY_TYPE, EmergencyDetails
from grants.models import Agency
from grants.oauth.errors import InvalidAuthorizationDetailsError
from vault.errors import InvalidInput
from vault.schemas import parse_json
from vault.vocabulary import GRANT_CATEGORIES

RECORDS_TYPE = "storykeep_records"
ACTIONS = ("read", "write")
MAX_RAW_CHARS = 8_000
MAX_RECORD_IDS = 100
ALLOWED_KEYS = {"type", "actions", "categories", "purpose", "duration_days", "record_ids"}


def _safe(text: str) -> str:
    """RFC 6749 section 5.2 allows only %x20-21 / %x23-5B / %x5D-7E in error_description;
    a client's own strings (an unknown category, say) may hold anything else."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in text)


def _fail(description: str) -> InvalidAuthorizationDetailsError:
    return InvalidAuthorizationDetailsError(description=_safe(description))


def _string_list(item: dict[str, Any], name: str, allowed: tuple[str, ...]) -> list[str]:
    values = item.get(name)
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise _fail(f"{name} must be a non-empty list of strings")
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise _fail(f"unknown {name}: {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    return sorted(set(values))


def single_item(raw: str | None) -> dict[str, Any]:
    """The form parameter as its one object (RFC 9396 section 2: a JSON array)."""
    if not raw:
        raise _fail("authorization_details is required")
    if len(raw) > MAX_RAW_CHARS:
        raise _fail("authorization_details is too long")
    try:
        doc = parse_json(raw)
    except json.JSONDecodeError:
        raise _fail("authorization_details must be a JSON array") from None
    if not isinstance(doc, list) or len(doc) != 1 or not isinstance(doc[0], dict):
        raise _fail("authorization_details must be a JSON array with exactly one object")
    item: dict[str, Any] = doc[0]
    return item


def is_emergency(raw: str | None) -> bool:
    """Whether the request is of type ``storykeep_emergency`` (checked in full later)."""
    try:
        return single_item(raw).get("type") == EMERGENCY_TYPE
    except InvalidAuthorizationDetailsError:
        return False


def parse_emergency(raw: str | None) -> EmergencyDetails:
    """A ``storykeep_emergency`` item, checked by ``grants.emergency.parse``; its
    complaints become ``invalid_authorization_details`` (section 5)."""
    try:
        return emergency.parse(single_item(raw))
    except InvalidInput as exc:
        raise _fail(exc.message) from None


def parse(raw: str | None, agency: Agency) -> dict[str, Any]:
    """Validate the form parameter and return the one normalised item."""
    item = single_item(raw)
    if item.get("type") != RECORDS_TYPE:
        raise _fail(f"type must be {RECORDS_TYPE!r} or {EMERGENCY_TYPE!r}")
    extra = sorted(set(item) - ALLOWED_KEYS)
    if extra:
        raise _fail(f"unknown fields: {', '.join(extra)}")
    actions = _string_list(item, "actions", ACTIONS)
    categories = _string_list(item, "categories", GRANT_CATEGORIES)
    if "write" in actions and "my_story" in categories:
        raise _fail("agencies cannot write into a young person's own story")
    purpose = item.get("purpose")
    if purpose == EMERGENCY_PURPOSE:  # the emergency tag: never on a consent grant
        raise _fail(f"{EMERGENCY_PURPOSE!r} is only for {EMERGENCY_TYPE!r} requests")
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
