"""GraphQL errors with stable ``extensions.code`` values providers can branch on."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from graphql import GraphQLError


class ErrorCode(StrEnum):
    BAD_USER_INPUT = "BAD_USER_INPUT"
    CONFLICT = "CONFLICT"
    CONSENT_REQUIRED = "CONSENT_REQUIRED"
    COST_LIMIT = "COST_LIMIT"
    # Stored entries failed an integrity or key check: tampering, a key problem, or a record
    # crypto-shredded under our feet. Nothing is disclosed; operators are alerted through the log.
    DATA_UNREADABLE = "DATA_UNREADABLE"
    INSUFFICIENT_SCOPE = "INSUFFICIENT_SCOPE"
    INTERNAL = "INTERNAL"
    NOT_FOUND = "NOT_FOUND"
    # The operator has not set up what the call needs (JSON-LD contexts, CASE schemas): a lasting
    # condition, not an incident, so clients must not retry it the way they retry INTERNAL.
    NOT_CONFIGURED = "NOT_CONFIGURED"
    RATE_LIMITED = "RATE_LIMITED"
    REQUEST_COOLDOWN = "REQUEST_COOLDOWN"


EXPECTED_CODES = frozenset(ErrorCode) - {ErrorCode.INTERNAL}


def api_error(code: ErrorCode, message: str, **extensions: Any) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code.value, **extensions})


def learner_not_found() -> GraphQLError:
    # One message for "no such learner" and "no grant for this learner" (no existence leak).
    return api_error(ErrorCode.NOT_FOUND, "learner not found")


def bad_input(message: str, **extensions: Any) -> GraphQLError:
    return api_error(ErrorCode.BAD_USER_INPUT, message, **extensions)
