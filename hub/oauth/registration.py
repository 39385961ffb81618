"""Client metadata rules (RFC 7591 §2) and dynamic registration in the 1EdTech Open Badges 3.0
profile: no initial access token, required display metadata, every URL on the client's host,
``client_secret_basic``, grants ``authorization_code`` + ``refresh_token`` only.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from consent.sections import parse_scope
from hub.oauth.server import hash_client_secret, new_client_secret
from hub.providers.models import OAuthClient, Provider

REQUIRED = ("client_name", "client_uri", "logo_uri", "tos_uri", "policy_uri", "software_id", "software_version",
            "redirect_uris", "scope")
URL_FIELDS = ("client_uri", "logo_uri", "tos_uri", "policy_uri")
ALLOWED_GRANTS = {"authorization_code", "refresh_token"}


class RegistrationError(ValueError):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error


def _is_loopback(host: str | None) -> bool:
    return host in ("localhost", "::1") or (host or "").startswith("127.")


def check_url(value: Any, field: str, *, redirect: bool = False) -> str:
    """An absolute https URL (http only on loopback, RFC 8252 §7.3), no fragment (RFC 6749 §3.1.2)."""
    error = "invalid_redirect_uri" if redirect else "invalid_client_metadata"
    if not isinstance(value, str) or not value or len(value) > 2000:
        raise RegistrationError(error, f"{field} must be a URL")
    parts = urlsplit(value)
    if parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(parts.hostname)):
        pass
    else:
        raise RegistrationError(error, f"{field} must be an https URL (http only on loopback): {value!r}")
    if not parts.hostname or parts.fragment or "#" in value:
        raise RegistrationError(error, f"{field} must be absolute and have no fragment: {value!r}")
    if parts.username or parts.password:
        raise RegistrationError(error, f"{field} must not carry credentials")
    return value


def check_scopes(scope: Any) -> list[str]:
    if not isinstance(scope, str) or not scope.split():
        raise RegistrationError("invalid_client_metadata", "scope must be a space-separated list of scopes")
    scopes = sorted(set(scope.split()))
    for item in scopes:
        try:
            parse_scope(item)
        except ValueError as exc:
            raise RegistrationError("invalid_client_metadata", str(exc)) from None
    return scopes


@dataclass(frozen=True)
class ClientMetadata:
    client_name: str
    client_uri: str
    logo_uri: str
    tos_uri: str
    policy_uri: str
    software_id: str
    software_version: str
    redirect_uris: list[str]
    scopes: list[str]
    grant_types: list[str]


def validate(raw: bytes) -> ClientMetadata:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise RegistrationError("invalid_client_metadata", "the body is not JSON") from None
    if not isinstance(doc, dict):
        raise RegistrationError("invalid_client_metadata", "the body must be a JSON object")
    missing = [name for name in REQUIRED if name not in doc or doc[name] in (None, "", [])]
    if missing:
        raise RegistrationError("invalid_client_metadata", f"missing required metadata: {', '.join(missing)}")
    for name in ("client_name", "software_id", "software_version"):
        if not isinstance(doc[name], str) or len(doc[name]) > 200 or not doc[name].strip():
            raise RegistrationError("invalid_client_metadata", f"{name} must be a short string")
    urls = {name: check_url(doc[name], name) for name in URL_FIELDS}
    uris = doc["redirect_uris"]
    if not isinstance(uris, list) or not 1 <= len(uris) <= 10:
        raise RegistrationError("invalid_redirect_uri", "redirect_uris must be a list of 1 to 10 URLs")
    redirect_uris = [check_url(uri, "redirect_uris", redirect=True) for uri in uris]
    # OB 3.0 §7.2.1 (Dynamic Client Registration): all URLs share the client_uri's host.
    host = urlsplit(urls["client_uri"]).hostname
    for value in [*urls.values(), *redirect_uris]:
        if urlsplit(value).hostname != host:
            raise RegistrationError(
                "invalid_redirect_uri" if value in redirect_uris else "invalid_client_metadata",
                f"{value!r} is not on the client_uri host {host!r}",
            )
    grant_types = doc.get("grant_types", ["authorization_code", "refresh_token"])
    if not isinstance(grant_types, list) or not set(grant_types) <= ALLOWED_GRANTS or "authorization_code" not in grant_types:
        raise RegistrationError("invalid_client_metadata", "grant_types may only be authorization_code and refresh_token")
    if doc.get("response_types", ["code"]) != ["code"]:
        raise RegistrationError("invalid_client_metadata", "response_types must be [\"code\"]")
    if doc.get("token_endpoint_auth_method", "client_secret_basic") != "client_secret_basic":
        raise RegistrationError("invalid_client_metadata", "token_endpoint_auth_method must be client_secret_basic")
    return ClientMetadata(
        client_name=doc["client_name"].strip(), software_id=doc["software_id"], software_version=doc["software_version"],
        redirect_uris=redirect_uris, scopes=check_scopes(doc["scope"]), grant_types=sorted(set(grant_types)), **urls,
    )


async def register(*, session: AsyncSession, metadata: ClientMetadata, now: datetime) -> dict[str, Any]:
    """Create the client (and a provider of its own). It can reach nothing until a family consents."""
    client_id = f"kf_{secrets.token_hex(12)}"
    provider = Provider(name=f"{metadata.client_name} [{client_id}]", kind="app", created_at=now)
    session.add(provider)
    await session.flush()
    secret = new_client_secret()
    session.add(
        OAuthClient(
            client_id=client_id, provider_id=provider.id, name=metadata.client_name,
            client_secret_hash=hash_client_secret(secret), allowed_scopes=" ".join(metadata.scopes),
            grant_types=" ".join(metadata.grant_types), redirect_uris=" ".join(metadata.redirect_uris),
            token_endpoint_auth_method="client_secret_basic", client_uri=metadata.client_uri,
            logo_uri=metadata.logo_uri, tos_uri=metadata.tos_uri, policy_uri=metadata.policy_uri,
            software_id=metadata.software_id, software_version=metadata.software_version,
            dynamically_registered=True, created_at=now,
        )
    )
    await session.flush()
    # RFC 7591 §3.2.1: the registered metadata plus the credentials.
    return {
        "client_id": client_id,
        "client_secret": secret,
        "client_id_issued_at": int(now.timestamp()),
        "client_secret_expires_at": 0,
        "client_name": metadata.client_name,
        "client_uri": metadata.client_uri,
        "logo_uri": metadata.logo_uri,
        "tos_uri": metadata.tos_uri,
        "policy_uri": metadata.policy_uri,
        "software_id": metadata.software_id,
        "software_version": metadata.software_version,
        "redirect_uris": metadata.redirect_uris,
        "scope": " ".join(metadata.scopes),
        "grant_types": metadata.grant_types,
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
    }
