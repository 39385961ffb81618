"""GraphQL input types. They mirror ``schemas.records``; pydantic there does the validation."""

from __future__ import annotations

import dataclasses

from pydantic.alias_generators import to_camel
from datetime import datetime
from typing import Any

import strawberry

from hub.graphql.types import ConductStatus, LanguageProficiency, PathwayKind, SupportNeedCategory


@strawberry.input(description="OB 3.0 Criteria: an id, a narrative, or both.")
class CriteriaInput:
    id: str | None = None
    narrative: str | None = None


@strawberry.input(description="OB 3.0 Alignment.")
class AlignmentInput:
    target_name: str
    target_url: str
    target_code: str | None = None
    target_framework: str | None = None


@strawberry.input(description="OB 3.0 Achievement.")
class AchievementInput:
    name: str
    description: str
    criteria: CriteriaInput
    id: str | None = None
    image: str | None = None
    achievement_type: str | None = None
    alignments: list[AlignmentInput] = strawberry.field(default_factory=list)


@strawberry.input(description="OB 3.0 Profile of the issuer.")
class IssuerProfileInput:
    id: str
    name: str
    url: str | None = None


@strawberry.input(description="OB 3.0 Evidence.")
class EvidenceInput:
    id: str | None = None
    name: str | None = None
    narrative: str | None = None


@strawberry.input(description="An awarded achievement.")
class BadgeInput:
    source_id: str
    achievement: AchievementInput
    issuer: IssuerProfileInput
    awarded_date: datetime
    evidence: list[EvidenceInput] = strawberry.field(default_factory=list)


@strawberry.input
class SkillRefInput:
    label: str
    framework_uri: str | None = None
    code: str | None = None


@strawberry.input
class ProficiencyScaleInput:
    name: str
    min: float
    max: float


@strawberry.input(description="One assessment of one skill on a declared scale.")
class SkillInput:
    source_id: str
    skill: SkillRefInput
    scale: ProficiencyScaleInput
    proficiency: float
    assessed_at: datetime


@strawberry.input(description="xAPI Verb.")
class VerbInput:
    id: str
    display: str


@strawberry.input(description="xAPI Activity (the statement's object).")
class ActivityObjectInput:
    id: str
    name: str | None = None
    type: str | None = None


@strawberry.input(description="xAPI Score.")
class ScoreInput:
    scaled: float | None = None
    raw: float | None = None
    min: float | None = None
    max: float | None = None


@strawberry.input(description="xAPI Result.")
class ActivityResultInput:
    score: ScoreInput | None = None
    success: bool | None = None
    completion: bool | None = None
    duration: str | None = None


@strawberry.input(description="A learning event; the actor is the learner the batch is for.")
class ActivityInput:
    source_id: str
    verb: VerbInput
    object: ActivityObjectInput
    timestamp: datetime
    result: ActivityResultInput | None = None


@strawberry.input(description="A language the learner uses: a BCP 47 tag such as en, pt-BR or zh-Hant.")
class LanguageInput:
    tag: str
    proficiency: LanguageProficiency | None = None


@strawberry.input(description="How the learner wishes to be known, as stated at `asOf`.")
class ProfileInput:
    source_id: str
    as_of: datetime
    preferred_name: str | None = None
    pronouns: str | None = None
    languages: list[LanguageInput] = strawberry.field(default_factory=list)


@strawberry.input(description="An organisation: a name and, when known, an identifying IRI.")
class OrganisationInput:
    name: str
    id: str | None = None


@strawberry.input(description="Exposure to a college or a career.")
class PathwayInput:
    source_id: str
    kind: PathwayKind
    organisation: OrganisationInput
    occurred_at: datetime
    hours: float | None = None
    reflection: str | None = None


@strawberry.input(description="Who confirms a service record.")
class VerifierInput:
    name: str
    role: str | None = None
    email: str | None = None


@strawberry.input(description="Service or volunteering over a date range.")
class ServiceInput:
    source_id: str
    organisation: OrganisationInput
    role: str
    hours: float
    started_at: datetime
    ended_at: datetime | None = None
    verifier: VerifierInput | None = None


@strawberry.input
class MilestoneInput:
    title: str
    due_at: datetime | None = None
    reached_at: datetime | None = None


@strawberry.input(description="Self-managed or project work.")
class ProjectInput:
    source_id: str
    title: str
    started_at: datetime
    role: str | None = None
    completed_at: datetime | None = None
    milestones: list[MilestoneInput] = strawberry.field(default_factory=list)
    outcome: str | None = None
    linked_skills: list[SkillRefInput] = strawberry.field(default_factory=list)


@strawberry.input(description="An identified skill gap, learning difference or accommodation (encrypted at rest).")
class SupportNeedInput:
    source_id: str
    category: SupportNeedCategory
    description: str
    identified_at: datetime
    identified_by: str | None = None
    accommodations: list[str] = strawberry.field(default_factory=list)
    review_at: datetime | None = None


@strawberry.input(description="A fitness or health-related progress measure (encrypted at rest).")
class WellbeingInput:
    source_id: str
    measure: str
    value: float
    unit: str
    measured_at: datetime
    goal: float | None = None
    notes: str | None = None


@strawberry.input
class ConductResolutionInput:
    status: ConductStatus
    resolved_at: datetime | None = None
    notes: str | None = None


@strawberry.input(description="A behaviour record and its resolution (encrypted at rest).")
class ConductInput:
    source_id: str
    occurred_at: datetime
    category: str
    description: str
    resolution: ConductResolutionInput | None = None


@strawberry.input(description="One section x action to ask for.")
class AccessItemInput:
    section: str
    action: str


@strawberry.input(description="One learner's part of a contributeBatch call: stored all or nothing.")
class LearnerBatchInput:
    learner_id: strawberry.ID
    badges: list[BadgeInput] | None = None
    skills: list[SkillInput] | None = None
    activities: list[ActivityInput] | None = None


def as_plain(value: Any) -> Any:
    """Strawberry input -> plain dicts under the GraphQL names, as graphql-core hands the batch
    mutations their entries, so pydantic reports every error path in the client's own names
    (omitted optionals become None)."""
    return dataclasses.asdict(value, dict_factory=_graphql_names)


def _graphql_names(items: list[tuple[str, Any]]) -> dict[str, Any]:
    return {to_camel(key): item for key, item in items}
