"""OpenID Client-Initiated Backchannel Authentication Core 1.0, poll mode.

The young person decides later, on their phone, so the agency cannot wait on a redirect:
it posts a request to the backchannel endpoint (section 7), gets an ``auth_req_id``, and
polls the token endpoint with grant type ``urn:openid:params:grant-type:ciba``
(section 10.1), getting ``authorization_pending`` or ``slow_down`` (section 11) until
the young person says yes (tokens) or no (``access_denied``), or the request lapses
(``expired_token``).

``login_hint`` is a one-time connection code from the young person, or the agency's own
pairwise handle. A wrong, used, cancelled or expired code and a handle of another agency
all get the same ``unknown_user_id``: nothing says whether a young person exists.

An ``authorization_details`` item of type ``storykeep_emergency`` takes the emergency
path (``grants.emergency``): the login hint must be the agency's own handle (a
connection code gets ``unknown_user_id`` and is not used up), the agency and the
practitioner's role must be registered for child protection (else ``access_denied``,
403, and the attempt stays in the operator's log), and the grant exists at once, so the
first poll returns the tokens.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from sqlmodel import Session

from grants import emergency
from grants import repository as repo
from grants import service as grants_service
from grants.config import GrantsConfig
from grants.models import Agency
from grants.oauth import rfc9396
from grants.oauth.errors import (
    AccessDeniedError,
    EmergencyDeniedError,
    ExpiredTokenError,
    InvalidGrantError,
    InvalidRequestError,
    PendingPoll,
    TooFastPoll,
    UnknownUserIdError,
)
from grants.oauth.rfc7523 import AuthenticatedClient
from grants.oauth.tokens import issue
from grants.service import practitioner_actor
from vault.db_types import utcnow
from vault.errors import Conflict
from vault.keys import KeyProvider
from vault.schemas import is_number, parse_json

__all__ = ["GRANT_TYPE", "backchannel_request", "practitioner_actor", "token_grant"]

GRANT_TYPE = "urn:openid:params:grant-type:ciba"
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")


def _practitioner(raw: str | None) -> dict[str, str]:
    try:
        data = parse_json(raw or "")
    except json.JSONDecodeError:
        raise InvalidRequestError(description="practitioner must be a JSON object") from None
    if not isinstance(data, dict):
        raise InvalidRequestError(description="practitioner must be a JSON object")
    out = {}
    for name, limit in (("name", 100), ("role", 100), ("email", 254)):
        value = data.get(name)
        if not isinstance(value, str) or not 1 <= len(value.strip()) <= limit:
            raise InvalidRequestError(
                description=f"practitioner.{name} is required (1-{limit} chars)"
            )
        out[name] = value.strip()
    if not EMAIL_RE.fullmatch(out["email"]):
        raise InvalidRequestError(description="practitioner.email is not an email address")
    return out


def _decide_seconds(config: GrantsConfig, raw: str | None) -> int:
    if raw is None or raw == "":
        return config.default_decide_seconds
    if not is_number(raw) or not 60 <= int(raw) <= config.max_decide_seconds:
        raise InvalidRequestError(
            description="requested_expiry must be a number of seconds, "
            f"from 60 to {config.max_decide_seconds}"
        )
    return int(raw)


def backchannel_request(
    session: Session,
    config: GrantsConfig,
    keys: KeyProvider,
    client: AuthenticatedClient,
    form: Mapping[str, str],
    keyring: Any = None,
    notifier: Any = None,
) -> dict[str, Any]:
    """CIBA section 7.1: parse the form, then ask through ``grants.service.open_request``,
    the same path the practitioner pages use. Everything is validated before anything is
    written, so bad input changes nothing. Emergency requests need the ``keyring`` (the
    reason is sealed) and the ``notifier`` (the young person is told at once)."""
    agency = repo.get_agency(session, client.agency_id)
    if agency is None:
        raise InvalidRequestError(description="client has no agency")
    practitioner = _practitioner(form.get("practitioner"))
    if rfc9396.is_emergency(form.get("authorization_details")):
        if keyring is None or notifier is None:
            raise InvalidRequestError(description="emergency access is not available here")
        return _emergency_request(session, config, keyring, notifier, client, agency,
                                  practitioner, form)  # fmt: skip
    decide_seconds = _decide_seconds(config, form.get("requested_expiry"))
    opened = grants_service.open_request(
        session, config, keys, agency=agency, client_id=client.client_id,
        login_hint=form.get("login_hint"),
        authorization_details=form.get("authorization_details"),
        practitioner=practitioner, decide_seconds=decide_seconds, notifier=notifier,
    )  # fmt: skip
    return {
        "auth_req_id": opened.auth_req_id,
        "expires_in": decide_seconds,
        "interval": config.poll_interval_seconds,
    }


def _emergency_request(
    session: Session, config: GrantsConfig, keyring: Any, notifier: Any,
    client: AuthenticatedClient, agency: Agency, practitioner: dict[str, str],
    form: Mapping[str, str],
) -> dict[str, Any]:  # fmt: skip
    """Who may (logged if not), then what (RFC 9396), then whom (the agency's own handle),
    then no chaining; then the grant, at once."""
    why_not = emergency.refusal(agency, practitioner)
    if why_not is not None:
        actor = emergency.actor_for(practitioner, agency.name, None)
        emergency.log_refusal(session, keyring.provider, actor, agency)
        raise EmergencyDeniedError(description=why_not)
    details = rfc9396.parse_emergency(form.get("authorization_details"))
    handle = emergency.handle_of(session, agency.id, form.get("login_hint"))
    if handle is None:
        raise UnknownUserIdError(
            description="emergency access needs your own handle for a young person you are "
            "already connected to (not a connection code)"
        )
    try:
        opened = emergency.request_access(
            session, config, keyring, notifier, agency=agency, client_id=client.client_id,
            handle=handle, practitioner=practitioner, details=details,
        )  # fmt: skip
    except emergency.EmergencyChained as exc:
        raise EmergencyDeniedError(description=exc.message) from None
    except Conflict as exc:  # the same rule, met in a race: nothing is kept
        raise AccessDeniedError(description=exc.message, status_code=403) from None
    lasts = int((opened.grant.expires_at - utcnow()).total_seconds())
    return {
        "auth_req_id": opened.auth_req_id,
        "expires_in": max(1, lasts),
        "interval": config.poll_interval_seconds,
    }


def token_grant(
    session: Session, config: GrantsConfig, client: AuthenticatedClient, form: Mapping[str, str]
) -> dict[str, Any]:
    """CIBA section 10.1 and 11: the poll."""
    auth_req_id = form.get("auth_req_id")
    if not auth_req_id or len(auth_req_id) > 200:
        raise InvalidRequestError(description="auth_req_id is required")
    request = repo.lock_request_by_auth_hash(session, config.hash("auth-req", auth_req_id))
    if request is None or request.client_id != client.client_id:
        raise InvalidGrantError(description="unknown auth_req_id")
    now = utcnow()
    if request.status == "pending":
        if now >= request.decide_by:
            raise ExpiredTokenError(description="the young person did not decide in time")
        too_fast = (
            request.last_polled_at is not None
            and (now - request.last_polled_at).total_seconds() < request.poll_interval
        )
        request.last_polled_at = now
        if too_fast:
            request.poll_interval += 5  # CIBA 11: the client must slow down by 5 s
        session.add(request)
        session.flush()
        if too_fast:
            raise TooFastPoll(description=f"poll at most every {request.poll_interval} s")
        raise PendingPoll(description="the young person has not decided yet")
    if request.status == "lapsed":  # marked by the lifecycle job (CIBA 11: expired_token)
        raise ExpiredTokenError(description="the young person did not decide in time")
    if request.status == "declined":
        raise AccessDeniedError(description="the young person said no")
    if request.redeemed_at is not None:
        raise InvalidGrantError(description="auth_req_id has already been exchanged")
    grant = repo.grant_for_request(session, request.id)
    if grant is None or not grant.is_active(now):
        raise InvalidGrantError(description="the grant has ended")
    request.redeemed_at = now
    session.add(request)
    return issue(session, config, grant, family_id=grant.id)
