"""Imports every model so ``Base.metadata`` is complete (Alembic, tests)."""

from connectors.models import ConnectorDeadLetter, ConnectorInstance, ConnectorRun
from hub.grants.models import ConsentGrant, DisclosureEvent, LearnerPseudonym
from hub.links.models import LearnerLink
from hub.oauth.models import IssuedToken
from hub.people.models import Guardian, Learner, LearnerGuardian
from hub.providers.models import OAuthClient, Provider
from hub.records.models import Activity, Badge, SkillAssessment

__all__ = [
    "Activity",
    "Badge",
    "ConnectorDeadLetter",
    "ConnectorInstance",
    "ConnectorRun",
    "ConsentGrant",
    "DisclosureEvent",
    "Guardian",
    "IssuedToken",
    "Learner",
    "LearnerGuardian",
    "LearnerLink",
    "LearnerPseudonym",
    "OAuthClient",
    "Provider",
    "SkillAssessment",
]
