"""The one place where errors become responses (STYLE.md, practice 8).

JSON API paths get ``{"error": code, "detail": message}``; pages get a plain page or a
redirect to sign-in. Messages are the errors' own people-safe text. Nothing echoes the
input back, and unexpected errors log only their type and path, so no story or record
text can reach a log, an error page or a trace.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from authlib.oauth2.base import OAuth2Error
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.auth.service import SessionExpired
from app.deps import SESSION_COOKIE
from app.errors import CsrfFailed, NotSignedIn, is_page_path
from app.web_session import clear_session_cookie
from vault.errors import (
    AuthenticationFailed,
    Conflict,
    IntegrityFailure,
    InvalidInput,
    KeyUnavailable,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    StepUpRequired,
    StorykeepError,
    UnsupportedMediaType,
)

log = logging.getLogger("storykeep.errors")

# Most specific first: the first isinstance match wins.
STATUS_AND_CODE: list[tuple[type[StorykeepError], int, str]] = [
    (StepUpRequired, 401, "step_up_required"),
    (NotSignedIn, 401, "not_signed_in"),
    (AuthenticationFailed, 401, "authentication_failed"),
    (CsrfFailed, 403, "csrf_failed"),
    (PermissionDenied, 403, "insufficient_scope"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (IntegrityFailure, 409, "integrity_failure"),
    (PayloadTooLarge, 413, "payload_too_large"),
    (UnsupportedMediaType, 415, "unsupported_media_type"),
    (InvalidInput, 422, "invalid_input"),
    (RateLimited, 429, "rate_limited"),
    (KeyUnavailable, 503, "key_unavailable"),
]


def status_for(exc: StorykeepError) -> tuple[int, str]:
    for cls, status, code in STATUS_AND_CODE:
        if isinstance(exc, cls):
            return status, code
    return 400, "bad_request"


def _is_page(request: Request) -> bool:
    return is_page_path(request.url.path)


def _signin_page_for(path: str) -> str:
    """Practitioners and advocates have their own sign-in pages and sessions."""
    for prefix in ("/practitioner", "/advocate"):
        if path == prefix or path.startswith(prefix + "/"):
            return prefix + "/signin"
    return "/signin"


def _page(request: Request, status: int, message: str) -> Response:
    templates = request.app.state.templates
    return templates.TemplateResponse(
        request, "error.html", {"message": message, "status": status}, status_code=status
    )


async def handle_domain_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StorykeepError):  # registered for this type only
        raise exc
    status, code = status_for(exc)
    message = exc.message
    if isinstance(exc, IntegrityFailure | KeyUnavailable):
        # The specific reason (which key, which file) is for the operator, not the client.
        log.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
        message = type(exc).message
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    if _is_page(request):
        signin = _signin_page_for(request.url.path)
        if isinstance(exc, NotSignedIn | AuthenticationFailed) and request.url.path != signin:
            if signin == "/signin" and _timed_out(request, exc):
                return _timeout_redirect(request)
            return RedirectResponse(signin, status_code=303)
        if isinstance(exc, StepUpRequired):
            target = quote(request.url.path, safe="/")
            return RedirectResponse(f"/signin?again=1&next={target}", status_code=303)
        response = _page(request, status, message)
        if headers:
            response.headers.update(headers)
        return response
    return JSONResponse({"error": code, "detail": message}, status_code=status, headers=headers)


async def handle_validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's request validation, and pydantic's own when a route builds a schema from
    form fields (e.g. a note that is only spaces): both are the client's bad input."""
    if not isinstance(exc, RequestValidationError | ValidationError):
        raise exc
    fields = [
        {
            "field": ".".join(str(p) for p in err.get("loc", ()) if p != "body"),
            "problem": err["msg"],
        }
        for err in exc.errors()
    ]
    detail = "; ".join(f"{f['field'] or 'body'}: {f['problem']}" for f in fields)
    if _is_page(request):
        return _page(request, 422, f"Please check what you typed. {detail}")
    return JSONResponse(
        {"error": "invalid_input", "detail": detail, "fields": fields}, status_code=422
    )


async def handle_http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    message = {404: "We could not find that page.", 405: "That is not allowed here."}.get(
        exc.status_code, str(exc.detail)
    )
    if _is_page(request):
        return _page(request, exc.status_code, message)
    return JSONResponse(
        {"error": "http_error", "detail": message},
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def handle_oauth_error(_request: Request, exc: Exception) -> Response:
    """RFC 6749 section 5.2 (and RFC 6750 section 3.1) error bodies, unchanged."""
    if not isinstance(exc, OAuth2Error):
        raise exc
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    return JSONResponse(dict(exc.get_body()), status_code=exc.status_code or 400, headers=headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(OAuth2Error, handle_oauth_error)
    app.add_exception_handler(StorykeepError, handle_domain_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(ValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_error)


def _timed_out(request: Request, exc: Exception) -> bool:
    """A young person's cookie that no longer works: the session ran out while they were
    away (signing out and deleting the account both remove the cookie)."""
    return isinstance(exc, SessionExpired) and bool(request.cookies.get(SESSION_COOKIE))


def _timeout_redirect(request: Request) -> Response:
    """To sign-in with ``timeout=1``, so the page can say why; back here afterwards."""
    target = "/signin?timeout=1"
    if request.method == "GET":
        target += "&next=" + quote(request.url.path, safe="/")
    response = RedirectResponse(target, status_code=303)
    clear_session_cookie(response)
    return response
