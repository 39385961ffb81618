"""Generated schema files must match the code (GraphQL SDL, JSON Schemas of section inputs)."""

from __future__ import annotations

import json

import pytest

from hub.schema_files import SCHEMAS_DIR, expected_files


@pytest.mark.parametrize("path", sorted(expected_files()), ids=lambda p: p.name)
def test_exported_schema_file_is_current(path):  # type: ignore[no-untyped-def]
    assert path.exists(), f"{path} is missing: run `kinfolio schema export`"
    assert path.read_text() == expected_files()[path], f"{path.name} drifted from the code: run `kinfolio schema export`"


def test_sdl_exposes_the_provider_api():
    sdl = (SCHEMAS_DIR / "kinfolio.graphql").read_text()
    for needle in ("learners(first: Int! = 20, after: String = null): LearnerConnection!",
                   "learner(id: ID!): Learner",
                   "recordActivities(learnerId: ID!, activities: [ActivityInput!]!): ContributionResult",
                   "contributeBadges(", "contributeSkills("):
        assert needle in sdl


def test_activity_json_schema_requires_a_timezone_aware_timestamp():
    schema = json.loads((SCHEMAS_DIR / "json" / "activities.json").read_text())
    assert schema["properties"]["timestamp"]["format"] == "date-time"
    assert set(schema["required"]) == {"source_id", "verb", "object", "timestamp"}
