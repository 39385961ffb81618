"""Imports every model so ``Base.metadata`` is complete (Alembic, tests)."""

from hub.accounts.models import OutboxMessage, PasswordReset, RateEvent
from hub.grants.models import ConsentGrant, DisclosureEvent, LearnerPseudonym
from hub.oauth.models import AuthorizationCode, ClientAssertionJti, IssuedToken, RefreshToken
from hub.people.models import Guardian, Learner, LearnerGuardian
from hub.providers.models import OAuthClient, Provider
from hub.records.models import Activity, Badge, SkillAssessment

__all__ = [
    "Activity",
    "AuthorizationCode",
    "Badge",
    "ClientAssertionJti",
    "ConsentGrant",
    "DisclosureEvent",
    "Guardian",
    "IssuedToken",
    "Learner",
    "LearnerGuardian",
    "LearnerPseudonym",
    "OAuthClient",
    "OutboxMessage",
    "PasswordReset",
    "Provider",
    "RateEvent",
    "RefreshToken",
    "SkillAssessment",
]
