"""Request and response shapes that belong to the web layer (sign-in, account)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel


class Credentials(SQLModel):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1024)


class PasswordConfirm(SQLModel):
    password: str = Field(min_length=1, max_length=1024)


class SessionPublic(SQLModel):
    csrf_token: str
    expires_at: datetime


class AccountPublic(SQLModel):
    id: uuid.UUID
    username: str
    created_at: datetime
