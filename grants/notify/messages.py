"""The words of every notification, in one place.

Rules (SECURITY.md and the ICO Age Appropriate Design Code, standard 4 "transparency"):
* messages say *that* something happened and *who* did it, never story or record
  content: the builders take only names, categories, times and counts, so content
  cannot reach a mail server or an agency's webhook even by mistake;
* young people's messages use plain words (reading age about 10) and say what they can
  do next; emergency messages also say where to get help, and never call it consent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from vault.vocabulary import CATEGORY_LABELS

# Childline is free, confidential and open to every child in the UK, day and night.
HELP_LINE = "You can talk to Childline for free at any time on 0800 1111."


@dataclass(frozen=True)
class Message:
    kind: str
    subject: str
    body: str


def _things(categories: list[str]) -> str:
    names = [CATEGORY_LABELS.get(c, c.replace("_", " ")).lower() for c in categories]
    # Some labels already say "your" ("your shared story"); the sentences add their own.
    names = [n.removeprefix("your ") for n in names]
    if len(names) <= 1:
        return "".join(names) or "things"
    return ", ".join(names[:-1]) + " and " + names[-1]


def _day(when: datetime) -> str:
    return when.strftime("%A %-d %B")


# -- for young people --------------------------------------------------------------------------
def new_request(agency: str, practitioner: str) -> Message:
    return Message(
        "request_new",
        "Someone has asked to see your things",
        f"{practitioner} from {agency} has asked to see some of your things. "
        "Sign in to Storykeep to say yes, no, or change what they can see. "
        "It is up to you.",
    )


def request_reminder(agency: str, decide_by: datetime) -> Message:
    return Message(
        "request_reminder",
        "A request is waiting for you",
        f"{agency} is still waiting for your answer. The request ends on {_day(decide_by)}. "
        "If you do not answer, they will not see anything.",
    )


def access(agency: str, practitioner: str, categories: list[str], when: datetime) -> Message:
    return Message(
        "access",
        "Someone looked at your things",
        f"{practitioner} from {agency} looked at your {_things(categories)} on {_day(when)}. "
        "You can see who has looked in Storykeep.",
    )


def access_summary(day: datetime, looks: int, agencies: list[str]) -> Message:
    who = ", ".join(sorted(set(agencies))) or "nobody"
    return Message(
        "access_summary",
        f"Who looked at your things on {_day(day)}",
        f"On {_day(day)}, people looked at your things {looks} times. They were from: {who}. "
        "You can see more in Storykeep.",
    )


def grant_ending(agency: str, ends_at: datetime) -> Message:
    return Message(
        "grant_ending",
        "Sharing will stop soon",
        f"{agency} can see some of your things until {_day(ends_at)}. "
        "After that they will not see them. You do not need to do anything.",
    )


def emergency(agency: str, categories: list[str], ends_at: datetime) -> Message:
    return Message(
        "emergency",
        "Emergency access to your things",
        f"{agency} has opened your {_things(categories)} without asking you first. "
        "They can only do this when they are worried a child may not be safe. "
        f"It ends on {_day(ends_at)}. Someone from outside {agency} will check it was right. "
        f"{HELP_LINE} Your advocate can help you too.",
    )


# -- for practitioners and agency systems -------------------------------------------------------
def decision(young_person_handle: str, answer: str) -> Message:
    return Message(
        "decision",
        f"Your request was {answer}",
        f"The young person ({young_person_handle}) has {answer} your request. "
        "Sign in to Storykeep to see what you can do next.",
    )


def expiry(young_person_handle: str, what: str) -> Message:
    return Message(
        "expiry",
        f"Your {what} has ended",
        f"Your {what} for the young person ({young_person_handle}) has ended. "
        "You can ask again if you still need to.",
    )
