"""Insight for organisations through the real interfaces: ``storykeep report`` (table and
JSON) and ``POST /api/v1/agency/insight`` for an agency's authenticated system. Counts
under 5 are "fewer than 5"; an agency sees only its own figures."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.container import Services
from grants import insight
from grants.models import AccessRequest, Agency, EmergencyAccess, Grant
from tests.conftest import sign_up
from tests.grants.kit import AgencyClient, register_agency
from tests.grants.test_insight import _seed
from tests.jobs.conftest import storykeep
from vault import repository as vault_repo
from vault.db_types import utcnow

URL = "/api/v1/agency/insight"
HIDDEN = insight.HIDDEN
# 20 decided: 12 as asked (60%), 5 narrowed (25%), 3 declined (15%, a small number).
LEAKY = ["approved"] * 12 + ["narrowed"] * 5 + ["declined"] * 3
# 12 grants, all as asked, 10 revoked: 83.3% revoked would say 2 kept sharing, and 100%
# approved as asked would say nobody narrowed or declined.
QUITTING = ["revoked"] * 10 + ["approved"] * 2
DECISIONS = ("approved_as_asked_percent", "narrowed_percent", "declined_percent")
BIG = ["approved"] * 6 + ["narrowed"] * 5 + ["declined"] * 5 + ["revoked"] * 5 + ["pending"]


def _vault_id(services: Services, client: TestClient) -> uuid.UUID:
    sign_up(client, "insightkid")
    with Session(services.engine) as session:
        person = vault_repo.get_young_person_by_username(session, "insightkid")
        assert person is not None
        vault = vault_repo.get_vault_of(session, person.id)
        assert vault is not None
        return vault.id


def _agency(services: Services, client: TestClient, name: str) -> tuple[Agency, AgencyClient]:
    client_id, key = register_agency(services, name, purposes=("education_support",))
    with Session(services.engine) as session:
        agency = session.exec(select(Agency).where(Agency.name == name)).one()
        session.expunge(agency)
    return agency, AgencyClient(client, services.settings.issuer, client_id, key, name)


def _emergencies(
    services: Services, vault_id: uuid.UUID, agency: Agency, review_hours: list[float | None]
) -> None:
    """Emergency accesses, each reviewed after the given hours (None: not yet)."""
    now = utcnow()
    with Session(services.engine) as session, session.begin():
        for hours in review_hours:
            opened = now - timedelta(days=3)
            request = AccessRequest(
                auth_req_hash=uuid.uuid4().hex, client_id="c", agency_id=agency.id,
                vault_id=vault_id, practitioner={"name": "Al", "role": "cp", "email": "a@x.org"},
                details={"categories": ["health"], "duration_days": 3, "actions": ["read"],
                         "purpose": "child_protection"},
                created_at=opened, decide_by=opened, status="approved",
            )  # fmt: skip
            session.add(request)
            session.flush()
            grant = Grant(
                request_id=request.id, vault_id=vault_id, agency_id=agency.id, client_id="c",
                categories=["health"], actions=["read"], purpose="child_protection",
                practitioner=request.practitioner, lawful_basis="child_protection",
                created_at=opened, expires_at=opened + timedelta(hours=72),
            )  # fmt: skip
            session.add(grant)
            session.flush()
            session.add(
                EmergencyAccess(
                    grant_id=grant.id,
                    vault_id=vault_id,
                    agency_id=agency.id,
                    reason_code="missing_child",
                    reason_sealed=b"sealed",
                    created_at=opened,
                    reviewed_at=None if hours is None else opened + timedelta(hours=hours),
                    review_outcome=None if hours is None else "justified",
                )
            )


@pytest.fixture
def seeded(client: TestClient, services: Services) -> dict[str, AgencyClient]:
    vault_id = _vault_id(services, client)
    big, big_client = _agency(services, client, "Big School")
    small, small_client = _agency(services, client, "Small Club")
    _seed(services, vault_id, big, BIG)
    _emergencies(services, vault_id, big, [1, 2, 3, 4, 5, 6, None])
    _seed(services, vault_id, small, ["approved", "declined", "narrowed"])
    _emergencies(services, vault_id, small, [30])  # 4 requests in all
    return {"big": big_client, "small": small_client}


def report_by_agency(env: dict[str, str]) -> dict[str, Any]:
    """`storykeep report --json`, keyed by agency name."""
    result = storykeep(env, "report", "--json")
    assert result.returncode == 0, result.stderr
    return {a["agency"]: a for a in json.loads(result.stdout)["agencies"]}


class TestReportCommand:
    def test_table_and_json_suppress_small_counts(
        self, seeded: dict[str, AgencyClient], env: dict[str, str]
    ) -> None:
        by_name = report_by_agency(env)
        big, small = by_name["Big School"], by_name["Small Club"]
        assert big["requests_made"] == 22 + 7
        assert big["emergency_uses"] == 7
        assert big["median_hours_to_emergency_review"] == 3.5  # of 1..6; one not reviewed
        assert big["declined_percent"] == round(100 * 5 / 21, 1)
        for key, value in small.items():
            if key != "agency":
                assert value == "fewer than 5", (key, value)

        table = storykeep(env, "report")
        assert table.returncode == 0, table.stderr
        lines = table.stdout.splitlines()
        assert lines[0].startswith("Agency") and "Median hours to review" in lines[0]
        [small_line] = [line for line in lines if line.startswith("Small Club")]
        assert small_line.count("fewer than 5") == 8
        assert not any(ch.isdigit() for ch in small_line.replace("fewer than 5", ""))
        [big_line] = [line for line in lines if line.startswith("Big School")]
        assert " 29 " in big_line and " 3.5" in big_line
        assert 'Counts under 5 are shown as "fewer than 5".' in table.stdout

    def test_no_agencies(self, env: dict[str, str], services: Services) -> None:
        result = storykeep(env, "report")
        assert result.returncode == 0 and result.stdout.strip() == "No agencies yet."
        assert json.loads(storykeep(env, "report", "--json").stdout) == {"agencies": []}


class TestInsightApi:
    def test_each_client_sees_its_own_agency_only(self, seeded: dict[str, AgencyClient]) -> None:
        big = seeded["big"].post(URL, {})
        assert big.status_code == 200, big.text
        assert big.headers["cache-control"] == "no-store"
        assert big.json()["agency"] == "Big School" and big.json()["requests_made"] == 29
        assert big.json()["median_hours_to_emergency_review"] == 3.5
        # Naming another agency changes nothing: the client's own agency is answered.
        small = seeded["small"].post(URL, {"agency": "Big School"})
        assert small.status_code == 200, small.text
        body = small.json()
        assert body["agency"] == "Small Club"
        assert body["requests_made"] == "fewer than 5"
        assert body["median_hours_to_emergency_review"] == "fewer than 5"
        assert "Big School" not in small.text

    def test_the_endpoint_url_is_a_good_audience(self, seeded: dict[str, AgencyClient]) -> None:
        school = seeded["big"]
        endpoint = school.issuer.rstrip("/") + URL
        assert school.post(URL, {}, school.assertion(aud=endpoint)).status_code == 200

    def test_refused_without_good_client_authentication(
        self, client: TestClient, seeded: dict[str, AgencyClient]
    ) -> None:
        school = seeded["big"]
        nothing = client.post(URL, data={"client_id": school.client_id})
        assert nothing.status_code == 401 and nothing.json()["error"] == "invalid_client"
        assert client.post(URL).status_code == 400  # not even a form
        wrong_aud = school.post(URL, {}, school.assertion(aud="https://elsewhere.example"))
        assert wrong_aud.status_code == 401
        once = school.assertion()
        assert school.post(URL, {}, once).status_code == 200
        assert school.post(URL, {}, once).status_code == 401  # a jti is single use
        expired = school.post(URL, {}, school.assertion(exp=int(utcnow().timestamp()) - 5))
        assert expired.status_code == 401
        as_json = client.post(URL, json={"client_assertion": school.assertion()})
        assert as_json.status_code == 400
        assert client.get(URL).status_code == 405
        # A young person's signed-in session is not an agency.
        sign_up(client, "nosy")
        assert client.post(URL, data={"client_id": school.client_id}).status_code == 401


def _worked_out(row: dict[str, object], decided: int) -> dict[str, float]:
    """The attack: with one share of the decided requests suppressed, 100% minus the
    shown ones is that share; times the number decided, it is a number of people."""
    suppressed = [k for k in DECISIONS if isinstance(row[k], str)]
    shown = [float(str(row[k])) for k in DECISIONS if not isinstance(row[k], str)]
    if len(suppressed) != 1:
        return {}
    return {suppressed[0]: round((100 - sum(shown)) * decided / 100, 3)}


@pytest.fixture
def leaky(client: TestClient, services: Services) -> dict[str, AgencyClient]:
    vault_id = _vault_id(services, client)
    leaky, leaky_client = _agency(services, client, "Leaky Club")
    quitting, quitting_client = _agency(services, client, "Quitting Club")
    _seed(services, vault_id, leaky, LEAKY)
    _seed(services, vault_id, quitting, QUITTING)
    return {"leaky": leaky_client, "quitting": quitting_client}


class TestComplementarySuppression:
    """A suppressed share cannot be worked out from the shares shown beside it."""

    def test_report_json_and_table(
        self, leaky: dict[str, AgencyClient], env: dict[str, str]
    ) -> None:
        by_name = report_by_agency(env)
        club = by_name["Leaky Club"]
        assert club["requests_made"] == 20
        assert club["approved_as_asked_percent"] == 60.0
        assert club["narrowed_percent"] == HIDDEN and club["declined_percent"] == HIDDEN
        assert _worked_out(club, 20) == {}
        # Primary suppression alone (declined only) would have given 3 people away.
        naive = {**club, "narrowed_percent": 25.0, "declined_percent": "fewer than 5"}
        assert _worked_out(naive, 20) == {"declined_percent": 3.0}
        quitting = by_name["Quitting Club"]
        assert quitting["requests_made"] == 12
        assert quitting["revoked_percent"] == HIDDEN
        assert {quitting[k] for k in DECISIONS} == {HIDDEN}

        table = storykeep(env, "report")
        assert table.returncode == 0, table.stderr
        [line] = [row for row in table.stdout.splitlines() if row.startswith("Leaky Club")]
        # Narrowed, declined, and revoked (0 of 17: it would say nobody stopped sharing).
        assert " 60.0 " in line and line.count(HIDDEN) == 3
        assert "25.0" not in line and "15.0" not in line
        [line] = [row for row in table.stdout.splitlines() if row.startswith("Quitting Club")]
        assert line.count(HIDDEN) == 4
        assert "100.0" not in line and "83.3" not in line

    def test_insight_api(self, leaky: dict[str, AgencyClient]) -> None:
        answer = leaky["leaky"].post(URL, {})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["agency"] == "Leaky Club"
        assert [body[k] for k in DECISIONS] == [60.0, HIDDEN, HIDDEN]
        assert _worked_out(body, 20) == {}
        assert "25.0" not in answer.text and "15.0" not in answer.text
        quitting = leaky["quitting"].post(URL, {}).json()
        assert quitting["revoked_percent"] == HIDDEN
        assert [quitting[k] for k in DECISIONS] == [HIDDEN] * 3
