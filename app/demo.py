"""Fictional demo data, gentle in tone, for `make run`. No real person is described."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlmodel import Session

from app.auth import practitioners, staff
from app.auth import repository as auth_repo
from app.auth.service import hash_password
from grants import advocates
from grants import repository as grants_repo
from grants import service as grants_service
from vault import repository as repo
from vault import service
from vault.actors import Actor
from vault.errors import NotFound
from vault.schemas import EntryCreate, NoteCreate, RecordCreate

if TYPE_CHECKING:
    from app.container import Services

DEMO_PASSWORD = "demo-password"  # noqa: S105 - printed for the demo on purpose
# The demo practitioner's authenticator secret (RFC 6238, base32). Printed by
# `storykeep demo` so anyone can make a code; real accounts get a random one, shown once.
DEMO_TOTP_SECRET = "STORYKEEPDEMOJOBLOGGSAAAAAAAAAAA"  # noqa: S105 - demo only

DEMO_AGENCIES = [
    # name, purposes, statutory
    ("Example High School", ["education_support", "pastoral_care"], False),
    ("Example Council Social Work", ["care_planning", "child_protection"], True),
]
DEMO_PRACTITIONER = {
    "email": "jo.bloggs@example-high.sch.uk", "name": "Jo Bloggs",
    "role": "guidance teacher", "agency": "Example High School",
}  # fmt: skip
DEMO_ADVOCATE = {"email": "dee@advocacy.example", "name": "Dee Advocate"}

DEMO_PEOPLE = {
    "sky": {
        "story": [
            (
                "The day I scored at football",
                "We won 3-2. Coach said I was brave in goal as well. "
                "I want people to know I am good at sport, not just the stuff in my file.",
                True,
            ),
            (
                "Things that help me",
                "Quiet space when I am upset. Being told about changes "
                "early. My gran's phone number in my bag.",
                True,
            ),
            ("Private thoughts", "This one is just for me.", False),
        ],
        "records": [
            RecordCreate(
                agency="Example High School",
                author_name="Jo Bloggs",
                author_role="guidance teacher",
                category="education",
                shanarri=["achieving", "included"],
                title="School report, June",
                body="Sky has settled well into S3. Attendance is up. Sky enjoys PE and art "
                "and has been helping younger pupils at lunch club.",
                occurred_at=datetime(2026, 6, 12, 10, 0, tzinfo=UTC),
            ),
            RecordCreate(
                agency="Example Health Board",
                author_name="Sam Carter",
                author_role="school nurse",
                category="health",
                shanarri=["healthy"],
                title="Health check",
                body="Routine health check. Sky is well. Talked about sleep and screen time.",
                occurred_at=datetime(2026, 9, 3, 14, 30, tzinfo=UTC),
            ),
            RecordCreate(
                agency="Example Council Social Work",
                author_name="Alex Morgan",
                author_role="social worker",
                category="care_plan",
                shanarri=["safe", "nurtured", "respected"],
                title="Care plan review",
                body="Sky wants more say in contact arrangements. Agreed that Sky will chair "
                "part of the next review with support from an advocate.",
                occurred_at=datetime(2026, 10, 20, 11, 0, tzinfo=UTC),
            ),
        ],
        "note": "I did say that, and I want to chair the whole meeting next time.",
    },
    "river": {
        "story": [
            (
                "Moving to my new flat",
                "It is small but it is mine.\nI painted one wall green.",
                True,
            )
        ],
        "records": [
            RecordCreate(
                agency="Example Housing Association",
                author_name="Pat Lee",
                author_role="housing officer",
                category="housing",
                shanarri=["safe", "included"],
                title="Tenancy start",
                body="River has moved into a supported flat. Key worker visits weekly.",
                occurred_at=datetime(2026, 8, 1, 9, 0, tzinfo=UTC),
            )
        ],
        "note": None,
    },
}


def load(session: Session, services: service.VaultServices) -> list[str]:
    """Replace any earlier demo accounts with fresh ones. Returns the usernames."""
    operator = Actor.operator("Storykeep demo loader")
    for username, data in DEMO_PEOPLE.items():
        existing = repo.get_young_person_by_username(session, username)
        if existing is not None:
            grants_service.erase_young_person(session, services, operator, existing)
        person, vault = service.create_young_person(
            session, services, operator, username, hash_password(DEMO_PASSWORD)
        )
        owner = Actor.young_person(person.id, username)
        for title, body, shareable in data["story"]:  # type: ignore[attr-defined]
            service.create_entry(
                session,
                services,
                owner,
                vault,
                EntryCreate(title=title, body=body, shareable=shareable),
            )
        first_record = None
        for record in data["records"]:  # type: ignore[attr-defined]
            added = service.add_record(session, services, operator, vault.id, record)
            first_record = first_record or added
        if data["note"] and first_record is not None:
            service.add_note(
                session,
                services,
                owner,
                vault,
                first_record.id,
                NoteCreate(body=str(data["note"])),
            )
    return list(DEMO_PEOPLE)


@dataclass(frozen=True)
class DemoWorkers:
    practitioner_email: str
    advocate_email: str
    totp_secret: str


def load_workers(session: Session, services: Services) -> DemoWorkers:
    """Agencies, a practitioner (password + the demo TOTP secret) and an advocate whom
    sky invited, so all three roles can be walked through in a browser. Run after
    ``load``; safe to run again."""
    operator = Actor.operator("Storykeep demo loader")
    for name, purposes, statutory in DEMO_AGENCIES:
        if grants_repo.get_agency_by_name(session, name) is None:
            grants_service.add_agency(session, operator, services.keys, name, purposes,
                                      statutory, 90)  # fmt: skip
    practitioner = auth_repo.practitioner_by_email(session, DEMO_PRACTITIONER["email"])
    if practitioner is None:
        practitioner = practitioners.add_practitioner(
            session, services.settings, services.keys, operator,
            email=DEMO_PRACTITIONER["email"], agency_name=DEMO_PRACTITIONER["agency"],
            name=DEMO_PRACTITIONER["name"], role=DEMO_PRACTITIONER["role"],
            password=DEMO_PASSWORD,
        ).practitioner  # fmt: skip
    practitioner.totp_secret_sealed = staff.seal_secret(services.settings, "totp", DEMO_TOTP_SECRET)
    practitioner.totp_last_step = None
    session.add(practitioner)

    sky = repo.get_young_person_by_username(session, "sky")
    if sky is None:
        raise NotFound("Load the demo young people first.")
    vault = service.vault_of(session, sky)
    invite = advocates.make_invite(
        session, services.grants, services.vault, Actor.young_person(sky.id, sky.username),
        vault, advocates.AdvocateInviteCreate(can_stop_sharing=True),
    )  # fmt: skip
    advocate = auth_repo.advocate_by_email(session, DEMO_ADVOCATE["email"])
    if advocate is None:
        advocates.sign_up(
            session, services.settings, services.grants, services.vault,
            DEMO_ADVOCATE["name"], DEMO_ADVOCATE["email"], DEMO_PASSWORD, invite.code,
        )  # fmt: skip
    else:
        advocates.accept_invite(session, services.grants, services.vault, advocate, invite.code)
    session.flush()
    return DemoWorkers(DEMO_PRACTITIONER["email"], DEMO_ADVOCATE["email"], DEMO_TOTP_SECRET)
