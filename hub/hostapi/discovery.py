"""``GET /discovery``: the Service Description Document (OB 3.0 §6.3.1 / §7.1, CLR 2.0 §6.3.1).

An OpenAPI 3.0 document naming this Host's endpoints, its privacy policy
(``info.x-imssf-privacyPolicyUrl``) and its ``OAuth2ACG`` security scheme: the hub's
authorization, token and refresh URLs, the dynamic registration URL
(``x-imssf-registrationUrl``, RFC 7591 in the OB 3.0 profile) and the exact scope URIs
(1EdTech Security Framework 1.1 §4.1; OB 3.0 §6 / CLR 2.0 §6: ``credential.readonly``,
``credential.upsert``, ``profile.readonly``, ``profile.update`` under each spec's ``/scope/``).
"""

from __future__ import annotations

from typing import Any

from consent.sections import CLR_SCOPE_PREFIX, OB_SCOPE_PREFIX

SCOPE_TEXT = {
    "credential.readonly": "Permission to read credentials for the user (Kinfolio: see the learner's badges)",
    "credential.upsert": "Permission to create or update credentials for the user (Kinfolio: add badges)",
    "profile.readonly": "Permission to read the profile for the user (Kinfolio: the learner's profile section)",
    "profile.update": "Permission to update the profile for the user (Kinfolio: add a profile statement)",
}
TITLES = {
    "ob": ("Kinfolio Open Badges API", "3.0", "OpenBadgeCredential", OB_SCOPE_PREFIX, "/ims/ob/v3p0"),
    "clr": ("Kinfolio Comprehensive Learner Record API", "2.0", "ClrCredential", CLR_SCOPE_PREFIX, "/ims/clr/v2p0"),
}


def _error_responses() -> dict[str, Any]:
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Imsx_StatusInfo"}}}}
    return {str(code): {"description": text, **ref} for code, text in (
        (400, "Bad request"), (401, "Unauthorized"), (403, "Forbidden (scope or the family's consent)"),
        (404, "Not found"), (405, "Method not allowed"), (500, "Internal error"))}


def service_description(binding: str, issuer: str, privacy_policy_url: str) -> dict[str, Any]:
    title, version, credential_type, prefix, path = TITLES[binding]
    base = issuer.rstrip("/")
    scope = {name: prefix + name for name in SCOPE_TEXT}
    list_schema = "GetOpenBadgeCredentialsResponse" if binding == "ob" else "GetClrCredentialsResponse"
    security = lambda *names: [{"OAuth2ACG": [scope[n] for n in names]}]  # noqa: E731
    errors = _error_responses()
    paging = [
        {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1}},
        {"name": "offset", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0}},
        {"name": "since", "in": "query", "required": False, "schema": {"type": "string", "format": "date-time"}},
    ]
    return {
        "openapi": "3.0.1",
        "info": {
            "title": title,
            "description": "1EdTech Host API of a consent-managed learner record exchange: every call is "
                           "decided by the family's live consent.",
            "termsOfService": privacy_policy_url,
            "version": version,
            "x-imssf-privacyPolicyUrl": privacy_policy_url,
        },
        "servers": [{"url": base + path, "description": title}],
        "tags": [{"name": "Credentials"}, {"name": "Profile"}, {"name": "Discovery"}],
        "paths": {
            "/credentials": {
                "get": {"tags": ["Credentials"], "operationId": "getCredentials", "parameters": paging,
                        "summary": f"The learner's {credential_type}s",
                        "responses": {"200": {"description": f"A page of {credential_type}s; X-Total-Count and "
                                                              "RFC 8288 Link headers",
                                              "content": {"application/json": {"schema": {
                                                  "$ref": f"#/components/schemas/{list_schema}"}}}}, **errors},
                        "security": security("credential.readonly")},
                "post": {"tags": ["Credentials"], "operationId": "upsertCredential",
                         "requestBody": {"content": {"application/json": {"schema": {"type": "object"}},
                                                     "text/plain": {"schema": {"type": "string"}}}},
                         "responses": {"200": {"description": "Replaced (or already held)"},
                                       "201": {"description": "Created"}, **errors},
                         "security": security("credential.upsert")},
            },
            "/profile": {
                "get": {"tags": ["Profile"], "operationId": "getProfile",
                        "responses": {"200": {"description": "The learner's Profile", "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Profile"}}}}, **errors},
                        "security": security("profile.readonly")},
                "put": {"tags": ["Profile"], "operationId": "putProfile",
                        "requestBody": {"content": {"application/json": {"schema": {
                            "$ref": "#/components/schemas/Profile"}}}},
                        "responses": {"200": {"description": "The updated Profile", "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Profile"}}}}, **errors},
                        "security": security("profile.update")},
            },
            "/discovery": {
                "get": {"tags": ["Discovery"], "operationId": "getServiceDescription",
                        "responses": {"200": {"description": "This document"}}},
            },
        },
        "components": {
            "securitySchemes": {
                "OAuth2ACG": {
                    "type": "oauth2",
                    "description": "OAuth 2.0 Authorization Code Grant with PKCE (S256)",
                    "x-imssf-registrationUrl": f"{base}/oauth/register",
                    "flows": {"authorizationCode": {
                        "authorizationUrl": f"{base}/oauth/authorize",
                        "tokenUrl": f"{base}/oauth/token",
                        "refreshUrl": f"{base}/oauth/token",
                        "scopes": {scope[name]: text for name, text in SCOPE_TEXT.items()},
                    }},
                },
            },
            "schemas": {
                list_schema: {"type": "object", "properties": {
                    "credential": {"type": "array", "items": {"type": "object"}},
                    "compactJwsString": {"type": "array", "items": {"type": "string"}}}},
                "Profile": {"type": "object", "required": ["id", "type"]},
                "Imsx_StatusInfo": {"type": "object", "required": ["imsx_codeMajor", "imsx_severity"]},
            },
        },
    }
