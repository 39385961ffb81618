"""GraphQL output types. Kept apart from ORM rows; each has ``from_row``."""

from __future__ import annotations

from datetime import datetime
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import strawberry

from hub.graphql import frameworks
from hub.graphql.frameworks import FrameworkItem
from hub.records import models as record_models
from hub.records.service import OpenEntry, encode_cursor
from schemas import records as record_schemas

T = TypeVar("T")

# The input enums of schemas.records, exposed as GraphQL enums (one definition for both).
PathwayKind = strawberry.enum(record_schemas.PathwayKind, description="What kind of college or career exposure.")
LanguageProficiency = strawberry.enum(record_schemas.LanguageProficiency)
SupportNeedCategory = strawberry.enum(record_schemas.SupportNeedCategory)
ConductStatus = strawberry.enum(record_schemas.ConductStatus)


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


class EntryEdge(Edge[T]):
    """The edge of a record entry, its cursor encoded only if the query reads it: most queries
    ask for ``nodes`` only, and a profile read would otherwise encode 90 cursors to send 50."""

    def __init__(self, node: T, at: datetime, entry_id: int) -> None:  # noqa: D107 - not the dataclass's
        self.node = node
        self._at, self._entry_id = at, entry_id

    @property  # type: ignore[override]  # read-only: the edge's cursor is its entry's position
    def cursor(self) -> str:
        return encode_cursor(self._at, self._entry_id)


@strawberry.type(description="A page of entries, newest first (Relay cursor connection).")
class Connection(Generic[T]):
    edges: list[Edge[T]]
    nodes: list[T]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[int | None]] | None] = None

    @strawberry.field(
        description="How many entries match (same filters, all pages), counted only when asked for; "
        "null for activities, whose volume makes a count a scan of the learner's whole stream."
    )
    async def total_count(self) -> int | None:
        return await self.count() if self.count is not None else None


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

    @strawberry.field(description="The imported CASE item this skill names (frameworkUri is the item's URI, or "
                      "the framework's URI with code its humanCodingScheme); null when none is imported.")
    async def framework_item(self, info: strawberry.Info) -> FrameworkItem | None:
        return await frameworks.framework_item(info, self.framework_uri, self.code)


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
        # Plain `or` chains, not any() over generators: this runs for every activity of a page.
        has_score = (row.result_score_scaled is not None or row.result_score_raw is not None
                     or row.result_score_min is not None or row.result_score_max is not None)
        has_result = (has_score or row.result_success is not None or row.result_completion is not None
                      or row.result_duration is not None)
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


@strawberry.type
class SectionContribution:
    section: str
    received: int
    created: int
    updated: int
    unchanged: int


@strawberry.type(description="What happened to one learner's part of a contributeBatch call.")
class LearnerBatchResult:
    learner_id: strawberry.ID
    status: str = strawberry.field(description="stored | refused | invalid (refused and invalid store nothing for this learner)")
    code: str | None = strawberry.field(description="The error code when not stored (CONSENT_REQUIRED, NOT_FOUND, ...).")
    reason: str | None
    errors: list[str]
    sections: list[SectionContribution]


@strawberry.type(description="What a retraction did.")
class RetractionResult:
    retracted: int
    not_found: list[str] = strawberry.field(description="Source ids that are not this provider's live entries.")
@strawberry.type(description="An organisation: a name and, when known, an identifying IRI.")
class Organisation:
    name: str
    id: str | None

    @classmethod
    def of(cls, value: record_schemas.Organisation) -> Organisation:
        return cls(name=value.name, id=value.id)


def _envelope(entry: OpenEntry) -> dict[str, object]:
    """The fields every generic section's entry shares."""
    return {
        "id": strawberry.ID(str(entry.id)),
        "source_id": entry.source_id,
        "contributed_by": strawberry.ID(str(entry.provider_id)),
        "created_at": entry.created_at,
        "updated_at": entry.updated_at,
    }


@strawberry.type(description="A language the learner uses (BCP 47 tag).")
class Language:
    tag: str
    proficiency: LanguageProficiency | None


@strawberry.type(description="How the learner wishes to be known, as stated at `asOf`.")
class ProfileEntry:
    id: strawberry.ID
    source_id: str
    contributed_by: strawberry.ID
    as_of: datetime
    preferred_name: str | None
    pronouns: str | None
    languages: list[Language]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_entry(cls, entry: OpenEntry) -> ProfileEntry:
        v: record_schemas.ProfileCreate = entry.value
        return cls(
            **_envelope(entry), as_of=v.as_of, preferred_name=v.preferred_name, pronouns=v.pronouns,
            languages=[Language(tag=lang.tag, proficiency=lang.proficiency) for lang in v.languages],
        )  # type: ignore[arg-type]


@strawberry.type(description="Exposure to a college or a career.")
class Pathway:
    id: strawberry.ID
    source_id: str
    contributed_by: strawberry.ID
    kind: PathwayKind
    organisation: Organisation
    occurred_at: datetime
    hours: float | None
    reflection: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_entry(cls, entry: OpenEntry) -> Pathway:
        v: record_schemas.PathwayCreate = entry.value
        return cls(
            **_envelope(entry), kind=v.kind, organisation=Organisation.of(v.organisation), occurred_at=v.occurred_at,
            hours=v.hours, reflection=v.reflection,
        )  # type: ignore[arg-type]


@strawberry.type(description="Who confirmed a service record.")
class Verifier:
    name: str
    role: str | None
    email: str | None


@strawberry.type(description="Service or volunteering over a date range.")
class ServiceEntry:
    id: strawberry.ID
    source_id: str
    contributed_by: strawberry.ID
    organisation: Organisation
    role: str
    hours: float
    started_at: datetime
    ended_at: datetime | None
    verifier: Verifier | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_entry(cls, entry: OpenEntry) -> ServiceEntry:
        v: record_schemas.ServiceCreate = entry.value
        return cls(
            **_envelope(entry), organisation=Organisation.of(v.organisation), role=v.role, hours=v.hours,
            started_at=v.started_at, ended_at=v.ended_at,
            verifier=Verifier(name=v.verifier.name, role=v.verifier.role, email=v.verifier.email) if v.verifier else None,
        )  # type: ignore[arg-type]


@strawberry.type
class Milestone:
    title: str
    due_at: datetime | None
    reached_at: datetime | None


@strawberry.type(description="Self-managed or project work.")
class Project:
    id: strawberry.ID
    source_id: str
    contributed_by: strawberry.ID
    title: str
    role: str | None
    started_at: datetime
    completed_at: datetime | None
    milestones: list[Milestone]
    outcome: str | None
    linked_skills: list[SkillRef]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_entry(cls, entry: OpenEntry) -> Project:
        v: record_schemas.ProjectCreate = entry.value
        return cls(
            **_envelope(entry), title=v.title, role=v.role, started_at=v.started_at, completed_at=v.completed_at,
            milestones=[Milestone(title=m.title, due_at=m.due_at, reached_at=m.reached_at) for m in v.milestones],
            outcome=v.outcome,
            linked_skills=[SkillRef(framework_uri=s.framework_uri, code=s.code, label=s.label, key=s.key) for s in v.linked_skills],
        )  # type: ignore[arg-type]


@strawberry.type(description="An identified skill gap, learning difference or accommodation (sensitive: encrypted at rest).")
class SupportNeed:
    id: strawberry.ID
    source_id: str
    contributed_by: strawberry.ID
    category: SupportNeedCategory
    description: str
    identified_at: datetime
    identified_by: str | None
    accommodations: list[str]
    review_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_entry(cls, entry: OpenEntry) -> SupportNeed:
        v: record_schemas.SupportNeedCreate = entry.value
        return cls(
            **_envelope(entry), category=v.category, description=v.description, identified_at=v.identified_at,
            identified_by=v.identified_by, accommodations=list(v.accommodations), review_at=v.review_at,
        )  # type: ignore[arg-type]


@strawberry.type(description="A fitness or health-related progress measure (sensitive: encrypted at rest).")
class WellbeingMeasure:
    id: strawberry.ID
    source_id: str
    contributed_by: strawberry.ID
    measure: str
    value: float
    unit: str
    measured_at: datetime
    goal: float | None
    notes: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_entry(cls, entry: OpenEntry) -> WellbeingMeasure:
        v: record_schemas.WellbeingCreate = entry.value
        return cls(
            **_envelope(entry), measure=v.measure, value=v.value, unit=v.unit, measured_at=v.measured_at,
            goal=v.goal, notes=v.notes,
        )  # type: ignore[arg-type]


@strawberry.type
class ConductResolution:
    status: ConductStatus
    resolved_at: datetime | None
    notes: str | None


@strawberry.type(description="A behaviour record and its resolution (sensitive: encrypted at rest).")
class ConductRecord:
    id: strawberry.ID
    source_id: str
    contributed_by: strawberry.ID
    occurred_at: datetime
    category: str
    description: str
    resolution: ConductResolution | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_entry(cls, entry: OpenEntry) -> ConductRecord:
        v: record_schemas.ConductCreate = entry.value
        r = v.resolution
        return cls(
            **_envelope(entry), occurred_at=v.occurred_at, category=v.category, description=v.description,
            resolution=ConductResolution(status=r.status, resolved_at=r.resolved_at, notes=r.notes) if r else None,
        )  # type: ignore[arg-type]


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

