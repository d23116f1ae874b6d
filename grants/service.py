"""The grants domain's business logic for operators and young people. No commits."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlmodel import Session

from grants import repository as repo
from grants import wording
from grants.config import GrantsConfig
from grants.lifecycle import reference
from grants.models import (
    AccessRequest,
    Agency,
    ConnectionCode,
    Grant,
    OAuthClient,
    PairwiseHandle,
)
from grants.notify import messages
from grants.oauth import rfc9396
from grants.oauth.errors import OAuth2Error, UnknownUserIdError
from grants.schemas import (
    ApproveBody,
    ConnectionCodePublic,
    DeclineBody,
    GrantPublic,
    PageRequestForm,
    PractitionerGrantView,
    PractitionerHome,
    PractitionerRequestView,
    RequestPublic,
    practitioner_public,
)
from vault import audit
from vault import service as vault_service
from vault.actors import Actor
from vault.crypto import FieldContext
from vault.db_types import utcnow
from vault.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from vault.keys import KeyProvider
from vault.models import Vault, YoungPerson
from vault.schemas import parse_json
from vault.vocabulary import GRANT_CATEGORIES

if TYPE_CHECKING:
    from grants.lifecycle import Notifier

# Crockford-style alphabet: no I, L, O or U, so codes read aloud or typed cleanly.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 16  # 80 bits: not guessable, even without the sign-in throttle
# The client_id on requests and grants made from Storykeep's own practitioner pages. No
# OAuth client can have it (registered ids start "sk_"), so no token is ever issued for
# them: pages read through the grant directly (grants/access.py).
PAGES_CLIENT_ID = "storykeep-pages"


# -- operator: agencies and clients -----------------------------------------------------------
def add_agency(
    session: Session, actor: Actor, keys: Any, name: str, purposes: list[str],
    statutory: bool, max_duration_days: int,
) -> Agency:  # fmt: skip
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise InvalidInput("An agency name needs 1 to 200 characters.")
    cleaned = sorted({p.strip() for p in purposes if p.strip()})
    if not cleaned or not all(p.replace("_", "").isalnum() and len(p) <= 64 for p in cleaned):
        raise InvalidInput("Give at least one purpose, like education_support (letters, _).")
    if not 1 <= max_duration_days <= 366:
        raise InvalidInput("The longest grant must be between 1 and 366 days.")
    if repo.get_agency_by_name(session, name) is not None:
        raise Conflict(f"An agency called {name!r} already exists.")
    agency = Agency(
        name=name, purposes=cleaned, statutory=statutory, max_duration_days=max_duration_days
    )
    session.add(agency)
    session.flush()
    audit.append(session, keys, audit.OPERATOR_CHAIN, actor, "agency:added",
                 object_type="agency", object_id=agency.id.hex)  # fmt: skip
    return agency


def _public_jwks(raw: str) -> dict[str, Any]:
    try:
        doc = parse_json(raw)
    except json.JSONDecodeError:
        raise InvalidInput("The JWKS file is not JSON.") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list) or not doc["keys"]:
        raise InvalidInput('The JWKS must be {"keys": [...]} with at least one key.')
    for key in doc["keys"]:
        if not isinstance(key, dict) or key.get("kty") not in {"RSA", "EC", "OKP"}:
            raise InvalidInput("Only RSA, EC or OKP (Ed25519) public keys are accepted.")
        if any(private in key for private in ("d", "p", "q", "dp", "dq", "qi")):
            raise InvalidInput("The JWKS holds private key material. Register public keys only.")
    try:
        KeySet.import_key_set(doc)  # type: ignore[arg-type]  # checked just above
    except (JoseError, ValueError, TypeError):
        raise InvalidInput("The JWKS holds a key that cannot be read.") from None
    return doc


def add_client(
    session: Session, config: GrantsConfig, actor: Actor, keys: Any, agency_name: str,
    jwks_json: str, allow_secret: bool,
) -> tuple[OAuthClient, str | None]:  # fmt: skip
    """Register an agency's system. Returns the client and, only with allow_secret, a
    client secret shown once and stored only as a keyed hash."""
    agency = repo.get_agency_by_name(session, agency_name.strip())
    if agency is None:
        raise NotFound(f"No agency called {agency_name!r}. Add it with `storykeep agency add`.")
    jwks = _public_jwks(jwks_json)
    secret = secrets.token_urlsafe(32) if allow_secret else None
    client = OAuthClient(
        client_id="sk_" + secrets.token_hex(12),
        agency_id=agency.id,
        jwks=jwks,
        auth_method="client_secret_basic" if allow_secret else "private_key_jwt",
        secret_hash=config.hash("client-secret", secret) if secret else None,
    )
    session.add(client)
    session.flush()
    audit.append(session, keys, audit.OPERATOR_CHAIN, actor, "client:added",
                 object_type="oauth_client", object_id=client.client_id)  # fmt: skip
    return client, secret


# -- connection codes ---------------------------------------------------------------------------
def normalise_code(code: str) -> str:
    return code.strip().upper().replace("-", "").replace(" ", "")


def _format_code(raw: str) -> str:
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def _code_ctx(code: ConnectionCode) -> FieldContext:
    return FieldContext(code.vault_id, "connection_code", code.id, "code", 1)


def make_code(
    session: Session, config: GrantsConfig, services: vault_service.VaultServices,
    actor: Actor, vault: Vault,
) -> ConnectionCodePublic:  # fmt: skip
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    now = utcnow()
    code = ConnectionCode(
        vault_id=vault.id, code_hash=config.hash("connection-code", raw), code_sealed=b"",
        created_at=now, expires_at=now + timedelta(hours=config.connection_code_hours),
    )  # fmt: skip
    code.code_sealed = services.keyring.seal_text(session, _code_ctx(code), raw)
    session.add(code)
    session.flush()
    audit.append(session, services.keyring.provider, vault.id.hex, actor, "code:created",
                 object_type="connection_code", object_id=code.id.hex)  # fmt: skip
    return ConnectionCodePublic(
        id=code.id, code=_format_code(raw), created_at=now, expires_at=code.expires_at
    )


def list_codes(
    session: Session, services: vault_service.VaultServices, vault: Vault
) -> list[ConnectionCodePublic]:
    return [
        ConnectionCodePublic(
            id=c.id, created_at=c.created_at, expires_at=c.expires_at,
            code=_format_code(services.keyring.open_text(session, _code_ctx(c), c.code_sealed)),
        )
        for c in repo.codes_of_vault(session, vault.id, utcnow())
    ]  # fmt: skip


def get_code(
    session: Session, services: vault_service.VaultServices, vault: Vault, code_id: uuid.UUID
) -> ConnectionCodePublic:
    code = repo.get_code(session, vault.id, code_id)
    if code is None or not code.is_active(utcnow()):
        raise NotFound("That code has been used, cancelled or has run out.")
    raw = services.keyring.open_text(session, _code_ctx(code), code.code_sealed)
    return ConnectionCodePublic(
        id=code.id, code=_format_code(raw), created_at=code.created_at, expires_at=code.expires_at
    )


def cancel_code(
    session: Session, services: vault_service.VaultServices, actor: Actor, vault: Vault,
    code_id: uuid.UUID,
) -> None:  # fmt: skip
    code = repo.get_code(session, vault.id, code_id)
    if code is None or not code.is_active(utcnow()):
        raise NotFound("That code has been used, cancelled or has run out.")
    code.cancelled_at = utcnow()
    session.add(code)
    audit.append(session, services.keyring.provider, vault.id.hex, actor, "code:cancelled",
                 object_type="connection_code", object_id=code.id.hex)  # fmt: skip


# -- asking: one path for agency systems (CIBA) and the practitioner pages ------------------------
def practitioner_actor(
    practitioner: Mapping[str, Any], agency: str, purpose: str | None, grant_id: str | None
) -> Actor:
    """The actor for anything a practitioner does, through a client or the pages alike."""
    return Actor(
        type="practitioner",
        id=str(practitioner.get("email", "")),
        label=f"{practitioner.get('name', '')}",
        agency=agency,
        purpose=purpose,
        grant_id=grant_id,
    )


def resolve_login_hint(
    session: Session, config: GrantsConfig, agency_id: uuid.UUID, hint: str | None
) -> PairwiseHandle:
    """A one-time connection code, or the agency's own pairwise handle (CIBA section 7.1,
    ``login_hint``). Every miss gets the same ``unknown_user_id``: nothing says whether a
    young person exists."""
    if not hint or len(hint) > 100:
        raise UnknownUserIdError(description="login_hint must be a connection code or your handle")
    now = utcnow()
    handle = repo.get_handle(session, hint.strip(), agency_id)
    if handle is not None:
        return handle
    code = repo.lock_code_by_hash(session, config.hash("connection-code", normalise_code(hint)))
    if code is None or not code.is_active(now):
        raise UnknownUserIdError(
            description="that code is not valid; ask the young person for a new one"
        )
    code.used_at = now  # single use, whatever happens next in this transaction
    session.add(code)
    existing = repo.handle_for(session, agency_id, code.vault_id)
    if existing is not None:
        return existing
    created = PairwiseHandle(
        handle="vh_" + secrets.token_urlsafe(18), agency_id=agency_id, vault_id=code.vault_id
    )
    session.add(created)
    session.flush()
    return created


@dataclass(frozen=True)
class OpenedRequest:
    request: AccessRequest
    handle: PairwiseHandle
    auth_req_id: str  # handed to a CIBA client once; stored only as a keyed hash

    def __repr__(self) -> str:
        return f"OpenedRequest(request={self.request.id}, auth_req_id=<hidden>)"


def open_request(
    session: Session, config: GrantsConfig, keys: KeyProvider, *, agency: Agency,
    client_id: str, login_hint: str | None, authorization_details: str | None,
    practitioner: dict[str, str], decide_seconds: int,
    practitioner_id: uuid.UUID | None = None, notifier: Notifier | None = None,
) -> OpenedRequest:  # fmt: skip
    """Ask a young person: the one policy path for every request, whether an agency's
    system sent it (CIBA Core 1.0, section 7.1) or a practitioner filled in the form.

    ``authorization_details`` is checked against the agency's registered purposes and
    longest duration (RFC 9396, ``rfc9396.parse``) *before* the login hint is resolved,
    so bad input never uses up the young person's code. The request, its
    ``request:received`` entry in the young person's log and the message telling them
    (through ``notifier``, into the outbox) land together."""
    details = rfc9396.parse(authorization_details, agency)
    handle = resolve_login_hint(session, config, agency.id, login_hint)
    auth_req_id = secrets.token_urlsafe(32)
    now = utcnow()
    request = AccessRequest(
        auth_req_hash=config.hash("auth-req", auth_req_id), client_id=client_id,
        agency_id=agency.id, vault_id=handle.vault_id, details=details,
        practitioner=practitioner, practitioner_id=practitioner_id, created_at=now,
        decide_by=now + timedelta(seconds=decide_seconds),
        poll_interval=config.poll_interval_seconds,
    )  # fmt: skip
    session.add(request)
    session.flush()
    audit.append(
        session, keys, handle.vault_id.hex,
        practitioner_actor(practitioner, agency.name, details["purpose"], None),
        "request:received", object_type="access_request", object_id=request.id.hex,
    )  # fmt: skip
    if notifier is not None:
        who = str(practitioner.get("name") or "A worker")
        notifier.young_person(session, handle.vault_id.hex, messages.new_request(agency.name, who))
    return OpenedRequest(request=request, handle=handle, auth_req_id=auth_req_id)


# -- requests and decisions -----------------------------------------------------------------------
def _agency_name(session: Session, agency_id: uuid.UUID) -> str:
    agency = repo.get_agency(session, agency_id)
    return agency.name if agency else "an agency"


def request_status(request: AccessRequest, now: datetime) -> str:
    if request.status == "pending" and now >= request.decide_by:
        return "lapsed"
    return request.status


def _request_public(session: Session, request: AccessRequest, now: datetime) -> RequestPublic:
    details = request.details
    agency = _agency_name(session, request.agency_id)
    return RequestPublic(
        id=request.id, status=request_status(request, now),
        summary=wording.request_summary(
            request.practitioner, agency, details, details["duration_days"]
        ),
        agency=agency, practitioner=practitioner_public(request.practitioner),
        purpose=details["purpose"], actions=details["actions"], categories=details["categories"],
        duration_days=details["duration_days"], record_ids=details.get("record_ids"),
        created_at=request.created_at, decide_by=request.decide_by, decided_at=request.decided_at,
    )  # fmt: skip


def list_requests(session: Session, vault: Vault) -> list[RequestPublic]:
    now = utcnow()
    return [_request_public(session, r, now) for r in repo.requests_of_vault(session, vault.id)]


def _pending(session: Session, vault: Vault, request_id: uuid.UUID) -> AccessRequest:
    request = repo.lock_request(session, vault.id, request_id)
    if request is None:
        raise NotFound("We could not find that request.")
    status = request_status(request, utcnow())
    if status != "pending":
        raise Conflict(f"This request is already {status}. Nothing was changed.")
    return request


def approve(
    session: Session, services: vault_service.VaultServices, actor: Actor, vault: Vault,
    request_id: uuid.UUID, body: ApproveBody, *, notifier: Notifier | None = None,
) -> GrantPublic:  # fmt: skip
    """Say yes, perhaps to less: fewer categories and a shorter time only (never more).
    The practitioner (and their agency's system) are told, without what was shared."""
    request = _pending(session, vault, request_id)
    asked = request.details
    now = utcnow()
    categories = asked["categories"]
    if body.categories is not None:
        narrowed = sorted(set(body.categories))
        if not narrowed or not set(narrowed) <= set(asked["categories"]):
            raise InvalidInput("You can only keep some of the things they asked for, not add more.")
        categories = narrowed
    expires_at = request.created_at + timedelta(days=asked["duration_days"])
    if body.expires_at is not None:
        chosen = body.expires_at
        if chosen.tzinfo is None:
            raise InvalidInput("expires_at needs a time zone.")
        if chosen <= now or chosen > expires_at:
            raise InvalidInput("The end date must be after now and no later than they asked for.")
        expires_at = chosen
    request.status, request.decided_at = "approved", now
    grant = Grant(
        request_id=request.id, vault_id=vault.id, agency_id=request.agency_id,
        client_id=request.client_id, categories=categories, actions=asked["actions"],
        record_ids=asked.get("record_ids"), purpose=asked["purpose"],
        practitioner=request.practitioner, practitioner_id=request.practitioner_id,
        created_at=now, expires_at=expires_at,
    )  # fmt: skip
    session.add_all([request, grant])
    session.flush()
    audit.append(session, services.keyring.provider, vault.id.hex, actor, "grant:created",
                 object_type="grant", object_id=grant.id.hex)  # fmt: skip
    if notifier is not None:
        notifier.decision_or_expiry(session, request.practitioner, request.agency_id,
                                    messages.decision(reference(request), "approved"))  # fmt: skip
    return grant_public(session, grant, now)


def _decline_ctx(request: AccessRequest) -> FieldContext:
    return FieldContext(request.vault_id, "access_request", request.id, "decline_reason", 1)


def decline_reason(
    session: Session, services: vault_service.VaultServices, request: AccessRequest
) -> str | None:
    """The young person's reason for saying no, while their vault (and its key) exists.
    No page or API shows it yet: it is kept, sealed, so that it is not lost."""
    if request.decline_reason_sealed is None:
        return None
    return services.keyring.open_text(session, _decline_ctx(request), request.decline_reason_sealed)


def decline(
    session: Session, services: vault_service.VaultServices, actor: Actor, vault: Vault,
    request_id: uuid.UUID, body: DeclineBody, *, notifier: Notifier | None = None,
) -> RequestPublic:  # fmt: skip
    request = _pending(session, vault, request_id)
    now = utcnow()
    request.status, request.decided_at = "declined", now
    if body.reason is not None:
        request.decline_reason_sealed = services.keyring.seal_text(
            session, _decline_ctx(request), body.reason
        )
    session.add(request)
    session.flush()
    audit.append(session, services.keyring.provider, vault.id.hex, actor, "request:declined",
                 object_type="access_request", object_id=request.id.hex)  # fmt: skip
    if notifier is not None:  # the decline reason is the young person's own: never sent
        notifier.decision_or_expiry(session, request.practitioner, request.agency_id,
                                    messages.decision(reference(request), "declined"))  # fmt: skip
    return _request_public(session, request, now)


# -- grants ------------
def grant_public(session: Session, grant: Grant, now: datetime) -> GrantPublic:
    agency = _agency_name(session, grant.agency_id)
    days = max(1, round((grant.expires_at - grant.created_at).total_seconds() / 86400))
    details = {"actions": grant.actions, "categories": grant.categories, "purpose": grant.purpose}
    return GrantPublic(
        id=grant.id, summary=wording.grant_summary(grant.practitioner, agency, details, days),
        agency=agency, practitioner=practitioner_public(grant.practitioner), purpose=grant.purpose,
        actions=grant.actions, categories=grant.categories, lawful_basis=grant.lawful_basis,
        created_at=grant.created_at, expires_at=grant.expires_at, revoked_at=grant.revoked_at,
        last_used_at=grant.last_used_at, active=grant.is_active(now),
    )  # fmt: skip


def list_grants(session: Session, vault: Vault) -> list[GrantPublic]:
    now = utcnow()
    return [grant_public(session, g, now) for g in repo.grants_of_vault(session, vault.id)]


def revoke_grant(
    session: Session, keys: Any, actor: Actor, grant: Grant, revoked_by: str,
    notifier: Notifier | None = None,
) -> None:  # fmt: skip
    """Stop sharing: the grant ends now, every token from it dies, and it is logged, all
    in the caller's transaction (SECURITY.md: together or not at all). The practitioner
    and their agency's system are told it ended, unless the agency ended it itself."""
    now = utcnow()
    if grant.revoked_at is None:
        grant.revoked_at, grant.revoked_by = now, revoked_by
        session.add(grant)
        if notifier is not None and revoked_by != "client":
            notifier.decision_or_expiry(session, grant.practitioner, grant.agency_id,
                                        messages.expiry(reference(grant), "access"))  # fmt: skip
    repo.revoke_tokens_of_grant(session, grant.id, now)
    session.flush()
    audit.append(session, keys, grant.vault_id.hex, actor, "grant:revoked",
                 object_type="grant", object_id=grant.id.hex)  # fmt: skip


EMERGENCY_CANNOT_STOP = (
    "Emergency access cannot be stopped here. It ends by itself, and someone from outside "
    "checks it was right. Nothing was changed."
)


def refuse_stopping_emergency(grant: Grant) -> None:
    """Child-protection access does not rest on consent, so withdrawing consent cannot end
    it (UK GDPR Art. 6(1)(e) and 7(3)): it ends at its time, and is reviewed."""
    if grant.lawful_basis != "consent":
        raise PermissionDenied(EMERGENCY_CANNOT_STOP)


def revoke_by_young_person(
    session: Session, services: vault_service.VaultServices, actor: Actor, vault: Vault,
    grant_id: uuid.UUID, *, notifier: Notifier | None = None,
) -> GrantPublic:  # fmt: skip
    grant = repo.lock_grant(session, grant_id)
    if grant is None or grant.vault_id != vault.id:
        raise NotFound("We could not find that.")
    if not grant.is_active(utcnow()):
        raise Conflict("This has already stopped. Nothing was changed.")
    refuse_stopping_emergency(grant)
    revoke_grant(session, services.keyring.provider, actor, grant, "young_person", notifier)
    return grant_public(session, grant, utcnow())


def erase_young_person(
    session: Session, services: vault_service.VaultServices, actor: Actor, person: YoungPerson,
    *, notifier: Notifier | None = None,
) -> None:  # fmt: skip
    """Account deletion: end every grant first (their tokens die), then crypto-shred."""
    vault = vault_service.vault_of(session, person)
    for grant in repo.grants_of_vault(session, vault.id):
        if grant.is_active(utcnow()):
            revoke_grant(session, services.keyring.provider, actor, grant, "erasure", notifier)
    vault_service.erase(session, services, actor, person)


# -- Storykeep's own practitioner pages -----------------------------------------------------------
def request_from_page(
    session: Session, config: GrantsConfig, keys: KeyProvider, *, agency: Agency,
    practitioner_id: uuid.UUID, practitioner: dict[str, str], form: PageRequestForm,
    notifier: Notifier | None = None,
) -> AccessRequest:  # fmt: skip
    """A practitioner's request form, asked through ``open_request`` exactly as an agency
    system's CIBA request is (client ``PAGES_CLIENT_ID``). The form's own checks only give
    friendlier words; RFC 9396's rules still decide, and a code is used up only when
    everything else is right."""
    categories = sorted(set(form.categories))
    if not categories:
        raise InvalidInput("Choose at least one kind of record.")
    if not set(categories) <= set(GRANT_CATEGORIES):
        raise InvalidInput("Choose kinds of record from the list.")
    if form.purpose not in agency.purposes:
        raise InvalidInput("Choose a purpose from the list.")
    if form.days is None or not 1 <= form.days <= agency.max_duration_days:
        raise InvalidInput(f"Choose a number of days from 1 to {agency.max_duration_days}.")
    if form.write and "my_story" in categories:
        raise InvalidInput(
            "Nobody can add to a young person's own story. Untick 'Shared story' or "
            "'Also add records'."
        )
    if not form.connection_code.strip():
        raise InvalidInput("Enter the connection code the young person gave you.")
    details = {
        "type": rfc9396.RECORDS_TYPE, "actions": ["read", "write"] if form.write else ["read"],
        "categories": categories, "purpose": form.purpose, "duration_days": form.days,
    }  # fmt: skip
    try:
        opened = open_request(
            session, config, keys, agency=agency, client_id=PAGES_CLIENT_ID,
            login_hint=form.connection_code, authorization_details=json.dumps([details]),
            practitioner=practitioner, decide_seconds=config.default_decide_seconds,
            practitioner_id=practitioner_id, notifier=notifier,
        )  # fmt: skip
    except UnknownUserIdError:
        raise InvalidInput(
            "That connection code did not work. It may be mistyped, used already or out of "
            "date. Ask the young person for a new one."
        ) from None
    except OAuth2Error as exc:
        raise InvalidInput(f"Please check the form: {exc.description}.") from None
    return opened.request


def _practitioner_grant_view(
    grant: Grant, reference: str | None, now: datetime
) -> PractitionerGrantView:
    return PractitionerGrantView(
        id=grant.id, reference=reference, purpose=grant.purpose, actions=grant.actions,
        categories=grant.categories, expires_at=grant.expires_at, revoked_at=grant.revoked_at,
        active=grant.is_active(now),
        summary=wording.practitioner_summary(grant.actions, grant.categories, grant.purpose, None),
    )  # fmt: skip


def _practitioner_request_view(
    request: AccessRequest, grant: Grant | None, reference: str | None, now: datetime
) -> PractitionerRequestView:
    details = request.details
    status = request_status(request, now)
    return PractitionerRequestView(
        id=request.id, status=status, status_label=wording.PRACTITIONER_STATUS[status],
        summary=wording.practitioner_summary(
            details["actions"], details["categories"], details["purpose"],
            details["duration_days"],
        ),
        reference=reference, purpose=details["purpose"], actions=details["actions"],
        categories=details["categories"], duration_days=details["duration_days"],
        created_at=request.created_at, decide_by=request.decide_by,
        decided_at=request.decided_at, grant_id=grant.id if grant else None,
        grant_active=grant.is_active(now) if grant else False,
        grant_expires_at=grant.expires_at if grant else None,
    )  # fmt: skip


def practitioner_home(
    session: Session, practitioner_id: uuid.UUID, agency_id: uuid.UUID
) -> PractitionerHome:
    """A practitioner's own requests (newest first) and their grants still active."""
    now = utcnow()
    requests = repo.requests_of_practitioner(session, practitioner_id)
    grants = repo.grants_for_requests(session, [r.id for r in requests])
    active = [g for g in repo.grants_of_practitioner(session, practitioner_id) if g.is_active(now)]
    handles = repo.handles_for(
        session, agency_id, [r.vault_id for r in requests] + [g.vault_id for g in active]
    )
    return PractitionerHome(
        requests=[
            _practitioner_request_view(r, grants.get(r.id), handles.get(r.vault_id), now)
            for r in requests
        ],
        grants=[_practitioner_grant_view(g, handles.get(g.vault_id), now) for g in active],
    )


def renewal_form(
    session: Session, practitioner_id: uuid.UUID, agency: Agency, request_id: uuid.UUID
) -> PageRequestForm:
    """Ask again, pre-filled from the old grant: what the young person last agreed to
    (after any narrowing), for as long as it last ran, addressed by the agency's own
    reference for them, so no new connection code is needed. Nothing is sent until the
    practitioner checks it and presses send, and the young person decides afresh."""
    request = repo.request_of_practitioner(session, practitioner_id, request_id)
    if request is None or request.agency_id != agency.id:
        raise NotFound("We could not find that request.")
    handle = repo.handle_for(session, agency.id, request.vault_id)
    if handle is None:
        raise NotFound("We could not find that request.")
    grant = repo.grant_for_request(session, request.id)
    if grant is not None:
        categories, actions = list(grant.categories), list(grant.actions)
        days = max(1, round((grant.expires_at - grant.created_at).total_seconds() / 86400))
    else:
        asked = request.details
        categories, actions = list(asked["categories"]), list(asked["actions"])
        days = int(asked.get("duration_days", 30))
    purpose = request.details.get("purpose", "")
    return PageRequestForm(
        connection_code=handle.handle, categories=categories,
        purpose=purpose if purpose in agency.purposes else "",
        days=min(days, agency.max_duration_days), write="write" in actions,
    )  # fmt: skip


def practitioner_request(
    session: Session, practitioner_id: uuid.UUID, agency_id: uuid.UUID, request_id: uuid.UUID
) -> PractitionerRequestView:
    """One of the practitioner's own requests; anyone else's is not found."""
    request = repo.request_of_practitioner(session, practitioner_id, request_id)
    if request is None or request.agency_id != agency_id:
        raise NotFound("We could not find that request.")
    handle = repo.handle_for(session, agency_id, request.vault_id)
    grant = repo.grant_for_request(session, request.id)
    return _practitioner_request_view(request, grant, handle.handle if handle else None, utcnow())


def practitioner_grant_view(session: Session, grant: Grant) -> PractitionerGrantView:
    handle = repo.handle_for(session, grant.agency_id, grant.vault_id)
    return _practitioner_grant_view(grant, handle.handle if handle else None, utcnow())
