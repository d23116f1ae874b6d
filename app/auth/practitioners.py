"""Practitioner accounts: the operator adds them; they sign in with a password and a TOTP
code, or through their agency's OpenID Connect provider (``app.auth.oidc``).

An account belongs to one agency. What a practitioner may then ask for and read is
decided by the grants domain, through the same path as an agency's own system.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from app.auth import oidc, staff
from app.auth import repository as repo
from app.auth import service as people
from app.auth.models import Practitioner
from app.settings import Settings
from grants import repository as grants_repo
from grants.models import Agency, AgencyOidc
from grants.oauth.ciba import EMAIL_RE
from vault import audit
from vault.actors import Actor
from vault.errors import Conflict, InvalidInput, NotFound
from vault.keys import KeyProvider
from vault.service import PASSWORD_MAX, PASSWORD_MIN

NAME_MAX = 100
ROLE_MAX = 100


@dataclass(frozen=True)
class NewPractitioner:
    practitioner: Practitioner
    agency: Agency
    # Shown to the operator once, for the practitioner's authenticator app; never stored
    # in clear. None for accounts that sign in only through OpenID Connect.
    totp_secret: str | None

    def __repr__(self) -> str:
        return f"NewPractitioner(email={self.practitioner.email!r}, totp_secret=<hidden>)"

    @property
    def totp_uri(self) -> str | None:
        if self.totp_secret is None:
            return None
        return staff.totp_provisioning_uri(self.totp_secret, self.practitioner.email)


def normalise_email(email: str) -> str:
    cleaned = email.strip().lower()
    if len(cleaned) > 254 or not EMAIL_RE.fullmatch(cleaned):
        raise InvalidInput(f"{email!r} is not an email address.")
    return cleaned


def _name_from_email(email: str) -> str:
    """jo.bloggs@example.org -> "Jo Bloggs", when the operator gives no name."""
    local = email.split("@", 1)[0]
    return " ".join(part.capitalize() for part in local.replace("_", ".").split(".") if part)


def _text(value: str, what: str, limit: int) -> str:
    cleaned = " ".join(value.split())
    if not 1 <= len(cleaned) <= limit:
        raise InvalidInput(f"A {what} needs 1 to {limit} characters.")
    return cleaned


def add_practitioner(
    session: Session, settings: Settings, keys: KeyProvider, actor: Actor, *, email: str,
    agency_name: str, name: str | None, role: str, password: str | None,
) -> NewPractitioner:  # fmt: skip
    """Add a practitioner to a registered agency. With a password, a new TOTP secret is
    made and returned once (RFC 6238; the app stores it sealed). Without one
    (``--oidc-only``), they can sign in only through the agency's OpenID Connect
    provider. Everything is checked before anything is written."""
    cleaned = normalise_email(email)
    agency = grants_repo.get_agency_by_name(session, agency_name.strip())
    if agency is None:
        raise NotFound(f"No agency called {agency_name!r}. Add it with `storykeep agency add`.")
    full_name = _text(name if name is not None else _name_from_email(cleaned), "name", NAME_MAX)
    role = _text(role, "role", ROLE_MAX)
    if password is not None and not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidInput(f"A password needs at least {PASSWORD_MIN} characters.")
    if repo.practitioner_by_email(session, cleaned) is not None:
        raise Conflict(f"There is already a practitioner with the email {cleaned!r}.")
    secret = staff.new_totp_secret() if password is not None else None
    practitioner = Practitioner(
        email=cleaned, name=full_name, role=role, agency_id=agency.id,
        password_hash=people.hash_password(password) if password is not None else None,
        totp_secret_sealed=staff.seal_secret(settings, "totp", secret) if secret else None,
    )  # fmt: skip
    session.add(practitioner)
    session.flush()
    audit.append(session, keys, audit.OPERATOR_CHAIN, actor, "practitioner:added",
                 object_type="practitioner", object_id=practitioner.id.hex)  # fmt: skip
    return NewPractitioner(practitioner=practitioner, agency=agency, totp_secret=secret)


def configure_oidc(
    session: Session, settings: Settings, keys: KeyProvider, actor: Actor, *, agency_name: str,
    issuer: str, client_id: str, client_secret: str,
) -> AgencyOidc:  # fmt: skip
    """Set (or replace) an agency's OpenID Connect provider. The client secret is sealed
    with a key derived from the app secret; it is never stored or printed in clear."""
    agency = grants_repo.get_agency_by_name(session, agency_name.strip())
    if agency is None:
        raise NotFound(f"No agency called {agency_name!r}. Add it with `storykeep agency add`.")
    issuer = issuer.strip()
    if len(issuer) > 300 or not oidc.url_allowed(settings, issuer):
        raise InvalidInput(
            "The issuer must be an https URL (http only to this machine, and not in production)."
        )
    client_id = client_id.strip()
    if not 1 <= len(client_id) <= 200:
        raise InvalidInput("A client id needs 1 to 200 characters.")
    if not 1 <= len(client_secret) <= 1000:
        raise InvalidInput("Give the client secret (1 to 1000 characters) on standard input.")
    sealed = staff.seal_secret(settings, oidc.SECRET_PURPOSE, client_secret)
    config = grants_repo.get_agency_oidc(session, agency.id)
    if config is None:
        config = AgencyOidc(
            agency_id=agency.id, issuer=issuer, client_id=client_id, client_secret_sealed=sealed
        )
    else:
        config.issuer, config.client_id, config.client_secret_sealed = issuer, client_id, sealed
    session.add(config)
    session.flush()
    audit.append(session, keys, audit.OPERATOR_CHAIN, actor, "agency:oidc_configured",
                 object_type="agency", object_id=agency.id.hex)  # fmt: skip
    return config


def sign_in(
    session: Session, settings: Settings, email: str, password: str, code: str, address: str
) -> staff.StaffSignedIn:
    """Password (Argon2id) and a TOTP code (RFC 6238, never the same step twice), throttled
    per account and per address. Every failure gets the same message and is counted."""
    cleaned = email.strip().lower()[:254]
    staff.check_throttle(session, settings, cleaned, address)
    practitioner = repo.practitioner_by_email(session, cleaned)
    password_ok = staff.password_matches(
        practitioner.password_hash if practitioner else None, password
    )
    # The code is looked at only after the right password, so a guessed password cannot
    # use up (or test) the current code.
    if (
        password_ok
        and practitioner is not None
        and practitioner.disabled_at is None
        and staff.accept_totp(settings, practitioner, code)
    ):
        session.add(practitioner)  # the accepted step, so the code cannot be replayed
        return staff.start_session(session, settings, "practitioner", practitioner.id)
    staff.record_failure(session, settings, cleaned, address)
    raise staff.StaffSignInFailed()


def sign_in_with_oidc(
    session: Session, settings: Settings, keys: KeyProvider, agency_id: uuid.UUID,
    claims: dict[str, Any],
) -> staff.StaffSignedIn:  # fmt: skip
    """After ``oidc.finish`` has checked the ID token: the account is found by the verified
    ``email`` claim, in the agency whose provider signed the person in, never another.
    The provider's ``sub`` is bound on first sign-in (Core section 5.7: ``sub`` is the
    stable identifier, an email can be reassigned) and must match every time after."""
    if claims.get("email_verified") is not True:
        raise oidc.OidcSignInFailed(
            "Your organisation has not confirmed your email address, so we cannot match it "
            "to a Storykeep account."
        )
    email = claims.get("email")
    practitioner = (
        repo.practitioner_by_email(session, email)
        if isinstance(email, str) and len(email) <= 254
        else None
    )
    if (
        practitioner is None
        or practitioner.agency_id != agency_id
        or practitioner.disabled_at is not None
    ):
        raise oidc.OidcSignInFailed(
            "Your organisation signed you in, but there is no Storykeep account for you at "
            "this organisation. Ask the people who run Storykeep to add you."
        )
    subject = str(claims["sub"])
    if practitioner.oidc_subject is None:
        practitioner.oidc_subject = subject
        session.add(practitioner)
        session.flush()
        actor = Actor(type="practitioner", id=practitioner.email, label=practitioner.name)
        audit.append(session, keys, audit.OPERATOR_CHAIN, actor, "practitioner:oidc_linked",
                     object_type="practitioner", object_id=practitioner.id.hex)  # fmt: skip
    elif not hmac.compare_digest(practitioner.oidc_subject.encode(), subject.encode()):
        raise oidc.OidcSignInFailed(
            "This Storykeep account is linked to a different account at your organisation. "
            "Ask the people who run Storykeep for help."
        )
    return staff.start_session(session, settings, "practitioner", practitioner.id)
