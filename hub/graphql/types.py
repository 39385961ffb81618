"""GraphQL output types. Kept apart from ORM rows; each has ``from_row``."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

import strawberry
from strawberry.scalars import JSON

from hub.records import models as record_models

T = TypeVar("T")


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type(description="A page of entries, newest first (Relay cursor connection).")
class Connection(Generic[T]):
    edges: list[Edge[T]]
    nodes: list[T]
    page_info: PageInfo


@strawberry.type(description="OB 3.0 Criteria.")
class Criteria:
    id: str | None
    narrative: str | None


@strawberry.type(description="OB 3.0 Alignment.")
class Alignment:
    target_name: str
    target_url: str
    target_code: str | None
    target_framework: str | None


@strawberry.type(description="OB 3.0 Achievement.")
class Achievement:
    id: str | None
    name: str
    description: str
    criteria: Criteria
    image: str | None
    achievement_type: str | None
    alignments: list[Alignment]


@strawberry.type(description="OB 3.0 Profile of the issuer.")
class IssuerProfile:
    id: str
    name: str
    url: str | None


@strawberry.type(description="OB 3.0 Evidence.")
class Evidence:
    id: str | None
    name: str | None
    narrative: str | None


@strawberry.type(description="An awarded achievement (Open Badges 3.0 model).")
class Badge:
    id: strawberry.ID
    source_id: str
    contributed_by: strawberry.ID
    achievement: Achievement
    issuer: IssuerProfile
    awarded_date: datetime
    evidence: list[Evidence]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: record_models.Badge) -> Badge:
        return cls(
            id=strawberry.ID(str(row.id)),
            source_id=row.source_id,
            contributed_by=strawberry.ID(str(row.provider_id)),
            achievement=Achievement(
                id=row.achievement_id,
                name=row.name,
                description=row.description,
                criteria=Criteria(id=row.criteria_id, narrative=row.criteria_narrative),
                image=row.image_url,
                achievement_type=row.achievement_type,
                alignments=[
                    Alignment(
                        target_name=a["target_name"],
                        target_url=a["target_url"],
                        target_code=a.get("target_code"),
                        target_framework=a.get("target_framework"),
                    )
                    for a in row.alignments
                ],
            ),
            issuer=IssuerProfile(id=row.issuer_id, name=row.issuer_name, url=row.issuer_url),
            awarded_date=row.awarded_at,
            evidence=[Evidence(id=e.get("id"), name=e.get("name"), narrative=e.get("narrative")) for e in row.evidence],
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@strawberry.type(description="A skill: a CASE item (framework URI + code) or a label.")
class SkillRef:
    framework_uri: str | None
    code: str | None
    label: str
    key: str = strawberry.field(description="Groups the assessments of one skill into a progression.")


@strawberry.type
class ProficiencyScale:
    name: str
    min: float
    max: float


@strawberry.type(description="One assessment of one skill.")
class SkillAssessment:
    id: strawberry.ID
    source_id: str
    contributed_by: strawberry.ID
    skill: SkillRef
    scale: ProficiencyScale
    proficiency: float
    assessed_at: datetime
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: record_models.SkillAssessment) -> SkillAssessment:
        return cls(
            id=strawberry.ID(str(row.id)),
            source_id=row.source_id,
            contributed_by=strawberry.ID(str(row.provider_id)),
            skill=SkillRef(framework_uri=row.framework_uri, code=row.skill_code, label=row.skill_label, key=row.skill_key),
            scale=ProficiencyScale(name=row.scale_name, min=row.scale_min, max=row.scale_max),
            proficiency=row.proficiency,
            assessed_at=row.assessed_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@strawberry.type(description="A skill's latest level and how much evidence there is, across contributors.")
class SkillSummary:
    skill: SkillRef
    scale: ProficiencyScale
    latest_proficiency: float
    latest_assessed_at: datetime
    evidence_count: int


@strawberry.type(description="One skill's assessments in time order, oldest first, and its latest level.")
class SkillProgression:
    skill: SkillRef | None
    latest_proficiency: float | None
    assessments: list[SkillAssessment]


@strawberry.type(description="xAPI Verb.")
class Verb:
    id: str
    display: str


@strawberry.type(description="xAPI Activity (the statement's object).")
class ActivityObject:
    id: str
    name: str | None
    type: str | None


@strawberry.type(description="xAPI Score.")
class Score:
    scaled: float | None
    raw: float | None
    min: float | None
    max: float | None


@strawberry.type(description="xAPI Result.")
class ActivityResult:
    score: Score | None
    success: bool | None
    completion: bool | None
    duration: str | None


@strawberry.type(description="A learning event shaped like an xAPI statement; the actor is the learner.")
class Activity:
    id: strawberry.ID
    source_id: str
    contributed_by: strawberry.ID
    verb: Verb
    object: ActivityObject
    result: ActivityResult | None
    timestamp: datetime
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: record_models.Activity) -> Activity:
        has_score = any(
            v is not None
            for v in (row.result_score_scaled, row.result_score_raw, row.result_score_min, row.result_score_max)
        )
        has_result = has_score or any(
            v is not None for v in (row.result_success, row.result_completion, row.result_duration)
        )
        return cls(
            id=strawberry.ID(str(row.id)),
            source_id=row.source_id,
            contributed_by=strawberry.ID(str(row.provider_id)),
            verb=Verb(id=row.verb_id, display=row.verb_display),
            object=ActivityObject(id=row.object_id, name=row.object_name, type=row.object_type),
            result=ActivityResult(
                score=Score(
                    scaled=row.result_score_scaled,
                    raw=row.result_score_raw,
                    min=row.result_score_min,
                    max=row.result_score_max,
                )
                if has_score
                else None,
                success=row.result_success,
                completion=row.result_completion,
                duration=row.result_duration,
            )
            if has_result
            else None,
            timestamp=row.timestamp,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@strawberry.type(description="One change to an entry, in feed order. The entry is null when it is no longer visible.")
class Change:
    op: str = strawberry.field(description="created | updated | deleted")
    section: str
    learner_id: strawberry.ID = strawberry.field(description="This provider's pairwise id for the learner.")
    entry_id: strawberry.ID
    source_id: str
    contributed_by: strawberry.ID
    at: datetime
    badge: Badge | None = None
    skill: SkillAssessment | None = None
    activity: Activity | None = None


@strawberry.type
class ChangeConnection:
    nodes: list[Change]
    page_info: PageInfo


@strawberry.type(description="What a retraction did.")
class RetractionResult:
    retracted: int
    not_found: list[str] = strawberry.field(description="Source ids that are not this provider's live entries.")


@strawberry.type(description="What a batch contribution did. Re-sending a batch creates nothing new.")
class ContributionResult:
    received: int
    created: int
    updated: int
    unchanged: int


@strawberry.type(description="One section x action, as in a scope: `badges` + `read`.")
class AccessItem:
    section: str
    action: str

    @classmethod
    def parse(cls, item: str) -> AccessItem:
        section, _, action = item.partition(":")
        return cls(section=section, action=action)


@strawberry.type(description="A provider's request for access, as the provider sees it.")
class AccessRequest:
    id: strawberry.ID
    learner_id: strawberry.ID = strawberry.field(description="This provider's pairwise id for the learner.")
    items: list[AccessItem]
    approved_items: list[AccessItem]
    purpose: str
    duration_days: int | None
    status: str = strawberry.field(description="pending | approved | partially_approved | denied")
    created_at: datetime
    decided_at: datetime | None


@strawberry.type
class AccessRequestResult:
    request: AccessRequest
    merged: bool = strawberry.field(description="True when merged into a request already pending.")


@strawberry.type
class AccessRequestConnection:
    nodes: list[AccessRequest]
    page_info: PageInfo


__all__ = ["JSON"]
