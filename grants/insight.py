"""Insight for organisations: aggregates only, per agency, never about one young person.

Small numbers are protected by statistical disclosure control, as the Scottish
Government does for its official statistics ("Producing official statistics:
confidentiality and data management", gov.scot, on statistical disclosure control) and as
the ONS sets out in its "Statistical disclosure control policy" and in the Government
Statistical Service's guidance on tables from administrative sources: suppress small
cells (primary suppression), then suppress enough further cells (secondary, or
complementary, suppression) that no suppressed cell can be worked back from the cells
shown and a known total. The ICO's anonymisation guidance asks the same of aggregates.

* Any count under 5 is shown as "fewer than 5" (``FEWER_THAN``).
* The approval, narrowing and refusal shares split one whole (the decided requests, 100%),
  so they are suppressed as a group (``shown_shares``): any share of fewer than 5 people
  is suppressed, and then the next smallest, until at least two are suppressed and those
  suppressed together stand for 5 people or more. Otherwise 60% approved and 25% narrowed
  would give away 15% declined, and 100% approved would give away that nobody declined.
* The revocation share has an unshown complement (grants not revoked), so it is shown
  only when both the revoked and the kept grants are 5 or more.
* A suppressed share says "fewer than 5" when the whole group is fewer than 5 (then every
  cell is), and otherwise ``HIDDEN``, whether it is small itself or was suppressed to
  protect another: the same words for both, so nobody can tell which is the small one.

What is counted (all from the grants tables, no content):
* requests made; median time from request to decision (approved or declined);
* the share of decided requests approved as asked, approved but narrowed (fewer
  categories or a shorter time), and declined; the share of grants revoked early;
* emergency uses (grants whose lawful basis is not consent) and the median time from an
  emergency access to its independent review, among those reviewed.

A median is shown only when it is the median of 5 or more cases: otherwise it is
"fewer than 5" (none at all: null), since the median of one or two is one person's time.

Not covered: comparing two reports made at different times (differencing over time) can
still narrow down what changed in between; reports are for the agency and the operator.
"""

from __future__ import annotations

import statistics
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session, col, select

from grants.emergency import EMERGENCY_TYPE
from grants.models import AccessRequest, Agency, EmergencyAccess, Grant
from vault.errors import NotFound

SUPPRESS_BELOW = 5
FEWER_THAN = "fewer than 5"


def shown_count(count: int) -> int | str:
    return count if count >= SUPPRESS_BELOW else FEWER_THAN


HIDDEN = "hidden (small numbers)"


def shown_shares(counts: dict[str, int]) -> dict[str, float | str]:
    """Percentages (one decimal place) of cells that together make one whole, with
    primary and complementary suppression (see the module docstring).

    Primary: every cell under 5. Complementary: while any cell is suppressed, suppress
    the next smallest shown cell until at least two are suppressed and the suppressed
    cells add up to 5 or more, so 100% minus the shown shares never pins down a small
    cell. Ties are broken by name, so the same counts always give the same table."""
    total = sum(counts.values())
    if total < SUPPRESS_BELOW:
        return dict.fromkeys(counts, FEWER_THAN)
    hidden = {key for key, n in counts.items() if n < SUPPRESS_BELOW}
    for key in sorted(counts, key=lambda k: (counts[k], k)):
        if not hidden or (len(hidden) >= 2 and sum(counts[k] for k in hidden) >= SUPPRESS_BELOW):
            break
        hidden.add(key)
    return {
        key: HIDDEN if key in hidden else round(100 * n / total, 1) for key, n in counts.items()
    }


def shown_rate(count: int, total: int) -> float | str:
    """``count`` as a percentage of ``total``, suppressed when the count or the rest
    (``total - count``, which 100% minus the rate would give away) is under 5."""
    return shown_shares({"counted": count, "rest": total - count})["counted"]


def shown_median(hours: list[float]) -> float | str | None:
    """Hours to one decimal place; suppressed for fewer than 5 cases; None for none."""
    if not hours:
        return None
    return round(statistics.median(hours), 1) if len(hours) >= SUPPRESS_BELOW else FEWER_THAN


@dataclass(frozen=True)
class AgencyInsight:
    agency: str
    requests_made: int | str
    median_hours_to_decision: float | str | None
    approved_as_asked_percent: float | str
    narrowed_percent: float | str
    declined_percent: float | str
    revoked_percent: float | str
    emergency_uses: int | str
    median_hours_to_emergency_review: float | str | None

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _narrowed(request: AccessRequest, grant: Grant) -> bool:
    asked = request.details
    asked_end = request.created_at + timedelta(days=int(asked["duration_days"]))
    fewer = set(grant.categories) < set(asked["categories"])
    shorter = grant.expires_at < asked_end - timedelta(minutes=1)
    return fewer or shorter


def agency_insight(session: Session, agency: Agency) -> AgencyInsight:
    every_request = session.exec(select(AccessRequest).where(AccessRequest.agency_id == agency.id))
    # Emergency access is not a request the young person decides: it is counted apart
    # (emergency uses), never as an approval, a narrowing or a quick decision.
    requests = [r for r in every_request if r.details.get("type") != EMERGENCY_TYPE]
    grants_by_request: dict[uuid.UUID, Grant] = {
        g.request_id: g for g in session.exec(select(Grant).where(Grant.agency_id == agency.id))
    }
    decided = [r for r in requests if r.status in {"approved", "declined"} and r.decided_at]
    hours = [
        (r.decided_at - r.created_at).total_seconds() / 3600
        for r in decided
        if r.decided_at is not None
    ]
    approved = [r for r in decided if r.status == "approved"]
    narrowed = sum(
        1 for r in approved if r.id in grants_by_request and _narrowed(r, grants_by_request[r.id])
    )
    declined = len(decided) - len(approved)
    consent_grants = [g for g in grants_by_request.values() if g.lawful_basis == "consent"]
    revoked = sum(1 for g in consent_grants if g.revoked_at is not None)
    emergency = sum(1 for g in grants_by_request.values() if g.lawful_basis != "consent")
    reviewed = session.exec(
        select(EmergencyAccess).where(
            EmergencyAccess.agency_id == agency.id,
            col(EmergencyAccess.reviewed_at).is_not(None),
        )
    )
    review_hours = [
        (e.reviewed_at - e.created_at).total_seconds() / 3600
        for e in reviewed
        if e.reviewed_at is not None
    ]
    # Approved as asked, narrowed and declined split the decided requests (100%).
    decisions = shown_shares(
        {"approved": len(approved) - narrowed, "narrowed": narrowed, "declined": declined}
    )
    return AgencyInsight(
        agency=agency.name,
        requests_made=shown_count(len(requests)),
        median_hours_to_decision=shown_median(hours),
        approved_as_asked_percent=decisions["approved"],
        narrowed_percent=decisions["narrowed"],
        declined_percent=decisions["declined"],
        revoked_percent=shown_rate(revoked, len(consent_grants)),
        emergency_uses=shown_count(emergency),
        median_hours_to_emergency_review=shown_median(review_hours),
    )


def all_agencies(session: Session) -> list[AgencyInsight]:
    agencies = session.exec(select(Agency).order_by(Agency.name))
    return [agency_insight(session, agency) for agency in agencies]


def insight_for_agency(session: Session, agency_id: uuid.UUID) -> AgencyInsight:
    """An agency's own aggregates, for its authenticated system: never another's."""
    agency = session.get(Agency, agency_id)
    if agency is None:
        raise NotFound("No such agency.")
    return agency_insight(session, agency)
