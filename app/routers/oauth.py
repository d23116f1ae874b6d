"""OAuth endpoints. Each parses the form, authenticates the client in its own committed
transaction (so a used ``jti`` stays used even if the call then fails), and calls one
function of the matching ``grants.oauth`` module. RFC error bodies come back unchanged."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from app.auth import service as auth
from app.container import Services
from app.db import transaction
from app.deps import DbSession, ServicesDep, client_address, get_services
from app.jobs import notifier_for
from grants.oauth import ciba, rfc6749, rfc7009, rfc7523, rfc7662, rfc8414
from grants.oauth.errors import InvalidClientError, InvalidRequestError
from grants.oauth.rfc7523 import AuthenticatedClient

router = APIRouter(tags=["oauth"])
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
MAX_FIELDS = 20


async def oauth_form(request: Request) -> dict[str, str]:
    """application/x-www-form-urlencoded only; a parameter may appear once (RFC 6749 3.1)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise InvalidRequestError(description="send application/x-www-form-urlencoded")
    form = await request.form(max_fields=MAX_FIELDS, max_files=0)
    out: dict[str, str] = {}
    for key, value in form.multi_items():
        if key in out or not isinstance(value, str):
            raise InvalidRequestError(description=f"parameter {key!r} must appear once, as text")
        out[key] = value
    return out


OAuthForm = Annotated[dict[str, str], Depends(oauth_form)]


def _authenticate(
    services: Services, form: dict[str, str], authorization: str | None, url: str, address: str
) -> AuthenticatedClient:
    """Failed client authentications are throttled per address, like sign-ins
    (SECURITY.md: login and token endpoints are rate-limited)."""
    # Agency systems get counters of their own: a school's misconfigured client must never
    # lock its pupils out of signing in from the same network.
    throttle_key, throttle_address = f"oauth-client:{address}", f"oauth-client:{address}"
    try:
        with transaction(services.engine) as session:
            auth.check_throttle(session, services.settings, throttle_key, throttle_address)
            return rfc7523.authenticate(session, services.grants, form, authorization, url)
    except InvalidClientError:
        with transaction(services.engine) as session:
            auth.record_failure(session, services.settings, throttle_key, throttle_address)
        raise


async def oauth_client(
    request: Request, form: OAuthForm, services: Annotated[Services, Depends(get_services)]
) -> AuthenticatedClient:
    endpoint_url = services.settings.issuer.rstrip("/") + request.url.path
    return await run_in_threadpool(
        _authenticate,
        services,
        form,
        request.headers.get("authorization"),
        endpoint_url,
        client_address(request),
    )


Client = Annotated[AuthenticatedClient, Depends(oauth_client)]


def _json(body: dict[str, Any], status_code: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status_code, headers=NO_STORE)


@router.get("/.well-known/oauth-authorization-server")
def metadata(services: ServicesDep) -> JSONResponse:
    """RFC 8414 authorization server metadata."""
    return JSONResponse(rfc8414.metadata(services.settings.issuer))


@router.post(rfc8414.BACKCHANNEL_PATH)
def backchannel(
    form: OAuthForm, client: Client, db: DbSession, services: ServicesDep
) -> JSONResponse:
    """CIBA backchannel authentication request: an agency asks a young person, or opens
    emergency (child protection) access, which is granted at once (grants/emergency.py)."""
    return _json(
        ciba.backchannel_request(
            db,
            services.grants,
            services.keys,
            client,
            form,
            keyring=services.keyring,
            notifier=notifier_for(services),
        )
    )


@router.post(rfc8414.TOKEN_PATH)
def token(form: OAuthForm, client: Client, db: DbSession, services: ServicesDep) -> JSONResponse:
    """CIBA poll (urn:openid:params:grant-type:ciba) and refresh_token."""
    return _json(rfc6749.token(db, services.grants, client, form))


@router.post(rfc8414.INTROSPECTION_PATH)
def introspect(
    form: OAuthForm, client: Client, db: DbSession, services: ServicesDep
) -> JSONResponse:
    """RFC 7662 introspection."""
    return _json(rfc7662.introspect(db, services.grants, client, form))


@router.post(rfc8414.REVOCATION_PATH)
def revoke(form: OAuthForm, client: Client, db: DbSession, services: ServicesDep) -> Response:
    """RFC 7009 revocation."""
    rfc7009.revoke(db, services.grants, services.keys, client, form)
    return Response(status_code=200, headers=NO_STORE)
