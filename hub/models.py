"""Imports every model so ``Base.metadata`` is complete (Alembic, tests)."""

from hub.credentials.models import HeldCredential, IssuedCredential
from hub.grants.models import ConsentGrant, DisclosureEvent, LearnerPseudonym
from hub.oauth.models import IssuedToken
from hub.people.models import Guardian, Learner, LearnerGuardian
from hub.providers.models import OAuthClient, Provider
from hub.records.models import Activity, Badge, SkillAssessment

__all__ = [
    "Activity",
    "Badge",
    "ConsentGrant",
    "DisclosureEvent",
    "Guardian",
    "HeldCredential",
    "IssuedCredential",
    "IssuedToken",
    "Learner",
    "LearnerGuardian",
    "LearnerPseudonym",
    "OAuthClient",
    "Provider",
    "SkillAssessment",
]
