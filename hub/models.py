"""Imports every model so ``Base.metadata`` is complete (Alembic, tests)."""

from connectors.models import ConnectorDeadLetter, ConnectorInstance, ConnectorRun
from hub.accounts.models import LearnerAccount, OutboxMessage, PasswordReset, RateEvent
from hub.credentials.models import HeldCredential, IssuedCredential
from hub.frameworks.models import CaseAssociation, CaseDocument, CaseItem
from hub.grants.models import AccessRequest, ConsentGrant, DisclosureEvent, LearnerLogHead, LearnerPseudonym
from hub.links.models import LearnerLink
from hub.oauth.models import AuthorizationCode, ClientAssertionJti, IssuedToken, RefreshToken
from hub.people.models import Guardian, Learner, LearnerGuardian
from hub.providers.models import OAuthClient, Provider
from hub.roster.models import GuardianInvitation, OneRosterEntity
from hub.records.models import Activity, Badge, LearnerDataKey, RecordChange, SectionEntry, SkillAssessment

__all__ = [
    "AccessRequest",
    "Activity",
    "AuthorizationCode",
    "Badge",
    "CaseAssociation",
    "CaseDocument",
    "CaseItem",
    "ClientAssertionJti",
    "ConnectorDeadLetter",
    "ConnectorInstance",
    "ConnectorRun",
    "ConsentGrant",
    "DisclosureEvent",
    "Guardian",
    "GuardianInvitation",
    "HeldCredential",
    "IssuedCredential",
    "IssuedToken",
    "Learner",
    "LearnerAccount",
    "LearnerDataKey",
    "LearnerGuardian",
    "LearnerLogHead",
    "LearnerLink",
    "LearnerPseudonym",
    "OAuthClient",
    "OneRosterEntity",
    "OutboxMessage",
    "PasswordReset",
    "Provider",
    "RateEvent",
    "RecordChange",
    "RefreshToken",
    "SectionEntry",
    "SkillAssessment",
]
