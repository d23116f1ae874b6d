"""The session cookie: Secure, HttpOnly, SameSite=Lax (SECURITY.md, "People and sessions")."""

from __future__ import annotations

from fastapi import Response

from app.deps import SESSION_COOKIE
from app.settings import Settings


def set_session_cookie(response: Response, settings: Settings, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_max_hours * 3600,
        path="/",
        secure=True,
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
