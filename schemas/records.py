"""Input shapes of the record sections (pydantic + stdlib only).

These are the validation source of truth for contributions, whatever the transport (GraphQL,
connectors); ``schemas/json/*.json`` are generated from them (``kinfolio schemas export``) and a
test fails when they drift. Stored formats only grow: add fields at the end, with defaults.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION = 1

Text200 = Annotated[str, Field(min_length=1, max_length=200)]
Text500 = Annotated[str, Field(min_length=1, max_length=500)]
LongText = Annotated[str, Field(min_length=1, max_length=10_000)]
# RFC 3987: an IRI starts with a scheme. Kept exactly as sent (no normalisation), so a provider's
# verb or activity id round-trips byte for byte. Bounded so it can be indexed.
_IRI_SHAPE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+$")


def _check_iri(value: str) -> str:
    if not _IRI_SHAPE.match(value):
        raise ValueError("must be an absolute IRI such as https://example.org/x or urn:uuid:...")
    return value


IRI = Annotated[str, Field(min_length=3, max_length=2000), AfterValidator(_check_iri)]
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
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


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


SECTION_INPUTS: dict[str, type[_Input]] = {
    "badges": BadgeCreate,
    "skills": SkillCreate,
    "activities": ActivityCreate,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema (draft 2020-12, as pydantic emits it) of each section's input."""
    return {section: model.model_json_schema() for section, model in SECTION_INPUTS.items()}
