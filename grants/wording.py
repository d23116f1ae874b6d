"""Plain words for requests and grants, for young people (reading age about 10)."""

from __future__ import annotations

from typing import Any

CATEGORY_WORDS = {
    "education": "education",
    "health": "health",
    "care_plan": "care plan",
    "social_work": "social work",
    "police": "police",
    "housing": "housing",
    "identity": "basic details",
    "my_story": "shared story",
}
PURPOSE_WORDS = {
    "education_support": "to plan support at school",
    "child_plan": "to work on your plan",
    "health_care": "to look after your health",
    "child_protection": "to keep you safe",
    "emergency_child_protection": "in an emergency, to keep you safe",  # grants/emergency.py
}


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def what(actions: list[str], categories: list[str]) -> str:
    verb = {
        ("read",): "read",
        ("write",): "add to",
        ("read", "write"): "read and add to",
    }[tuple(sorted(actions))]
    things = [CATEGORY_WORDS.get(c, c) for c in categories if c != "my_story"]
    parts = []
    if things:
        parts.append(f"your {_join(things)} records")
    if "my_story" in categories:
        parts.append("the parts of your story you chose to share")
    return f"{verb} {' and '.join(parts)}"


def purpose_words(purpose: str) -> str:
    return PURPOSE_WORDS.get(purpose, "for " + purpose.replace("_", " "))


def request_summary(
    practitioner: dict[str, Any], agency: str, details: dict[str, Any], days: int
) -> str:
    """E.g. "Jo Bloggs, guidance teacher at Example High School, wants to read your
    education records for 30 days to plan support at school." """
    return _sentence(practitioner, agency, details, days, "wants to")


def grant_summary(
    practitioner: dict[str, Any], agency: str, details: dict[str, Any], days: int
) -> str:
    """E.g. "Jo Bloggs, guidance teacher at Example High School, can read ..." """
    return _sentence(practitioner, agency, details, days, "can")


def _sentence(
    practitioner: dict[str, Any], agency: str, details: dict[str, Any], days: int, modal: str
) -> str:
    who = f"{practitioner['name']}, {practitioner['role']} at {agency}"
    span = "1 day" if days == 1 else f"{days} days"
    return (
        f"{who}, {modal} {what(details['actions'], details['categories'])} "
        f"for {span} {purpose_words(details['purpose'])}."
    )


# -- for practitioners (plain, but not written for a ten-year-old) --------------------------------
PRACTITIONER_CATEGORY_LABELS = {
    "education": "Education",
    "health": "Health",
    "care_plan": "Care plan",
    "social_work": "Social work",
    "police": "Police",
    "housing": "Housing",
    "identity": "Identity (basic details)",
    "my_story": "Shared story",
}
PRACTITIONER_STATUS = {
    "pending": "Waiting",
    "approved": "Yes",
    "declined": "No",
    "lapsed": "Lapsed",
}


def purpose_label(purpose: str) -> str:
    """E.g. "education_support" -> "Education support"."""
    return purpose.replace("_", " ").capitalize()


def practitioner_summary(
    actions: list[str], categories: list[str], purpose: str, days: int | None
) -> str:
    """What a practitioner asked for or was given, e.g. "Read education and health
    records and the shared story, for education support, for 30 days." """
    verb = {
        ("read",): "Read",
        ("write",): "Add to",
        ("read", "write"): "Read and add to",
    }[tuple(sorted(actions))]
    things = [CATEGORY_WORDS.get(c, c) for c in categories if c != "my_story"]
    parts = []
    if things:
        parts.append(f"{_join(things)} records")
    if "my_story" in categories:
        parts.append("the shared story")
    text = f"{verb} {' and '.join(parts)}, for {purpose.replace('_', ' ')}"
    if days is not None:
        text += ", for 1 day" if days == 1 else f", for {days} days"
    return text + "."
