"""Aggregates for organisations: the sums are right and small numbers are suppressed."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlmodel import Session
from starlette.testclient import TestClient

from app.container import Services
from grants import insight
from grants.models import AccessRequest, Agency, Grant
from tests.conftest import sign_up
from vault import repository as vault_repo
from vault.db_types import utcnow


def _seed(services: Services, vault_id: uuid.UUID, agency: Agency, outcomes: list[str]) -> None:
    """One request per outcome: approved | narrowed | declined | revoked | pending."""
    now = utcnow()
    with Session(services.engine) as session, session.begin():
        for n, outcome in enumerate(outcomes):
            created = now - timedelta(hours=10)
            request = AccessRequest(
                auth_req_hash=uuid.uuid4().hex, client_id="c", agency_id=agency.id,
                vault_id=vault_id, practitioner={"name": "Jo", "role": "t", "email": "j@x.org"},
                details={"categories": ["education", "health"], "duration_days": 30,
                         "actions": ["read"], "purpose": "education_support"},
                created_at=created, decide_by=created + timedelta(days=7),
                status="pending" if outcome == "pending" else
                ("declined" if outcome == "declined" else "approved"),
                decided_at=None if outcome == "pending" else created + timedelta(hours=n + 1),
            )  # fmt: skip
            session.add(request)
            session.flush()
            if request.status != "approved":
                continue
            session.add(
                Grant(
                    request_id=request.id,
                    vault_id=vault_id,
                    agency_id=agency.id,
                    client_id="c",
                    actions=["read"],
                    purpose="education_support",
                    categories=["education"] if outcome == "narrowed" else ["education", "health"],
                    practitioner=request.practitioner,
                    created_at=created,
                    expires_at=created + timedelta(days=30),
                    revoked_at=now if outcome == "revoked" else None,
                )
            )


def _agency(services: Services, name: str) -> Agency:
    with Session(services.engine) as session, session.begin():
        agency = Agency(name=name, purposes=["education_support"])
        session.add(agency)
        session.flush()
        session.expunge(agency)
        return agency


def _vault_id(services: Services, client: TestClient) -> uuid.UUID:
    sign_up(client, "insightkid")
    with Session(services.engine) as session:
        person = vault_repo.get_young_person_by_username(session, "insightkid")
        assert person is not None
        vault = vault_repo.get_vault_of(session, person.id)
        assert vault is not None
        return vault.id


def test_counts_and_rates_with_enough_numbers(services: Services, client: TestClient) -> None:
    vault_id = _vault_id(services, client)
    agency = _agency(services, "Big School")
    outcomes = ["approved"] * 6 + ["narrowed"] * 5 + ["declined"] * 5 + ["revoked"] * 5
    _seed(services, vault_id, agency, [*outcomes, "pending"])
    with Session(services.engine) as session:
        result = insight.agency_insight(session, agency)
    assert result.requests_made == 22
    decided = 21
    assert result.approved_as_asked_percent == round(100 * 11 / decided, 1)  # 6 + 5 revoked
    assert result.narrowed_percent == round(100 * 5 / decided, 1)
    assert result.declined_percent == round(100 * 5 / decided, 1)
    assert result.revoked_percent == round(100 * 5 / 16, 1)
    # Decisions took 1..21 hours (one per request in order): the median is 11.
    assert result.median_hours_to_decision == 11.0
    assert result.emergency_uses == insight.FEWER_THAN  # zero is a small number too


def test_small_numbers_are_suppressed(services: Services, client: TestClient) -> None:
    vault_id = _vault_id(services, client)
    agency = _agency(services, "Small Club")
    _seed(services, vault_id, agency, ["approved", "declined", "narrowed", "pending"])
    with Session(services.engine) as session:
        [small] = [a for a in insight.all_agencies(session) if a.agency == "Small Club"]
    assert small.requests_made == "fewer than 5"
    assert small.median_hours_to_decision == "fewer than 5"
    for rate in (small.approved_as_asked_percent, small.narrowed_percent,
                 small.declined_percent, small.revoked_percent):  # fmt: skip
        assert rate == "fewer than 5"
    assert "4" not in str(small.as_dict().values())  # no exact small count leaks


def test_emergency_access_is_counted_apart_never_as_a_decision(
    services: Services, client: TestClient
) -> None:
    vault_id = _vault_id(services, client)
    agency = _agency(services, "Council")
    _seed(services, vault_id, agency, ["approved"] * 5 + ["declined"] * 5)
    now = utcnow()
    with Session(services.engine) as session, session.begin():
        for _ in range(5):
            request = AccessRequest(
                auth_req_hash=uuid.uuid4().hex, client_id="c", agency_id=agency.id,
                vault_id=vault_id, practitioner={"name": "A", "role": "child_protection",
                                                 "email": "a@x.org"},
                details={"type": "storykeep_emergency", "categories": ["health"],
                         "duration_days": 3, "actions": ["read"], "purpose": "x"},
                created_at=now, decide_by=now, status="approved", decided_at=now,
            )  # fmt: skip
            session.add(request)
            session.flush()
            session.add(
                Grant(
                    request_id=request.id,
                    vault_id=vault_id,
                    agency_id=agency.id,
                    client_id="c",
                    actions=["read"],
                    purpose="x",
                    categories=["health"],
                    practitioner=request.practitioner,
                    created_at=now,
                    lawful_basis="child_protection",
                    expires_at=now + timedelta(hours=72),
                )
            )
    with Session(services.engine) as session:
        result = insight.agency_insight(session, agency)
    assert result.requests_made == 10  # the consent requests only
    # 5 approved and 5 declined: none narrowed, so that share is suppressed and so is the
    # smallest other (approved, by name on a tie). Counting the emergencies as approvals
    # would show 66.7% approved instead.
    assert result.declined_percent == 50.0
    assert result.approved_as_asked_percent == insight.HIDDEN
    assert result.narrowed_percent == insight.HIDDEN
    assert result.emergency_uses == 5


# -- complementary suppression: the shares of one whole cannot give away a small one ---
def attack(shares: dict[str, float | str], total: int) -> dict[str, float]:
    """What someone who knows the total works out: when exactly one share of a whole is
    suppressed, 100% minus the others is that share, as a number of people."""
    suppressed = [k for k, v in shares.items() if isinstance(v, str)]
    shown = [v for v in shares.values() if not isinstance(v, str)]
    if len(suppressed) != 1:
        return {}
    return {suppressed[0]: round((100 - sum(shown)) * total / 100, 3)}


def test_one_small_share_is_not_given_away_by_the_others() -> None:
    counts = {"approved": 12, "narrowed": 5, "declined": 3}  # 20 decided: 60%, 25%, 15%
    # Primary suppression alone would show 60% and 25%, and so 15% = 3 people declined.
    naive = {k: insight.FEWER_THAN if n < 5 else 100 * n / 20 for k, n in counts.items()}
    assert attack(naive, 20) == {"declined": 3.0}
    shares = insight.shown_shares(counts)
    assert shares == {"approved": 60.0, "narrowed": insight.HIDDEN, "declined": insight.HIDDEN}
    assert attack(shares, 20) == {}
    # What is left (40%) stands for 8 people, split in a way nobody can tell.
    left = 100 - sum(v for v in shares.values() if not isinstance(v, str))
    assert left * 20 / 100 >= insight.SUPPRESS_BELOW


def test_suppressed_shares_together_stand_for_at_least_five() -> None:
    # Two small cells (1 and 2 of 20): hiding both still says "3 people in all" from the
    # 85% shown, so the third is hidden too.
    assert set(insight.shown_shares({"a": 17, "b": 1, "c": 2}).values()) == {insight.HIDDEN}
    # 100% approved would say nobody narrowed or declined: all hidden.
    assert set(insight.shown_shares({"a": 20, "b": 0, "c": 0}).values()) == {insight.HIDDEN}
    # Nothing small: everything shown, adding up to 100.
    assert insight.shown_shares({"a": 10, "b": 5, "c": 5}) == {"a": 50.0, "b": 25.0, "c": 25.0}
    # A whole under 5: every cell is under 5 too, and says so.
    assert set(insight.shown_shares({"a": 3, "b": 1, "c": 0}).values()) == {insight.FEWER_THAN}


def test_a_rate_never_gives_away_a_small_rest() -> None:
    assert insight.shown_rate(5, 16) == round(100 * 5 / 16, 1)
    assert insight.shown_rate(3, 16) == insight.HIDDEN  # 3 revoked
    # 14 of 17 revoked would say 3 kept sharing: hidden as well.
    assert insight.shown_rate(14, 17) == insight.HIDDEN
    assert insight.shown_rate(4, 4) == insight.FEWER_THAN


def test_revoked_share_with_few_kept_is_hidden(services: Services, client: TestClient) -> None:
    vault_id = _vault_id(services, client)
    agency = _agency(services, "Quitting Club")
    _seed(services, vault_id, agency, ["revoked"] * 10 + ["approved"] * 2)
    with Session(services.engine) as session:
        result = insight.agency_insight(session, agency)
    assert result.requests_made == 12
    assert result.revoked_percent == insight.HIDDEN  # 83.3% would say 2 kept sharing
    # All 12 approved as asked: 100% would say nobody narrowed or declined.
    assert result.approved_as_asked_percent == insight.HIDDEN
    assert result.narrowed_percent == result.declined_percent == insight.HIDDEN
