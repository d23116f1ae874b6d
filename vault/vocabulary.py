"""One common vocabulary (DESIGN.md, "Scope vocabulary"), shared by vault and grants."""

from __future__ import annotations

RECORD_CATEGORIES = (
    "education",
    "health",
    "care_plan",
    "social_work",
    "police",
    "housing",
    "identity",
)
# my_story is a grantable category too, but it names the young person's shareable
# entries, never an agency record.
GRANT_CATEGORIES = (*RECORD_CATEGORIES, "my_story")

# GIRFEC's eight wellbeing indicators.
SHANARRI = (
    "safe",
    "healthy",
    "achieving",
    "nurtured",
    "active",
    "respected",
    "responsible",
    "included",
)

# Plain words for pages written for young people.
CATEGORY_LABELS = {
    "education": "school and learning",
    "health": "health",
    "care_plan": "care plan",
    "social_work": "social work",
    "police": "police",
    "housing": "where you live",
    "identity": "basic details about you",
    "my_story": "your shared story",
}
