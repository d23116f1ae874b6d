"""OAuth endpoints. Each parses the form, authenticates the client in its own committed
transaction (so a used ``jti`` stays used even if the call then fails), and calls one
function of the matching ``grants.oauth`` module. RFC error bodies come back unchanged."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from app.container import Services
from app.db import transaction
from app.deps import DbSession, ServicesDep, client_address, get_services
from app.jobs import notifier_for
from grants.oauth import ciba, client_auth, rfc6749, rfc7009, rfc7662, rfc8414
from grants.oauth.errors import InvalidRequestError
from grants.oauth.rfc7523 import AuthenticatedClient

router = APIRouter(tags=["oauth"])
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
MAX_FIELDS = 20


async def oauth_form(request: Request) -> dict[str, str]:
    """application/x-www-form-urlencoded only; a parameter may appear once (RFC 6749 3.1).

    Parsed here with the standard library: these forms are small and flat, and this runs
    on every OAuth call (the body size is already bounded by the middleware)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise InvalidRequestError(description="send application/x-www-form-urlencoded")
    body = await request.body()
    try:
        pairs = parse_qsl(
            body.decode("ascii"), keep_blank_values=True, max_num_fields=MAX_FIELDS,
            errors="strict",
        )  # fmt: skip
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequestError(
            description="the form is not valid or has too many fields"
        ) from None
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidRequestError(description=f"parameter {key!r} must appear once, as text")
        out[key] = value
    return out


OAuthForm = Annotated[dict[str, str], Depends(oauth_form)]


def _authenticate(
    services: Services, form: dict[str, str], authorization: str | None, url: str, address: str
) -> AuthenticatedClient:
    """Client authentication in its own committed transaction, so a used ``jti`` (and a
    counted failure) stays even if the call then fails."""
    with transaction(services.engine) as session:
        client, _row = client_auth.authenticate_call(
            session, services.settings, services.grants, form, authorization, url, address
        )
        return client


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
async def introspect(request: Request) -> JSONResponse:
    """RFC 7662 introspection. Resource servers call this on every request they serve, so
    client authentication and the token check run as one group-committed job
    (app/group_commit.py); the used ``jti`` commits even when authentication then fails.
    The form is parsed here rather than as a dependency: the same parser, without
    FastAPI's dependency resolution on every call."""
    form = await oauth_form(request)
    services: Services = request.app.state.services
    url = services.settings.issuer.rstrip("/") + rfc8414.INTROSPECTION_PATH  # an allowed aud
    authorization, address = request.headers.get("authorization"), client_address(request)

    token_hash = rfc7662.presented_token_hash(services.grants, form)

    def job(session: Session) -> dict[str, Any]:
        client, row = client_auth.authenticate_call(
            session, services.settings, services.grants, form, authorization, url, address,
            token_hash,
        )  # fmt: skip
        return rfc7662.introspect(services.grants, client, row if token_hash else None)

    return _json(await services.committer.run(job))


@router.post(rfc8414.REVOCATION_PATH)
def revoke(form: OAuthForm, client: Client, db: DbSession, services: ServicesDep) -> Response:
    """RFC 7009 revocation."""
    rfc7009.revoke(db, services.grants, services.keys, client, form)
    return Response(status_code=200, headers=NO_STORE)
