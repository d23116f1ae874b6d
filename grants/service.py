"""The grants domain's business logic for operators and young people. No commits."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlmodel import Session

from grants import repository as repo
from grants import wording
from grants.config import GrantsConfig
from grants.models import AccessRequest, Agency, ConnectionCode, Grant, OAuthClient
from grants.schemas import (
    ApproveBody,
    ConnectionCodePublic,
    DeclineBody,
    GrantPublic,
    RequestPublic,
    practitioner_public,
)
from vault import audit
from vault import service as vault_service
from vault.actors import Actor
from vault.crypto import FieldContext
from vault.db_types import utcnow
from vault.errors import Conflict, InvalidInput, NotFound
from vault.models import Vault, YoungPerson

# Crockford-style alphabet: no I, L, O or U, so codes read aloud or typed cleanly.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 16  # 80 bits: not guessable, even without the sign-in throttle


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
        doc = json.loads(raw)
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
    request_id: uuid.UUID, body: ApproveBody,
) -> GrantPublic:  # fmt: skip
    """Say yes, perhaps to less: fewer categories and a shorter time only (never more)."""
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
        practitioner=request.practitioner, created_at=now, expires_at=expires_at,
    )  # fmt: skip
    session.add_all([request, grant])
    session.flush()
    audit.append(session, services.keyring.provider, vault.id.hex, actor, "grant:created",
                 object_type="grant", object_id=grant.id.hex)  # fmt: skip
    return grant_public(session, grant, now)


def decline(
    session: Session, services: vault_service.VaultServices, actor: Actor, vault: Vault,
    request_id: uuid.UUID, body: DeclineBody,
) -> RequestPublic:  # fmt: skip
    request = _pending(session, vault, request_id)
    now = utcnow()
    request.status, request.decided_at, request.decline_reason = "declined", now, body.reason
    session.add(request)
    session.flush()
    audit.append(session, services.keyring.provider, vault.id.hex, actor, "request:declined",
                 object_type="access_request", object_id=request.id.hex)  # fmt: skip
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


def revoke_grant(session: Session, keys: Any, actor: Actor, grant: Grant, revoked_by: str) -> None:
    """Stop sharing: the grant ends now, every token from it dies, and it is logged, all
    in the caller's transaction (SECURITY.md: together or not at all)."""
    now = utcnow()
    if grant.revoked_at is None:
        grant.revoked_at, grant.revoked_by = now, revoked_by
        session.add(grant)
    repo.revoke_tokens_of_grant(session, grant.id, now)
    session.flush()
    audit.append(session, keys, grant.vault_id.hex, actor, "grant:revoked",
                 object_type="grant", object_id=grant.id.hex)  # fmt: skip


def revoke_by_young_person(
    session: Session, services: vault_service.VaultServices, actor: Actor, vault: Vault,
    grant_id: uuid.UUID,
) -> GrantPublic:  # fmt: skip
    grant = repo.lock_grant(session, grant_id)
    if grant is None or grant.vault_id != vault.id:
        raise NotFound("We could not find that.")
    if not grant.is_active(utcnow()):
        raise Conflict("This has already stopped. Nothing was changed.")
    revoke_grant(session, services.keyring.provider, actor, grant, "young_person")
    return grant_public(session, grant, utcnow())


def erase_young_person(
    session: Session, services: vault_service.VaultServices, actor: Actor, person: YoungPerson
) -> None:
    """Account deletion: end every grant first (their tokens die), then crypto-shred."""
    vault = vault_service.vault_of(session, person)
    for grant in repo.grants_of_vault(session, vault.id):
        if grant.is_active(utcnow()):
            revoke_grant(session, services.keyring.provider, actor, grant, "erasure")
    vault_service.erase(session, services, actor, person)
