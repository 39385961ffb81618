"""Family accounts: passwords, sign-in throttling, password resets, the outbox.

Adds and flushes; never commits. Passwords are hashed with Argon2id (argon2-cffi's defaults,
RFC 9106's second recommended parameter set).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.accounts.models import LearnerAccount, OutboxMessage, PasswordReset, RateEvent
from hub.people.models import Guardian, Learner, LearnerGuardian

log = logging.getLogger(__name__)
_hasher = PasswordHasher()  # Argon2id
# Verified against when the email is unknown, so both paths cost the same (no timing oracle).
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256
LOGIN_BUCKET = "login"


class WeakPassword(ValueError):
    pass


def use_hasher(hasher: PasswordHasher) -> None:
    """Replace the Argon2id parameters (the test suite uses argon2's cheapest profile for speed)."""
    global _hasher, _DUMMY_HASH
    _hasher = hasher
    _DUMMY_HASH = hasher.hash(secrets.token_urlsafe(16))


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"use at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"use at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    check_password_rules(password)
    return _hasher.hash(password)


def session_version(password_hash: str | None) -> str:
    """Changes whenever the password does: a reset signs every other session out."""
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# -- throttling ---------------------------------------------------------------------------


async def count_events(*, session: AsyncSession, bucket: str, key: str, since: datetime) -> int:
    return (
        await session.execute(
            select(func.count()).select_from(RateEvent).where(
                RateEvent.bucket == bucket, RateEvent.key == key, RateEvent.at > since
            )
        )
    ).scalar_one()


async def record_event(*, session: AsyncSession, bucket: str, key: str, now: datetime) -> None:
    session.add(RateEvent(bucket=bucket, key=key, at=now))
    await session.flush()


# -- sign-up and sign-in ------------------------------------------------------------------


class SignUpRefused(ValueError):
    pass


async def sign_up(*, session: AsyncSession, email: str, display_name: str, password: str) -> Guardian:
    from hub.people.service import AlreadyExists, create_guardian

    password_hash = hash_password(password)
    if not display_name.strip():
        raise SignUpRefused("enter your name")
    if await _learner_account_by_email(session, email) is not None:
        raise SignUpRefused("an account with this email already exists; sign in or reset the password")
    try:
        guardian = await create_guardian(session=session, email=email, display_name=display_name)
    except AlreadyExists:
        # An operator-created account has no password yet: its owner proves the address by
        # password reset instead (otherwise anyone could claim it).
        raise SignUpRefused("an account with this email already exists; sign in or reset the password") from None
    guardian.password_hash = password_hash
    await session.flush()
    return guardian


@dataclass(frozen=True)
class SignInResult:
    guardian: Guardian | None
    throttled: bool = False
    # A learner's own sign-in (13+), when the email belongs to a learner account instead.
    learner_account: LearnerAccount | None = None


async def sign_in(
    *, session: AsyncSession, email: str, password: str, now: datetime, max_failures: int, lockout_seconds: int
) -> SignInResult:
    """Check a password. After ``max_failures`` failures for one email within the lockout window,
    every attempt is refused without looking at the password until the window has passed."""
    key = email.strip().lower()[:320]
    since = now - timedelta(seconds=lockout_seconds)
    if await count_events(session=session, bucket=LOGIN_BUCKET, key=key, since=since) >= max_failures:
        return SignInResult(None, throttled=True)
    guardian = (await session.execute(select(Guardian).where(Guardian.email == key))).scalar_one_or_none()
    # Emails are unique across guardians and learner accounts: at most one of the two matches.
    account: Guardian | LearnerAccount | None = guardian or await _learner_account_by_email(session, key)
    ok = False
    try:
        ok = _hasher.verify(account.password_hash if account and account.password_hash else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or account is None or account.password_hash is None:
        await record_event(session=session, bucket=LOGIN_BUCKET, key=key, now=now)
        return SignInResult(None)
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = _hasher.hash(password)
    await session.execute(delete(RateEvent).where(RateEvent.bucket == LOGIN_BUCKET, RateEvent.key == key))
    if isinstance(account, LearnerAccount):
        return SignInResult(None, learner_account=account)
    return SignInResult(guardian)


async def set_password(*, session: AsyncSession, guardian_id: UUID, password: str) -> None:
    guardian = await session.get(Guardian, guardian_id)
    if guardian is None:
        raise LookupError(f"no guardian {guardian_id}")
    guardian.password_hash = hash_password(password)
    await session.flush()


# -- password reset -----------------------------------------------------------------------


async def request_password_reset(*, session: AsyncSession, email: str, base_url: str, now: datetime, ttl_seconds: int) -> None:
    """Queue a reset mail if the account exists. Says nothing either way (no account probing)."""
    guardian = (await session.execute(select(Guardian).where(Guardian.email == email.strip().lower()))).scalar_one_or_none()
    if guardian is None:
        return
    token = secrets.token_urlsafe(32)
    session.add(PasswordReset(token_hash=_digest(token), guardian_id=guardian.id, created_at=now,
                              expires_at=now + timedelta(seconds=ttl_seconds)))
    link = f"{base_url.rstrip('/')}/account/reset/{token}"
    body = (
        f"Hello {guardian.display_name},\n\nSomeone asked to reset the password of your Kinfolio account.\n"
        f"If it was you, open this link within {ttl_seconds // 60} minutes:\n\n{link}\n\n"
        "If it was not you, ignore this message; your password has not changed.\n"
    )
    session.add(OutboxMessage(to_address=guardian.email, subject="Reset your Kinfolio password", body=body, created_at=now))
    # No mail server in development: the outbox row and this log line are the delivery.
    log.info("outbox: password reset mail to %s: %s", guardian.email, link)
    await session.flush()


async def reset_token_guardian(*, session: AsyncSession, token: str, now: datetime) -> PasswordReset | None:
    if not token or len(token) > 100:
        return None
    row = await session.get(PasswordReset, _digest(token))
    if row is None or row.used_at is not None or row.expires_at <= now:
        return None
    return row


async def complete_password_reset(*, session: AsyncSession, token: str, password: str, now: datetime) -> bool:
    row = await reset_token_guardian(session=session, token=token, now=now)
    if row is None:
        return False
    await set_password(session=session, guardian_id=row.guardian_id, password=password)
    row.used_at = now
    guardian = await session.get(Guardian, row.guardian_id)
    if guardian is not None:  # a reset also lifts the sign-in lockout
        await session.execute(delete(RateEvent).where(RateEvent.bucket == LOGIN_BUCKET, RateEvent.key == guardian.email))
    await session.flush()
    return True


# -- the family -------------------------------------------------------------------------


async def learners_of(*, session: AsyncSession, guardian_id: UUID) -> list[Learner]:
    rows = await session.execute(
        select(Learner)
        .join(LearnerGuardian, LearnerGuardian.learner_id == Learner.id)
        .where(LearnerGuardian.guardian_id == guardian_id)
        .order_by(Learner.given_name, Learner.id)
    )
    return list(rows.scalars())


# -- learner accounts (13+) ----------------------------------------------------------------


class LearnerAccountRefused(ValueError):
    pass


async def _learner_account_by_email(session: AsyncSession, email: str) -> LearnerAccount | None:
    return (await session.execute(
        select(LearnerAccount).where(LearnerAccount.email == email.strip().lower()[:320])
    )).scalar_one_or_none()


async def learner_account_of(*, session: AsyncSession, learner_id: UUID) -> LearnerAccount | None:
    return (await session.execute(select(LearnerAccount).where(LearnerAccount.learner_id == learner_id))).scalar_one_or_none()


async def invite_learner(
    *, session: AsyncSession, learner_id: UUID, email: str, base_url: str, now: datetime, ttl_seconds: int,
    may_sign_in: bool,
) -> str:
    """Create (or re-invite) a learner's own account; returns the single-use invitation link.

    ``may_sign_in`` is the age rule (``consent.control``: the learner sees the record from 13),
    decided by the caller. The link goes to the outbox (and the log) like a password reset.
    """
    if not may_sign_in:
        raise LearnerAccountRefused("the learner is too young for their own sign-in")
    email = email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise LearnerAccountRefused(f"{email!r} is not an email address")
    other = await _learner_account_by_email(session, email)
    taken_by_guardian = (await session.execute(select(Guardian.id).where(Guardian.email == email))).first()
    account = await learner_account_of(session=session, learner_id=learner_id)
    if taken_by_guardian or (other is not None and other.learner_id != learner_id):
        raise LearnerAccountRefused("this email already has a Kinfolio account; use another address")
    token = secrets.token_urlsafe(32)
    if account is None:
        account = LearnerAccount(learner_id=learner_id, email=email, created_at=now)
        session.add(account)
    account.email = email
    account.invite_token_hash = _digest(token)
    account.invite_expires_at = now + timedelta(seconds=ttl_seconds)
    link = f"{base_url.rstrip('/')}/account/learner-invite/{token}"
    body = (
        "Hello,\n\nYour family has set up your own sign-in to see your Kinfolio learner record.\n"
        f"Open this link within {ttl_seconds // 3600} hours to choose your password:\n\n{link}\n"
    )
    session.add(OutboxMessage(to_address=email, subject="Your Kinfolio sign-in", body=body, created_at=now))
    log.info("outbox: learner invitation to %s: %s", email, link)
    await session.flush()
    return link


async def learner_invite(*, session: AsyncSession, token: str, now: datetime) -> LearnerAccount | None:
    if not token or len(token) > 100:
        return None
    account = (await session.execute(
        select(LearnerAccount).where(LearnerAccount.invite_token_hash == _digest(token))
    )).scalar_one_or_none()
    if account is None or account.invite_expires_at is None or account.invite_expires_at <= now:
        return None
    return account


async def accept_learner_invite(*, session: AsyncSession, token: str, password: str, now: datetime) -> LearnerAccount | None:
    """The learner chooses a password; the link is used up. Raises WeakPassword."""
    account = await learner_invite(session=session, token=token, now=now)
    if account is None:
        return None
    account.password_hash = hash_password(password)
    account.invite_token_hash = None
    account.invite_expires_at = None
    await session.execute(delete(RateEvent).where(RateEvent.bucket == LOGIN_BUCKET, RateEvent.key == account.email))
    await session.flush()
    return account
