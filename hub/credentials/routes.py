"""Public, unauthenticated credential endpoints: what anyone needs to verify what the hub signed.

- ``GET /credentials/issuer``: the issuer Profile, also the controller document of its key
  (``verificationMethod`` / ``assertionMethod``: VC Data Integrity §2.2 "Verification methods").
- ``GET /credentials/jwks.json``: the same key as a JWK whose ``kid`` is the VC-JWT ``kid``.
- ``GET /credentials/status/{n}``: the signed BitstringStatusListCredential (Bitstring Status
  List v1.0 §2.2), built from the database on each request (cacheable for a few minutes).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from hub.credentials.keys import IssuerKey, load_issuer_key
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


def issuer_key(request: Request) -> IssuerKey:
    kit = getattr(request.app.state, "credential_kit", None)
    if kit is not None:
        return kit.key
    key = getattr(request.app.state, "credential_key", None)
    if key is None:
        key = request.app.state.credential_key = load_issuer_key(request.app.state.hub.settings)
    return key


def _unavailable(exc: Exception) -> JSONResponse:
    return JSONResponse({"error": "credentials_not_configured", "error_description": str(exc)}, status_code=503)


@router.get("/issuer")
async def issuer_profile(request: Request) -> JSONResponse:
    key = issuer_key(request)
    return JSONResponse(key.profile(), media_type=JSON_LD, headers={"Cache-Control": "public, max-age=3600"})


@router.get("/jwks.json")
async def issuer_jwks(request: Request) -> JSONResponse:
    key = issuer_key(request)
    return JSONResponse({"keys": [key.jwk()]}, headers={"Cache-Control": "public, max-age=3600"})


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
