"""Imports every model so ``Base.metadata`` is complete (Alembic, tests)."""

from hub.grants.models import AccessRequest, ConsentGrant, DisclosureEvent, LearnerLogHead, LearnerPseudonym
from hub.oauth.models import IssuedToken
from hub.people.models import Guardian, Learner, LearnerGuardian
from hub.providers.models import OAuthClient, Provider
from hub.records.models import Activity, Badge, LearnerDataKey, SectionEntry, SkillAssessment

__all__ = [
    "AccessRequest",
    "Activity",
    "Badge",
    "ConsentGrant",
    "DisclosureEvent",
    "Guardian",
    "IssuedToken",
    "Learner",
    "LearnerDataKey",
    "LearnerGuardian",
    "LearnerLogHead",
    "LearnerPseudonym",
    "OAuthClient",
    "Provider",
    "SectionEntry",
    "SkillAssessment",
]
