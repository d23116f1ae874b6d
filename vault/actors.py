"""Who is doing something. Every service call takes one, and every audit entry names one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    type: str  # "young_person" | "operator" | "practitioner" | "advocate"
    id: str
    label: str
    agency: str | None = None
    purpose: str | None = None
    grant_id: str | None = None

    @classmethod
    def young_person(cls, person_id: uuid.UUID, username: str) -> Actor:
        return cls(type="young_person", id=person_id.hex, label=username)

    @classmethod
    def advocate(cls, advocate_id: uuid.UUID, name: str) -> Actor:
        return cls(type="advocate", id=advocate_id.hex, label=name)

    @classmethod
    def operator(cls, name: str = "operator (command line)") -> Actor:
        return cls(type="operator", id="cli", label=name)
