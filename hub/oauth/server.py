"""OAuth 2.0 token endpoint on Authlib's framework-agnostic server core.

Authlib's callbacks are synchronous, our database is async. The adapter therefore does all I/O
outside Authlib: it loads the authenticating client before handing the request over (so
``query_client`` is a dictionary lookup) and persists the issued token after Authlib has
produced it (so ``save_token`` only records it). Nothing is returned to the client until the
token row is committed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6749.util import extract_basic_authorization, scope_to_list
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc.jwk import KeySet

from consent.sections import all_scopes
from hub.config import Settings
from hub.oauth.keys import ALGORITHM

# RFC 6749 §2.3.1: the two ways a confidential client may present its secret.
TOKEN_ENDPOINT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")


def hash_client_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class RegisteredClient(ClientMixin):
    """What Authlib needs to know about a client, detached from the database session."""

    client_id: str
    provider_id: UUID
    client_secret_hash: str
    allowed_scopes: frozenset[str]
    grant_types: frozenset[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

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
        return hmac.compare_digest(hash_client_secret(client_secret), self.client_secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in TOKEN_ENDPOINT_AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


class FormRequest(OAuth2Request):
    """An ``OAuth2Request`` built from an already-read form body."""

    def __init__(self, uri: str, form: dict[str, str], headers: dict[str, str]) -> None:
        super().__init__(method="POST", uri=uri, headers=headers)
        self._form = form
        self.payload = BasicOAuth2Payload(form)
        self.issued_token: dict[str, Any] | None = None

    @property
    def args(self) -> dict[str, str]:
        return {}

    @property
    def form(self) -> dict[str, str]:
        return self._form


class AccessTokenGenerator(JWTBearerTokenGenerator):
    """RFC 9068 JWT access tokens: ``typ: at+jwt``, ``aud`` = the Kinfolio API."""

    def __init__(self, settings: Settings, signing_keys: KeySet) -> None:
        super().__init__(issuer=settings.issuer, alg=ALGORITHM)
        self._audience = settings.audience
        self._ttl = settings.access_token_ttl_seconds
        self._keys = signing_keys

    def get_jwks(self) -> KeySet:
        return self._keys

    def get_audiences(self, client: Any, user: Any, scope: str) -> str:
        return self._audience

    def _get_expires_in(self, client: Any, grant_type: str) -> int:
        return self._ttl


# The client loaded for the request being served (see module docstring).
_prefetched_client: ContextVar[RegisteredClient | None] = ContextVar("prefetched_client", default=None)


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    """RFC 6749 §4.4 for confidential clients, with either §2.3.1 authentication method."""

    TOKEN_ENDPOINT_AUTH_METHODS = list(TOKEN_ENDPOINT_AUTH_METHODS)


class KinfolioAuthorizationServer(AuthorizationServer):
    def __init__(self, settings: Settings, signing_keys: KeySet) -> None:
        super().__init__(scopes_supported=all_scopes())
        self.register_grant(ClientCredentialsGrant)
        self.register_token_generator("default", AccessTokenGenerator(settings, signing_keys))
        self._token_uri = f"{settings.issuer.rstrip('/')}/oauth/token"

    # -- Authlib hooks ------------------------------------------------------------------
    def query_client(self, client_id: str) -> RegisteredClient | None:
        client = _prefetched_client.get()
        return client if client is not None and client.client_id == client_id else None

    def save_token(self, token: dict[str, Any], request: FormRequest) -> None:
        request.issued_token = token

    def create_oauth2_request(self, request: FormRequest) -> FormRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> tuple[int, Any, dict]:
        return status, body, dict(headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    # -- entry point --------------------------------------------------------------------
    @staticmethod
    def claimed_client_id(form: dict[str, str], headers: dict[str, str]) -> str | None:
        basic_id, _ = extract_basic_authorization(headers)
        return basic_id or form.get("client_id")

    def token_response(
        self, form: dict[str, str], headers: dict[str, str], client: RegisteredClient | None
    ) -> tuple[int, Any, dict, FormRequest]:
        request = FormRequest(self._token_uri, form, headers)
        marker = _prefetched_client.set(client)
        try:
            status, body, response_headers = self.create_token_response(request)
        finally:
            _prefetched_client.reset(marker)
        return status, body, response_headers, request
