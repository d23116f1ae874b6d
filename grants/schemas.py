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
