"""Consent: the section catalogue, scopes and the one decision function.

Flow for every provider access (GraphQL field, mutation, connector write):

    token (RFC 9068 JWT) -> scopes
    hub.grants.enforce.authorize(): loads the live grants for (provider, learner)
        -> consent.decide(...)            pure: scope present AND an active grant
        -> disclosure log row             same transaction as the data access
        -> Allowed (carries the grant id) or AccessDenied(reason)

This package is framework-free: no database, no clock, no HTTP.
"""

from consent.policy import Allowed, Decision, Denied, DenyReason, GrantView, decide, has_live_grant
from consent.sections import Action, Section, catalogue, get_section, parse_scope, scope_for

__all__ = [
    "Action",
    "Allowed",
    "Decision",
    "Denied",
    "DenyReason",
    "GrantView",
    "Section",
    "catalogue",
    "decide",
    "get_section",
    "has_live_grant",
    "parse_scope",
    "scope_for",
]
