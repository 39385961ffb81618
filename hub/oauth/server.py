"""OAuth 2.0 token endpoint on Authlib's framework-agnostic server core.

Authlib's callbacks are synchronous, our database is async. The adapter therefore does all I/O
outside Authlib: before handing a request over it loads what Authlib will ask for (the
authenticating client, the authorization code or refresh token presented, whether a client
assertion's ``jti`` was seen) into a ``Prefetched`` record, so every callback is a lookup;
after Authlib has answered, ``hub.oauth.routes`` persists the outcome (token rows, a used code,
a rotated refresh token) in one transaction. Nothing is returned to the client until that
transaction is committed.

Grants: client credentials (RFC 6749 §4.4), authorization code (§4.1) with PKCE S256 only
(RFC 7636), refresh token (§6) with rotation. Client authentication: client_secret_basic,
client_secret_post (§2.3.1), private_key_jwt (RFC 7523 §2.2) and none for public clients.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import ClientMixin, InvalidClientError, InvalidRequestError, grants
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6749.util import extract_basic_authorization, scope_to_list
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from consent.sections import supported_scopes
from hub.config import Settings
from hub.db import utcnow
from hub.oauth.keys import ALGORITHM, SigningKeys

# RFC 6749 §2.3.1 (secret), RFC 7523 §2.2 (signed assertion), RFC 7591 §2 "none" (public client).
TOKEN_ENDPOINT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
# Signature algorithms accepted in private_key_jwt assertions, and advertised as such (RFC 8414 §2
# token_endpoint_auth_signing_alg_values_supported). "Ed25519" is RFC 9864's fully specified name
# for EdDSA over Ed25519; never "none", never a MAC.
CLIENT_ASSERTION_ALGORITHMS = ("ES256", "RS256", "PS256", "Ed25519")
CONFIDENTIAL_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def hash_client_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def digest(value: str) -> str:
    """SHA-256 of a random one-time value (code, refresh token): what the database stores."""
    return hashlib.sha256(value.encode()).hexdigest()


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class RegisteredClient(ClientMixin):
    """What Authlib needs to know about a client, detached from the database session."""

    client_id: str
    provider_id: UUID
    client_secret_hash: str | None
    allowed_scopes: frozenset[str]
    grant_types: frozenset[str]
    redirect_uris: tuple[str, ...] = ()
    auth_method: str = "client_secret_basic"
    jwks: str | None = None
    name: str = ""
    client_uri: str | None = None
    logo_uri: str | None = None
    tos_uri: str | None = None
    policy_uri: str | None = None

    @property
    def is_public(self) -> bool:
        return self.auth_method == "none"

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        # Always require redirect_uri: several may be registered, and the exact value is what the
        # code is bound to (RFC 9700 §2.1).
        return None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # RFC 9700 §2.1 / §4.1.3: exact string comparison against the registered list; no prefix,
        # no pattern, no port or path normalisation.
        return redirect_uri in self.redirect_uris

    def get_allowed_scope(self, scope: str | None) -> str | None:
        # RFC 6749 §3.3: no scope requested -> the client's registered scopes. Asking for more
        # than registered is refused (None -> invalid_scope) rather than silently narrowed.
        if not scope:
            return " ".join(sorted(self.allowed_scopes))
        requested = scope_to_list(scope)
        if not set(requested) <= self.allowed_scopes:
            return None
        return " ".join(sorted(set(requested)))

    def check_client_secret(self, client_secret: str) -> bool:
        if self.client_secret_hash is None:
            return False
        return hmac.compare_digest(hash_client_secret(client_secret), self.client_secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.is_public:
            # RFC 6749 §2.1: a public client cannot authenticate; it may use the token endpoint
            # (PKCE protects the code) and revoke its own tokens (RFC 7009 §2.1), nothing else.
            return method == "none" and endpoint in ("token", "revoke")
        if self.auth_method == "private_key_jwt":
            return method == "private_key_jwt"
        # Secret-holding clients may send the secret either way (RFC 6749 §2.3.1).
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    def public_jwks(self) -> KeySet | None:
        if not self.jwks:
            return None
        return KeySet.import_key_set(json.loads(self.jwks))


@dataclass(frozen=True)
class CodeView:
    """An authorization code row, as Authlib's grant wants to see it."""

    code_hash: str
    client_id: str
    redirect_uri: str
    scope: str
    learner_id: UUID
    pairwise_id: str
    family_id: str
    code_challenge: str
    expires_at: datetime
    used_at: datetime | None

    code_challenge_method = "S256"

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass(frozen=True)
class RefreshView:
    token_hash: str
    family_id: str
    client_id: str
    learner_id: UUID
    pairwise_id: str
    scope: str
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None
    grant_live: bool  # the family still has a live grant for this provider and learner

    def check_client(self, client: RegisteredClient) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    @property
    def usable(self) -> bool:
        return self.used_at is None and self.revoked_at is None and self.expires_at > utcnow() and self.grant_live


@dataclass(frozen=True)
class GrantedUser:
    """The resource owner side of a code/refresh grant: the learner the family chose."""

    learner_id: UUID
    pairwise_id: str
    family_id: str

    def get_user_id(self) -> str:
        # RFC 9068 §2.2: sub identifies the resource owner; providers only ever see pairwise ids.
        return self.pairwise_id


@dataclass
class Prefetched:
    """Everything Authlib's callbacks may ask for, loaded by the async caller beforehand."""

    client: RegisteredClient | None = None
    code: CodeView | None = None
    refresh: RefreshView | None = None
    seen_assertion_jtis: frozenset[str] = frozenset()


_prefetched: ContextVar[Prefetched | None] = ContextVar("prefetched", default=None)


class FormRequest(OAuth2Request):
    """An ``OAuth2Request`` built from an already-read form body."""

    def __init__(self, uri: str, form: dict[str, str], headers: dict[str, str]) -> None:
        super().__init__(method="POST", uri=uri, headers=headers)
        self._form = form
        self.payload = BasicOAuth2Payload(form)
        self.issued_token: dict[str, Any] | None = None
        self.used_code: CodeView | None = None
        self.rotated_refresh: RefreshView | None = None
        self.accepted_assertion: tuple[str, str, int] | None = None  # client_id, jti, exp

    @property
    def args(self) -> dict[str, str]:
        return {}

    @property
    def form(self) -> dict[str, str]:
        return self._form


class AccessTokenGenerator(JWTBearerTokenGenerator):
    """RFC 9068 JWT access tokens: ``typ: at+jwt``, ``aud`` = the Kinfolio API."""

    def __init__(self, settings: Settings, signing_keys: SigningKeys) -> None:
        super().__init__(issuer=settings.issuer, alg=ALGORITHM, refresh_token_generator=self._refresh_token)
        self._audience = settings.audience
        self._ttl = settings.access_token_ttl_seconds
        self._keys = signing_keys

    @staticmethod
    def _refresh_token(**_: Any) -> str:
        return secrets.token_urlsafe(32)

    def get_jwks(self) -> KeySet:
        # After `kinfolio keys rotate`, the newest key signs (hub/oauth/keys.py).
        return self._keys.current_signing_key()

    def get_audiences(self, client: Any, user: Any, scope: str) -> str:
        return self._audience

    def _get_expires_in(self, client: Any, grant_type: str) -> int:
        return self._ttl


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    """RFC 6749 §4.4 for confidential clients."""

    TOKEN_ENDPOINT_AUTH_METHODS = list(CONFIDENTIAL_AUTH_METHODS)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    """RFC 6749 §4.1.3 token request. The authorization endpoint itself is ``hub.web.authorize``
    (it needs the family's session and consent page); this class redeems the codes it issues."""

    TOKEN_ENDPOINT_AUTH_METHODS = list(TOKEN_ENDPOINT_AUTH_METHODS)

    def query_authorization_code(self, code: str, client: RegisteredClient) -> CodeView | None:
        found = (_prefetched.get() or Prefetched()).code
        # RFC 6749 §4.1.2/§10.5: single use, short-lived, bound to the client it was issued to
        # (a code from client A redeemed by client B is refused: RFC 9700 §4.5 code injection).
        if (
            found is None
            or found.code_hash != digest(code)
            or found.client_id != client.client_id
            or found.used_at is not None
            or found.expires_at <= utcnow()
        ):
            return None
        return found

    def delete_authorization_code(self, authorization_code: CodeView) -> None:
        self.request.used_code = authorization_code  # marked used by the caller, atomically

    def authenticate_user(self, authorization_code: CodeView) -> GrantedUser:
        return GrantedUser(authorization_code.learner_id, authorization_code.pairwise_id, authorization_code.family_id)

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:  # pragma: no cover
        raise NotImplementedError("codes are issued by hub.web.authorize")


class S256Only(CodeChallenge):
    """RFC 7636 with S256 only, for every client (RFC 9700 §2.1.1).

    Authlib's default takes a missing method as ``plain`` and lets a code without a challenge
    through. Challenges are checked at the authorization endpoint (``hub.web.authorize``), which
    never issues a code without an S256 challenge; here the verifier is always required.
    """

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    CODE_CHALLENGE_METHODS = {"S256": CodeChallenge.CODE_CHALLENGE_METHODS["S256"]}

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        if not grant.request.form.get("code_verifier"):
            # RFC 7636 §4.5: the verifier is required whenever a challenge was sent, i.e. always.
            raise InvalidRequestError("Missing 'code_verifier'")
        super().validate_code_verifier(grant, result)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    """RFC 6749 §6 with rotation: every use returns a new refresh token and retires the old one
    (RFC 9700 §4.14.2); reuse of a retired one is detected by the caller and revokes the family."""

    TOKEN_ENDPOINT_AUTH_METHODS = list(TOKEN_ENDPOINT_AUTH_METHODS)
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshView | None:
        found = (_prefetched.get() or Prefetched()).refresh
        if found is None or found.token_hash != digest(refresh_token) or not found.usable:
            return None
        return found

    def authenticate_user(self, refresh_token: RefreshView) -> GrantedUser:
        return GrantedUser(refresh_token.learner_id, refresh_token.pairwise_id, refresh_token.family_id)

    def revoke_old_credential(self, refresh_token: RefreshView) -> None:
        self.request.rotated_refresh = refresh_token  # marked used by the caller, atomically


class PrivateKeyJWT(JWTBearerClientAssertion):
    """RFC 7523 §2.2 / §3 client authentication against the client's registered JWKS."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, audiences: list[str]) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self._audiences = audiences

    def get_audiences(self) -> list[str]:
        # RFC 7523 §3 item 3: the token endpoint URL (the issuer is also accepted).
        return self._audiences

    def validate_jti(self, claims: dict, jti: str) -> bool:
        # RFC 7523 §3 item 7: a jti is accepted once; the caller stores it until the assertion expires.
        seen = (_prefetched.get() or Prefetched()).seen_assertion_jtis
        if not isinstance(jti, str) or not jti or len(jti) > 200 or jti in seen:
            return False
        if not isinstance(claims.get("exp"), int):
            return False
        _pending_assertion.set((str(claims["sub"]), jti, int(claims["exp"])))
        return True

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        # Authlib decodes with joserfc's "recommended" algorithms only, which leaves out PS256 and
        # Ed25519; the list we advertise is the list we accept.
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=list(CLIENT_ASSERTION_ALGORITHMS))
        except JoseError as exc:
            raise InvalidClientError(description=exc.description) from exc
        self.verify_claims(token.claims)
        return token.claims

    def resolve_client_public_key(self, client: RegisteredClient) -> KeySet:
        keys = client.public_jwks()
        if keys is None:
            return KeySet([])
        return keys

    def __call__(self, query_client: Any, request: FormRequest) -> Any:
        client = super().__call__(query_client, request)
        if client is not None:
            request.accepted_assertion = _pending_assertion.get()
        return client


_pending_assertion: ContextVar[tuple[str, str, int] | None] = ContextVar("pending_assertion", default=None)


def assertion_subject(form: dict[str, str]) -> str | None:
    """The ``sub`` of an unverified client assertion, only to decide which client to load."""
    if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE or not form.get("client_assertion"):
        return None
    try:
        claims = json.loads(jws.extract_compact(form["client_assertion"].encode()).payload)
    except Exception:  # noqa: BLE001 - any garbage means "no client"; Authlib refuses it properly
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub if isinstance(sub, str) and len(sub) <= 64 else None


def assertion_jti(form: dict[str, str]) -> str | None:
    if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE or not form.get("client_assertion"):
        return None
    try:
        claims = json.loads(jws.extract_compact(form["client_assertion"].encode()).payload)
    except Exception:  # noqa: BLE001
        return None
    jti = claims.get("jti") if isinstance(claims, dict) else None
    return jti if isinstance(jti, str) and len(jti) <= 200 else None


class KinfolioAuthorizationServer(AuthorizationServer):
    def __init__(self, settings: Settings, signing_keys: SigningKeys) -> None:
        super().__init__(scopes_supported=supported_scopes())
        base = settings.issuer.rstrip("/")
        self._token_uri = f"{base}/oauth/token"
        self.register_client_auth_method("private_key_jwt", PrivateKeyJWT([self._token_uri, settings.issuer, base]))
        self.register_grant(ClientCredentialsGrant)
        self.register_grant(AuthorizationCodeGrant, [S256Only(required=True)])
        self.register_grant(RefreshTokenGrant)
        self.register_token_generator("default", AccessTokenGenerator(settings, signing_keys))

    # -- Authlib hooks ------------------------------------------------------------------
    def query_client(self, client_id: str) -> RegisteredClient | None:
        client = (_prefetched.get() or Prefetched()).client
        return client if client is not None and client.client_id == client_id else None

    def save_token(self, token: dict[str, Any], request: FormRequest) -> None:
        request.issued_token = token

    def create_oauth2_request(self, request: FormRequest) -> FormRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> tuple[int, Any, dict]:
        return status, body, dict(headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    # -- entry points -------------------------------------------------------------------
    @staticmethod
    def claimed_client_id(form: dict[str, str], headers: dict[str, str]) -> str | None:
        basic_id, _ = extract_basic_authorization(headers)
        return basic_id or assertion_subject(form) or form.get("client_id")

    def token_response(
        self, form: dict[str, str], headers: dict[str, str], prefetched: Prefetched
    ) -> tuple[int, Any, dict, FormRequest]:
        request = FormRequest(self._token_uri, form, headers)
        marker = _prefetched.set(prefetched)
        assertion_marker = _pending_assertion.set(None)
        try:
            status, body, response_headers = self.create_token_response(request)
        finally:
            _prefetched.reset(marker)
            _pending_assertion.reset(assertion_marker)
        return status, body, response_headers, request

    def authenticate_for(
        self, endpoint: str, form: dict[str, str], headers: dict[str, str], prefetched: Prefetched
    ) -> tuple[RegisteredClient | None, FormRequest]:
        """Client authentication for the revocation/introspection endpoints (same methods as token)."""
        request = FormRequest(self._token_uri, form, headers)
        marker = _prefetched.set(prefetched)
        assertion_marker = _pending_assertion.set(None)
        try:
            client = self.authenticate_client(request, list(TOKEN_ENDPOINT_AUTH_METHODS), endpoint)
        except Exception:  # noqa: BLE001 - InvalidClientError and friends: unauthenticated
            client = None
        finally:
            _prefetched.reset(marker)
            _pending_assertion.reset(assertion_marker)
        return client, request
