"""Public, unauthenticated credential endpoints: what anyone needs to verify what the hub signed.

- ``GET /credentials/issuer``: the issuer Profile, also the controller document of its keys
  (``verificationMethod`` / ``assertionMethod``: VC Data Integrity §2.2 "Verification methods"):
  the Ed25519 Multikey, the RSA JsonWebKey and every previous key.
- ``GET /credentials/jwks.json``: the same keys as JWKs whose ``kid`` is the VC-JWT ``kid``
  (OB 3.0 §8.2.4.1: the ``kid`` "can be dereferenced to an object of type JWK").
- ``GET /credentials/status/{n}``: the signed BitstringStatusListCredential (Bitstring Status
  List v1.0 §2.2), built from the database on each request (cacheable for a few minutes).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from hub.credentials.keys import CredentialKeys, KeyFormatError, load_credential_keys
from hub.credentials.service import CredentialKit, CredentialsNotConfigured, kit_from_settings, signed_status_list
from hub.db import utcnow

router = APIRouter(prefix="/credentials", tags=["credentials"])
JSON_LD = "application/ld+json"


def credential_kit(request: Request) -> CredentialKit:
    state = request.app.state
    kit = getattr(state, "credential_kit", None)
    if kit is None:
        kit = kit_from_settings(state.hub.settings)
        state.credential_kit = kit
    return kit


def issuer_keys(request: Request) -> CredentialKeys:
    kit = getattr(request.app.state, "credential_kit", None)
    if kit is not None:
        return kit.keys
    keys = getattr(request.app.state, "credential_keys", None)
    if keys is None:
        keys = request.app.state.credential_keys = load_credential_keys(request.app.state.hub.settings)
    return keys


def _unavailable(exc: Exception) -> JSONResponse:
    return JSONResponse({"error": "credentials_not_configured", "error_description": str(exc)}, status_code=503)


@router.get("/issuer")
async def issuer_profile(request: Request) -> JSONResponse:
    try:
        keys = issuer_keys(request)
    except KeyFormatError as exc:
        return _unavailable(exc)
    return JSONResponse(keys.profile(), media_type=JSON_LD, headers={"Cache-Control": "public, max-age=3600"})


@router.get("/jwks.json")
async def issuer_jwks(request: Request) -> JSONResponse:
    try:
        keys = issuer_keys(request)
    except KeyFormatError as exc:
        return _unavailable(exc)
    return JSONResponse(keys.jwks(), headers={"Cache-Control": "public, max-age=3600"})


@router.get("/status/{list_number}")
async def status_list(request: Request, list_number: int) -> JSONResponse:
    try:
        kit = credential_kit(request)
    except CredentialsNotConfigured as exc:
        return _unavailable(exc)
    if list_number < 1 or list_number > 1_000_000:
        return JSONResponse({"error": "not_found"}, status_code=404)
    async with request.app.state.hub.sessions() as session:
        document = await signed_status_list(session, kit, list_number, utcnow())
    if document is None:
        return JSONResponse({"error": "not_found"}, status_code=404)
    return JSONResponse(document, media_type=JSON_LD, headers={"Cache-Control": "public, max-age=300"})
