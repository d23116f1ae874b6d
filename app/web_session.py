"""The session cookie: Secure, HttpOnly, SameSite=Lax (SECURITY.md, "People and sessions")."""

from __future__ import annotations

from fastapi import Response

from app.deps import SESSION_COOKIE, STAFF_COOKIE
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


def set_staff_cookie(response: Response, settings: Settings, token: str) -> None:
    """Practitioners' and advocates' cookie: same flags, separate name (app/auth/staff.py)."""
    response.set_cookie(
        STAFF_COOKIE,
        token,
        max_age=settings.session_max_hours * 3600,
        path="/",
        secure=True,
        httponly=True,
        samesite="lax",
    )


def clear_staff_cookie(response: Response) -> None:
    response.delete_cookie(STAFF_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
