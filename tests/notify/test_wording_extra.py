"""Wording details found while wiring notifications end to end."""

from __future__ import annotations

from datetime import UTC, datetime

import textstat

from grants.notify import messages

WHEN = datetime(2026, 3, 3, 10, 14, tzinfo=UTC)


def test_the_shared_story_is_named_once_not_your_your() -> None:
    text = messages.access("Example High School", "Jo Bloggs", ["my_story"], WHEN).body
    assert "your your" not in text and "looked at your shared story on" in text
    both = messages.access("Example High School", "Jo", ["education", "my_story"], WHEN).body
    assert "your school and learning and shared story" in both


def test_no_categories_reads_as_things() -> None:
    text = messages.emergency("Example Council", [], WHEN).body
    assert "opened your things without" in text
    assert textstat.flesch_kincaid_grade(text) <= 5
