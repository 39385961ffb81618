"""``verifyCredential``: a provider checks a credential document it holds (OB 3.0 / CLR 2.0).

No consent decision is made here, on purpose: the caller sends the document, and verifying it
reads no learner record: only the hub's public key material and the hub's revocation status
lists (which bits are set, the same data ``GET /credentials/status/{n}`` serves to anyone).
Nothing about a learner is disclosed, so there is nothing for ``ProviderAccess.authorize`` to
decide and no disclosure event to log. Authentication (a valid access token) is still required,
as for every GraphQL call, because verification costs CPU.

Checks follow ``hub.credentials.verify``: format, proof (eddsa-rdfc-2022 or VC-JWT, OB 3.0 §8),
issuer key (VC Data Integrity §4.2 / OB 3.0 §8.3: the key must be the issuer's), validity period
(VC Data Model 2.0 §4.9), status (Bitstring Status List v1.0 §3.2) and, for a CLR, each embedded
credential (CLR 2.0). OB 2.0 assertions (``hub.credentials.ob2``): a signed one by its JWS, a hosted
one by fetching its id from an origin the operator allowed (``hosted_origins``; the only network
access here) with the checks hosted assertion, badge class, issuer profile, issuer trust, hosted
scope. Input that is not a credential at all is ``BAD_USER_INPUT``, never a 500.
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from hub.credentials.routes import credential_kit
from hub.credentials.service import CredentialsNotConfigured, verify
from hub.credentials.verify import Check, load_input
from hub.graphql.context import Context
from hub.graphql.errors import ErrorCode, api_error, bad_input

log = logging.getLogger(__name__)
# A CLR with its embedded credentials is rarely above a few hundred KB; refuse what is not plausible.
MAX_CREDENTIAL_CHARS = 2_000_000


@strawberry.enum(description="The outcome of one verification check.")
class CheckOutcome(Enum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_APPLICABLE = "not_applicable"


@strawberry.type(description="One check made while verifying a credential, and why it passed or failed.")
class CredentialCheck:
    check: str = strawberry.field(description="format, proof, issuer key, validity period, status or "
                                              "embedded credential N (…).")
    outcome: CheckOutcome
    reason: str = strawberry.field(description="What was checked, or why it failed.")

    @classmethod
    def from_check(cls, check: Check) -> CredentialCheck:
        outcome = {True: CheckOutcome.PASSED, False: CheckOutcome.FAILED, None: CheckOutcome.NOT_APPLICABLE}[check.passed]
        return cls(check=check.name, outcome=outcome, reason=check.detail)


@strawberry.type(description="The result of verifying a credential.")
class CredentialVerification:
    verified: bool = strawberry.field(description="True when a proof verified and no check failed.")
    format: str = strawberry.field(description="ldp (Data Integrity JSON-LD), jwt (VC-JWT compact JWS) or ob2 "
                                                "(an Open Badges 2.0 assertion, signed or hosted).")
    credential_id: str | None
    issuer_id: str | None
    types: list[str]
    checks: list[CredentialCheck]


def _types(credential: dict[str, Any]) -> list[str]:
    value = credential.get("type")
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [v for v in values if isinstance(v, str)]


async def verify_credential(info: Info[Context, None], credential: str) -> CredentialVerification:
    if len(credential) > MAX_CREDENTIAL_CHARS:
        raise bad_input(f"credential is longer than {MAX_CREDENTIAL_CHARS} characters", argument="credential")
    try:
        data = load_input(credential)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        raise bad_input(f"credential: {exc}" if isinstance(exc, ValueError) else "credential: nested too deeply",
                        argument="credential") from None
    try:
        kit = credential_kit(info.context.request)
    except CredentialsNotConfigured as exc:
        raise api_error(ErrorCode.NOT_CONFIGURED, f"credential verification is not configured on this hub: {exc}") from None
    ctx = info.context
    try:
        async with ctx.db() as session:
            result = await verify(session, kit, data, ctx.access.now)
    except GraphQLError:
        raise
    except RecursionError:
        raise bad_input("credential: nested too deeply", argument="credential") from None
    format_failure = next((c for c in result.checks if c.name == "format" and c.passed is False), None)
    if result.credential is None and format_failure is not None:
        # Not a credential at all (no @context/type, not a parsable JWS): bad input, not a verdict.
        raise bad_input(f"credential: {format_failure.detail}", argument="credential")
    document = result.credential or (data if isinstance(data, dict) else {})
    issuer = document.get("issuer")
    issuer_id = issuer if isinstance(issuer, str) else issuer.get("id") if isinstance(issuer, dict) else None
    issuer_id = result.issuer_id or issuer_id  # OB 2.0: the badge's issuer
    return CredentialVerification(
        verified=result.ok, format=result.format,
        credential_id=document.get("id") if isinstance(document.get("id"), str) else None,
        issuer_id=issuer_id if isinstance(issuer_id, str) else None,
        types=_types(document), checks=[CredentialCheck.from_check(c) for c in result.checks],
    )
