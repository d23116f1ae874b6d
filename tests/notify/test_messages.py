"""Notification wording: plain enough for a 10-year-old, and never any content."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime

import pytest
import textstat

from grants.notify import messages

WHEN = datetime(2026, 3, 3, 10, 14, tzinfo=UTC)

YOUNG_PEOPLES = [
    messages.new_request("Example High School", "Jo Bloggs"),
    messages.request_reminder("Example High School", WHEN),
    messages.access("Example High School", "Jo Bloggs", ["education", "health"], WHEN),
    messages.access_summary(WHEN, 3, ["Example High School"]),
    messages.grant_ending("Example High School", WHEN),
    messages.emergency("Example Council", ["care_plan"], WHEN),
]


@pytest.mark.parametrize("message", YOUNG_PEOPLES, ids=lambda m: m.kind)
def test_young_peoples_messages_read_at_grade_5_or_below(message: messages.Message) -> None:
    grade = textstat.flesch_kincaid_grade(message.body)
    assert grade <= 5, f"{message.kind}: grade {grade}: {message.body}"


def test_emergency_says_where_to_get_help_and_never_calls_it_consent() -> None:
    text = messages.emergency("Example Council", ["care_plan"], WHEN).body
    assert "0800 1111" in text and "advocate" in text
    assert "consent" not in text.lower() and "agreed" not in text.lower()


def test_builders_take_no_content_arguments() -> None:
    """Content cannot leak if no builder can be given any: only names, kinds and times."""
    allowed = {"agency", "practitioner", "categories", "when", "decide_by", "day", "looks",
               "agencies", "ends_at", "young_person_handle", "answer", "what"}  # fmt: skip
    for name, builder in inspect.getmembers(messages, inspect.isfunction):
        if name.startswith("_") or builder.__module__ != messages.__name__:
            continue
        params = set(inspect.signature(builder).parameters)
        assert params <= allowed, f"{name} takes {params - allowed}"
