"""Imports every model so ``Base.metadata`` is complete (Alembic, tests)."""

from hub.accounts.models import LearnerAccount, OutboxMessage, PasswordReset, RateEvent
from hub.credentials.models import HeldCredential, IssuedCredential
from hub.grants.models import AccessRequest, ConsentGrant, DisclosureEvent, LearnerLogHead, LearnerPseudonym
from hub.oauth.models import AuthorizationCode, ClientAssertionJti, IssuedToken, RefreshToken
from hub.people.models import Guardian, Learner, LearnerGuardian
from hub.providers.models import OAuthClient, Provider
from hub.records.models import Activity, Badge, SkillAssessment

__all__ = [
    "AccessRequest",
    "Activity",
    "AuthorizationCode",
    "Badge",
    "ClientAssertionJti",
    "ConsentGrant",
    "DisclosureEvent",
    "Guardian",
    "HeldCredential",
    "IssuedCredential",
    "IssuedToken",
    "Learner",
    "LearnerAccount",
    "LearnerGuardian",
    "LearnerLogHead",
    "LearnerPseudonym",
    "OAuthClient",
    "OutboxMessage",
    "PasswordReset",
    "Provider",
    "RateEvent",
    "RefreshToken",
    "SkillAssessment",
]
