"""Insight for organisations: an agency's own aggregates, for its registered system.

``POST /api/v1/agency/insight``. The agency's client authenticates exactly as at the
token endpoint (RFC 7523 ``private_key_jwt``: ``client_assertion_type`` and
``client_assertion`` in an ``application/x-www-form-urlencoded`` body, the assertion's
``aud`` being the issuer or this endpoint's URL; or HTTP Basic for a client the operator
allowed a secret). It is a read, but POST, because a one-time signed assertion belongs
in a request body, not in a URL that proxies and logs keep (RFC 7523 section 2.2; RFC
9700 section 4.3 on credentials in URLs). The answer holds counts and rates only, small
numbers suppressed (grants/insight.py), and only for the client's own agency.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.deps import DbSession
from app.routers.oauth import Client
from grants import insight

router = APIRouter(prefix="/api/v1/agency", tags=["agencies"])


@router.post("/insight")
def agency_insight(client: Client, db: DbSession) -> JSONResponse:
    """Requests made, median hours to a decision, rates of approval, narrowing, refusal
    and revocation, emergency uses and the median hours to their review. Any count under
    5 is "fewer than 5"."""
    body = insight.insight_for_agency(db, client.agency_id).as_dict()
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
