"""Input shapes of the record sections (pydantic + stdlib only).

These are the validation source of truth for contributions, whatever the transport (GraphQL,
connectors); ``schemas/json/*.json`` are generated from them (``kinfolio schemas export``) and a
test fails when they drift. Stored formats only grow: add fields at the end, with defaults.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic.alias_generators import to_camel
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION = 1

Text200 = Annotated[str, Field(min_length=1, max_length=200)]
Text500 = Annotated[str, Field(min_length=1, max_length=500)]
LongText = Annotated[str, Field(min_length=1, max_length=10_000)]
# RFC 3987: an IRI starts with a scheme. Kept exactly as sent (no normalisation), so a provider's
# verb or activity id round-trips byte for byte. Bounded so it can be indexed.
# (\x1c-\x1f are whitespace to Python's \s but not to pydantic-core's regex engine: listed so both agree.)
_IRI_SHAPE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s\x1c-\x1f<>\"{}|\\^`]+$")
# Shape rules are `pattern` constraints, checked inside pydantic-core: as Python validators they
# were a callback per value, ~2/3 of validating a 1,000-activity batch (BENCHMARKS.md, ingest).
# `error_message` words their errors (pydantic's own message quotes the regular expression).
IRI = Annotated[str, Field(min_length=3, max_length=2000, pattern=_IRI_SHAPE.pattern)]
SourceId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        description="The provider's own id for this entry: re-sending it updates, never duplicates.",
    ),
]

# ISO 8601 duration as used by xAPI result.duration (xAPI 1.0.3 §4.1.5, §4.6).
_DURATION = re.compile(r"^P(?!$)(\d+(?:\.\d+)?Y)?(\d+(?:\.\d+)?M)?(\d+(?:\.\d+)?W)?(\d+(?:\.\d+)?D)?"
                       r"(T(?=\d)(\d+(?:\.\d+)?H)?(\d+(?:\.\d+)?M)?(\d+(?:\.\d+)?S)?)?$")


class _Input(BaseModel):
    # Entries arrive under their Python names (connectors, the CLI) or, straight from graphql-core
    # in the batch mutations, under their GraphQL names: pydantic maps the camelCase aliases
    # itself, which cost far less than rewriting every key of a 1,000-entry batch in Python
    # (BENCHMARKS.md, ingest). Error locations are given in the GraphQL names.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True, alias_generator=to_camel,
                              validate_by_name=True, validate_by_alias=True)


class Alignment(_Input):
    """OB 3.0 ``Alignment``: a link to a framework item (e.g. a CASE CFItem)."""

    target_name: Text500
    target_url: IRI
    target_code: Text200 | None = None
    target_framework: Text500 | None = None


class Criteria(_Input):
    """OB 3.0 ``Criteria``: an id, a narrative, or both."""

    id: IRI | None = None
    narrative: LongText | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Criteria:
        if not (self.id or self.narrative):
            raise ValueError("criteria needs an id or a narrative (OB 3.0 Criteria)")
        return self


class Achievement(_Input):
    """OB 3.0 ``Achievement``."""

    id: IRI | None = None
    name: Text500
    description: LongText
    criteria: Criteria
    image: IRI | None = None
    achievement_type: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    alignments: Annotated[list[Alignment], Field(max_length=50)] = []


class IssuerProfile(_Input):
    """OB 3.0 ``Profile`` of the issuer."""

    id: IRI
    name: Text500
    url: IRI | None = None


class Evidence(_Input):
    """OB 3.0 ``Evidence``."""

    id: IRI | None = None
    name: Text500 | None = None
    narrative: LongText | None = None


class BadgeCreate(_Input):
    """An awarded achievement (OB 3.0 AchievementSubject.achievement, issuer, awardedDate)."""

    source_id: SourceId
    achievement: Achievement
    issuer: IssuerProfile
    awarded_date: AwareDatetime
    evidence: Annotated[list[Evidence], Field(max_length=50)] = []


class SkillRef(_Input):
    """A skill: a CASE CFItem (framework URI + human coding scheme) or, failing that, a label."""

    framework_uri: IRI | None = None
    code: Text200 | None = None
    label: Text500

    @model_validator(mode="after")
    def _framework_with_code(self) -> SkillRef:
        if (self.framework_uri is None) != (self.code is None):
            raise ValueError("framework_uri and code go together (a CASE item is framework + code)")
        return self

    @property
    def key(self) -> str:
        """What groups assessments of one skill into a progression."""
        if self.framework_uri is not None:
            return f"{self.framework_uri}#{self.code}"
        return f"label:{self.label.casefold()}"


class ProficiencyScale(_Input):
    name: Text200
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> ProficiencyScale:
        if not self.min < self.max:
            raise ValueError("scale min must be below max")
        return self


class SkillCreate(_Input):
    """One assessment of one skill on a declared scale."""

    source_id: SourceId
    skill: SkillRef
    scale: ProficiencyScale
    proficiency: float
    assessed_at: AwareDatetime

    @model_validator(mode="after")
    def _on_scale(self) -> SkillCreate:
        if not self.scale.min <= self.proficiency <= self.scale.max:
            raise ValueError(f"proficiency {self.proficiency} is outside the scale [{self.scale.min}, {self.scale.max}]")
        return self


class Verb(_Input):
    """xAPI 1.0.3 §4.1.3 Verb (``display`` is one language's label)."""

    id: IRI
    display: Text200


class ActivityObject(_Input):
    """xAPI 1.0.3 §4.1.4.1 Activity: id plus the definition's name and type."""

    id: IRI
    name: Text500 | None = None
    type: IRI | None = None


class Score(_Input):
    """xAPI 1.0.3 §4.1.5.1 Score."""

    scaled: Annotated[float, Field(ge=-1, le=1)] | None = None
    raw: float | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _raw_within_bounds(self) -> Score:
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError("score min must be below max")
        if self.raw is not None and (
            (self.min is not None and self.raw < self.min) or (self.max is not None and self.raw > self.max)
        ):
            raise ValueError("score raw must lie between min and max")
        return self


class ActivityResult(_Input):
    """xAPI 1.0.3 §4.1.5 Result."""

    score: Score | None = None
    success: bool | None = None
    completion: bool | None = None
    duration: Annotated[str, Field(max_length=64)] | None = None

    @field_validator("duration")
    @classmethod
    def _iso_duration(cls, value: str | None) -> str | None:
        if value is not None and not _DURATION.match(value):
            raise ValueError("duration must be an ISO 8601 duration such as PT1H30M")
        return value


class ActivityCreate(_Input):
    """A learning event; the actor is the learner the batch is for."""

    source_id: SourceId
    verb: Verb
    object: ActivityObject
    result: ActivityResult | None = None
    timestamp: AwareDatetime


# -- profile, pathways, service, projects (plain) ------------------------------------------

Hours = Annotated[float, Field(ge=0, le=10_000)]
# BCP 47 language tag (RFC 5646), shape only: "en", "pt-BR", "zh-Hant-TW", "sgn-US".
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")


class LanguageProficiency(StrEnum):
    HOME = "home"
    FLUENT = "fluent"
    LEARNING = "learning"


class Language(_Input):
    """A language the learner uses, as a BCP 47 tag (RFC 5646)."""

    tag: Annotated[str, Field(min_length=2, max_length=35, pattern=_LANGUAGE_TAG.pattern)]
    proficiency: LanguageProficiency | None = None


class ProfileCreate(_Input):
    """How the learner wishes to be known, as stated at ``as_of``."""

    source_id: SourceId
    as_of: AwareDatetime = Field(description="When this was stated; the newest statement comes first.")
    preferred_name: Text200 | None = None
    pronouns: Text200 | None = None
    languages: Annotated[list[Language], Field(max_length=20)] = []

    @model_validator(mode="after")
    def _says_something(self) -> ProfileCreate:
        if self.preferred_name is None and self.pronouns is None and not self.languages:
            raise ValueError("a profile entry needs a preferred name, pronouns or languages")
        return self


class PathwayKind(StrEnum):
    COLLEGE_VISIT = "college_visit"
    CAREER_FAIR = "career_fair"
    JOB_SHADOW = "job_shadow"
    INTERNSHIP = "internship"
    COURSE = "course"


class Organisation(_Input):
    """An organisation: a name and, when it has one, an identifying IRI (e.g. its web site)."""

    name: Text500
    id: IRI | None = None


class PathwayCreate(_Input):
    """Exposure to a college or a career: what, with whom, when, for how long, and what the learner took away."""

    source_id: SourceId
    kind: PathwayKind
    organisation: Organisation
    occurred_at: AwareDatetime
    hours: Hours | None = None
    reflection: LongText | None = None


class Verifier(_Input):
    """Who confirms a service record (a supervisor, a coordinator)."""

    name: Text200
    role: Text200 | None = None
    email: Annotated[str, Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None


class ServiceCreate(_Input):
    """Service or volunteering over a date range."""

    source_id: SourceId
    organisation: Organisation
    role: Text200
    hours: Hours
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    verifier: Verifier | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ServiceCreate:
        if self.ended_at is not None and self.ended_at < self.started_at:
            raise ValueError("ended_at must not be before started_at")
        return self


class Milestone(_Input):
    title: Text500
    due_at: AwareDatetime | None = None
    reached_at: AwareDatetime | None = None


class ProjectCreate(_Input):
    """Self-managed or project work: the plan (milestones), the learner's role and the outcome."""

    source_id: SourceId
    title: Text500
    role: Text200 | None = None
    started_at: AwareDatetime
    completed_at: AwareDatetime | None = None
    milestones: Annotated[list[Milestone], Field(max_length=100)] = []
    outcome: LongText | None = None
    linked_skills: Annotated[list[SkillRef], Field(max_length=50)] = []

    @model_validator(mode="after")
    def _ordered(self) -> ProjectCreate:
        if self.completed_at is not None and self.completed_at < self.started_at:
            raise ValueError("completed_at must not be before started_at")
        return self


# -- sensitive sections: support_needs, wellbeing, conduct (encrypted at rest) -------------


class SupportNeedCategory(StrEnum):
    SKILL_GAP = "skill_gap"
    LEARNING_DIFFERENCE = "learning_difference"
    ACCOMMODATION = "accommodation"


class SupportNeedCreate(_Input):
    """An identified skill gap, learning difference or accommodation."""

    source_id: SourceId
    category: SupportNeedCategory
    description: LongText
    identified_at: AwareDatetime
    identified_by: Text200 | None = None
    accommodations: Annotated[list[Text500], Field(max_length=50)] = []
    review_at: AwareDatetime | None = None


class WellbeingCreate(_Input):
    """One fitness or health-related progress measure, e.g. a 1-mile run time in minutes."""

    source_id: SourceId
    measure: Text200
    value: float
    unit: Annotated[str, Field(min_length=1, max_length=50)]
    measured_at: AwareDatetime
    goal: float | None = None
    notes: LongText | None = None


class ConductStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    WITHDRAWN = "withdrawn"


class ConductResolution(_Input):
    status: ConductStatus
    resolved_at: AwareDatetime | None = None
    notes: LongText | None = None

    @model_validator(mode="after")
    def _resolved_has_a_date(self) -> ConductResolution:
        if self.status is ConductStatus.RESOLVED and self.resolved_at is None:
            raise ValueError("a resolved record needs resolved_at")
        return self


class ConductCreate(_Input):
    """A behaviour record and its resolution."""

    source_id: SourceId
    occurred_at: AwareDatetime
    category: Text200
    description: LongText
    resolution: ConductResolution | None = None


SECTION_INPUTS: dict[str, type[_Input]] = {
    "badges": BadgeCreate,
    "skills": SkillCreate,
    "activities": ActivityCreate,
    "profile": ProfileCreate,
    "pathways": PathwayCreate,
    "service": ServiceCreate,
    "projects": ProjectCreate,
    "support_needs": SupportNeedCreate,
    "wellbeing": WellbeingCreate,
    "conduct": ConductCreate,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema (draft 2020-12, as pydantic emits it) of each section's input."""
    return {section: model.model_json_schema(by_alias=False) for section, model in SECTION_INPUTS.items()}


_PATTERN_MESSAGES = {
    _IRI_SHAPE.pattern: "must be an absolute IRI such as https://example.org/x or urn:uuid:...",
    _LANGUAGE_TAG.pattern: "must be a BCP 47 language tag such as en, pt-BR or zh-Hant",
}


def error_message(error: Mapping[str, Any]) -> str:
    """One validation error's message, in words for the shape rules above."""
    if error.get("type") == "string_pattern_mismatch":
        return _PATTERN_MESSAGES.get((error.get("ctx") or {}).get("pattern"), error["msg"])
    return str(error["msg"])
