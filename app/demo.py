"""Fictional demo data, gentle in tone, for `make run`. No real person is described."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session

from app.auth.service import hash_password
from grants import service as grants_service
from vault import repository as repo
from vault import service
from vault.actors import Actor
from vault.schemas import EntryCreate, NoteCreate, RecordCreate

DEMO_PASSWORD = "demo-password"  # noqa: S105 - printed for the demo on purpose

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
            added = service.add_record(session, services, operator, vault, record)
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
