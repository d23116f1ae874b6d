"""Public shapes of grants data."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel


class ConnectionCodePublic(SQLModel):
    id: uuid.UUID
    code: str
    created_at: datetime
    expires_at: datetime


class PractitionerPublic(SQLModel):
    name: str
    role: str


class RequestPublic(SQLModel):
    id: uuid.UUID
    status: str  # pending | approved | declined | lapsed
    summary: str
    agency: str
    practitioner: PractitionerPublic
    purpose: str
    actions: list[str]
    categories: list[str]
    duration_days: int
    record_ids: list[str] | None
    created_at: datetime
    decide_by: datetime
    decided_at: datetime | None


class ApproveBody(SQLModel):
    """Both fields can only narrow what was asked for."""

    categories: list[str] | None = Field(default=None, max_length=10)
    expires_at: datetime | None = None


class DeclineBody(SQLModel):
    reason: str | None = Field(default=None, max_length=500)


class GrantPublic(SQLModel):
    id: uuid.UUID
    summary: str
    agency: str
    practitioner: PractitionerPublic
    purpose: str
    actions: list[str]
    categories: list[str]
    lawful_basis: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    active: bool


def practitioner_public(data: dict[str, Any]) -> PractitionerPublic:
    return PractitionerPublic(name=str(data.get("name", "")), role=str(data.get("role", "")))


# -- Storykeep's own practitioner pages -----------------------------------------------------------
class PageRequestForm(SQLModel):
    """The practitioner's request form, as typed. Checked with people-friendly messages,
    then by the same RFC 9396 rules as an agency system's request."""

    connection_code: str = Field(max_length=100)
    categories: list[str] = Field(default_factory=list, max_length=10)
    purpose: str = Field(max_length=64)
    days: int | None = None
    write: bool = False


class PractitionerRequestView(SQLModel):
    """One of a practitioner's own requests, as their pages show it."""

    id: uuid.UUID
    status: str  # pending | approved | declined | lapsed
    status_label: str  # Waiting | Yes | No | Lapsed
    summary: str
    reference: str | None  # the agency's pairwise handle for the young person
    purpose: str
    actions: list[str]
    categories: list[str]
    duration_days: int
    created_at: datetime
    decide_by: datetime
    decided_at: datetime | None
    grant_id: uuid.UUID | None = None
    grant_active: bool = False
    grant_expires_at: datetime | None = None


class PractitionerGrantView(SQLModel):
    """A grant made for this practitioner: what it covers and until when. No content."""

    id: uuid.UUID
    summary: str
    reference: str | None
    purpose: str
    actions: list[str]
    categories: list[str]
    expires_at: datetime
    revoked_at: datetime | None
    active: bool

    @property
    def can_read(self) -> bool:
        return "read" in self.actions

    @property
    def can_write(self) -> bool:
        return "write" in self.actions

    @property
    def record_categories(self) -> list[str]:
        return [c for c in self.categories if c != "my_story"]

    @property
    def story(self) -> bool:
        return "my_story" in self.categories


class PractitionerHome(SQLModel):
    requests: list[PractitionerRequestView]
    grants: list[PractitionerGrantView]  # active ones only
