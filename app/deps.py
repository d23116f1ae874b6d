"""FastAPI dependencies: services, the request's transaction, and who is signed in."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlmodel import Session

from app.auth import service as auth
from app.auth import staff
from app.auth.models import Advocate, Practitioner, StaffSession, WebSession
from app.container import Services
from app.db import unit_of_work
from app.errors import CsrfFailed, NotSignedIn
from grants.models import Agency
from vault import service as vault_service
from vault.actors import Actor
from vault.models import Vault, YoungPerson
from vault.schemas import AUDIT_CURSOR_MAX

SESSION_COOKIE = "storykeep_session"
# Practitioners and advocates: a separate cookie, so no page mistakes one kind of person
# for another (app/auth/staff.py).
STAFF_COOKIE = "storykeep_staff"
PRESESSION_COOKIE = "storykeep_presession"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# ``?before=`` on every audit trail, API and pages: the seq cursor from ``next_before``.
AuditCursor = Annotated[
    int | None, Query(ge=1, le=AUDIT_CURSOR_MAX, description="seq cursor from next_before")
]


async def get_services(request: Request) -> Services:
    # async: a plain function here would cost every request a trip to the thread pool.
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def db_session(services: ServicesDep) -> Iterator[Session]:
    # scope="function" below: commit happens before the response is sent, so a client
    # never sees success for a change that did not land.
    yield from unit_of_work(services.engine)


DbSession = Annotated[Session, Depends(db_session, scope="function")]


@dataclass(frozen=True)
class SignedInPerson:
    person: YoungPerson
    web_session: WebSession
    vault: Vault
    csrf_token: str

    @property
    def actor(self) -> Actor:
        return Actor.young_person(self.person.id, self.person.username)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _signed_in(request: Request, session: Session, services: Services) -> SignedInPerson:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise NotSignedIn()
    web_session, person = auth.resolve(session, services.settings, token)
    vault = vault_service.vault_of(session, person)
    return SignedInPerson(
        person=person,
        web_session=web_session,
        vault=vault,
        csrf_token=auth.csrf_token(services.settings, web_session),
    )


def api_user(request: Request, session: DbSession, services: ServicesDep) -> SignedInPerson:
    """Cookie session for the JSON API; unsafe methods need the X-CSRF-Token header."""
    user = _signed_in(request, session, services)
    if request.method not in SAFE_METHODS and not auth.csrf_matches(
        user.csrf_token, request.headers.get(CSRF_HEADER)
    ):
        raise CsrfFailed("Missing or wrong X-CSRF-Token header.")
    return user


async def page_form_csrf(request: Request) -> str | None:
    """Parse a posted form once (bounded) and hand back its CSRF field."""
    if request.method in SAFE_METHODS:
        return None
    form = await request.form(max_files=1, max_fields=20)
    value = form.get(CSRF_FIELD)
    return value if isinstance(value, str) else None


def page_user(
    request: Request,
    session: DbSession,
    services: ServicesDep,
    form_csrf: Annotated[str | None, Depends(page_form_csrf)],
) -> SignedInPerson:
    """Cookie session for HTML pages; posted forms need the hidden csrf_token field."""
    user = _signed_in(request, session, services)
    if request.method not in SAFE_METHODS and not auth.csrf_matches(user.csrf_token, form_csrf):
        raise CsrfFailed()
    return user


ApiUser = Annotated[SignedInPerson, Depends(api_user)]
PageUser = Annotated[SignedInPerson, Depends(page_user)]
FormCsrf = Annotated[str | None, Depends(page_form_csrf)]


# -- practitioners and advocates ----------------------------------------------------------------
@dataclass(frozen=True)
class SignedInPractitioner:
    practitioner: Practitioner
    agency: Agency
    staff_session: StaffSession
    csrf_token: str


@dataclass(frozen=True)
class SignedInAdvocate:
    advocate: Advocate
    staff_session: StaffSession
    csrf_token: str


def _staff_session(
    request: Request, session: Session, services: Services, kind: staff.StaffKind,
    form_csrf: str | None,
) -> tuple[StaffSession, str]:  # fmt: skip
    token = request.cookies.get(STAFF_COOKIE)
    if not token:
        raise NotSignedIn()
    staff_session = staff.resolve(session, services.settings, token, kind)
    csrf = staff.csrf_token(services.settings, staff_session)
    if request.method not in SAFE_METHODS and not auth.csrf_matches(csrf, form_csrf):
        raise CsrfFailed()
    return staff_session, csrf


def practitioner_user(
    request: Request,
    session: DbSession,
    services: ServicesDep,
    form_csrf: Annotated[str | None, Depends(page_form_csrf)],
) -> SignedInPractitioner:
    """A practitioner's page session; posted forms need the hidden csrf_token field."""
    staff_session, csrf = _staff_session(request, session, services, "practitioner", form_csrf)
    practitioner = session.get(Practitioner, staff_session.account_id)
    agency = session.get(Agency, practitioner.agency_id) if practitioner else None
    if practitioner is None or agency is None or practitioner.disabled_at is not None:
        raise staff.StaffSessionExpired()
    return SignedInPractitioner(practitioner, agency, staff_session, csrf)


def advocate_user(
    request: Request,
    session: DbSession,
    services: ServicesDep,
    form_csrf: Annotated[str | None, Depends(page_form_csrf)],
) -> SignedInAdvocate:
    """An advocate's page session; posted forms need the hidden csrf_token field."""
    staff_session, csrf = _staff_session(request, session, services, "advocate", form_csrf)
    advocate = session.get(Advocate, staff_session.account_id)
    if advocate is None or advocate.disabled_at is not None:
        raise staff.StaffSessionExpired()
    return SignedInAdvocate(advocate, staff_session, csrf)


PractitionerPage = Annotated[SignedInPractitioner, Depends(practitioner_user)]
AdvocatePage = Annotated[SignedInAdvocate, Depends(advocate_user)]
