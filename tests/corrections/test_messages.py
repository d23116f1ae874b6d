"""What the young person is told about an answer: plain words (grade 5 or below), the
agency's name only, and where to complain when the answer is no (ICO guidance)."""

from __future__ import annotations

import inspect

import pytest
import textstat

from grants import corrections
from grants.notify.messages import Message

BUILDERS = (corrections.accepted_message, corrections.declined_message)


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda b: b.__name__)
def test_plain_words_and_no_content_argument(builder: object) -> None:
    assert callable(builder)
    assert list(inspect.signature(builder).parameters) == ["agency"]
    message = builder("Example High School")
    assert isinstance(message, Message)
    assert textstat.flesch_kincaid_grade(message.body) <= 5, message.body
    assert "Example High School" in message.body


def test_a_no_says_how_to_complain_and_about_the_statement() -> None:
    body = corrections.declined_message("Example High School").body
    assert "ICO" in body and "advocate" in body and "your own words" in body
