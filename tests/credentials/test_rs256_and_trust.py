"""VC-JWT with RS256 (OB 3.0 §8.2.4.1), key rotation, and the operator's trusted issuers."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.credentials import dataintegrity, vcjwt
from hub.credentials.importer import ImportRefused, import_credential
from hub.credentials.keys import (
    IssuerKey,
    RsaIssuerKey,
    generate_rsa_private_pem,
    public_key_multibase,
    rotate_credential_key,
)
from hub.credentials.service import CredentialsNotConfigured, kit_from_settings, resolver_for
from hub.credentials.verify import VerificationResult, verify_credential
from hub.db import make_sessionmaker
from tests.credentials.conftest import load

pytestmark = pytest.mark.samples
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
COLLEGE = "https://college.example.edu/issuer"


def credential(examples_dir: Path, issuer: str, name: str = "Teamwork Badge") -> dict[str, Any]:
    doc = load(examples_dir / "ob3-testvector-credential.json")
    doc["issuer"] = {"id": issuer, "type": ["Profile"], "name": "Some issuer"}
    doc["name"] = name
    return doc


def rsa_key(issuer: str, kid: str | None = None) -> RsaIssuerKey:
    key = RsaIssuerKey(private=serialization.load_pem_private_key(generate_rsa_private_pem(), None),  # type: ignore[arg-type]
                       issuer_id=issuer)
    if kid is not None:
        object.__setattr__(key, "kid", kid)
    return key


async def check(kit, data: dict[str, Any] | str, now: datetime = NOW) -> VerificationResult:  # type: ignore[no-untyped-def]
    # No status list is involved, so no database session is needed.
    return await verify_credential(data, loader=kit.loader, resolver=resolver_for(None, kit, now), now=now)  # type: ignore[arg-type]


def failure(result: VerificationResult) -> str:
    return "; ".join(f"{c.name}: {c.detail}" for c in result.failures())


# -- RS256 ---------------------------------------------------------------------------------------


async def test_vc_jwt_is_rs256_by_default_and_verifies(kit, examples_dir):
    token = kit.sign(credential(examples_dir, kit.key.issuer_id), "jwt", NOW)
    header, payload = vcjwt.unverified_parts(token)
    assert header == {"alg": "RS256", "kid": kit.keys.rsa.kid, "typ": "JWT"}
    assert kit.keys.rsa.private.key_size >= 2048
    assert payload["iss"] == kit.key.issuer_id and "vc" not in payload
    result = await check(kit, token)
    assert result.ok, failure(result)
    assert any(c.name == "proof" and c.detail == f"JWS by {kit.keys.rsa.kid}" for c in result.checks)

    ed = replace(kit, keys=replace(kit.keys, jwt_alg="Ed25519")).sign(credential(examples_dir, kit.key.issuer_id),
                                                                        "jwt", NOW)
    assert vcjwt.unverified_parts(ed)[0]["alg"] == "Ed25519" and (await check(kit, ed)).ok


async def test_tampered_or_swapped_rs256_is_refused(kit, examples_dir):
    doc = credential(examples_dir, kit.key.issuer_id)
    token = kit.sign(doc, "jwt", NOW)
    head, body, sig = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged["name"] = "Forged"
    forged_body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    assert "JWS signature does not verify" in failure(await check(kit, f"{head}.{forged_body}.{sig}"))
    # Another RSA key claiming the hub's kid: the signature does not verify with the published key.
    impostor = rsa_key(kit.key.issuer_id, kid=kit.keys.rsa.kid)
    assert "JWS signature does not verify" in failure(await check(kit, vcjwt.sign(doc, impostor)))
    # The hub's own key cannot vouch for a credential that names another issuer.
    other = kit.sign(credential(examples_dir, COLLEGE), "jwt", NOW)
    assert f"is controlled by {kit.key.issuer_id}, not the issuer {COLLEGE}" in failure(await check(kit, other))


async def test_short_rsa_keys_are_refused(kit, examples_dir, tmp_path):
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key().public_numbers()
    kid = f"{COLLEGE}#weak"
    b64 = lambda n: base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()  # noqa: E731
    trust = tmp_path / "trusted.json"
    trust.write_text(json.dumps({"issuers": [{"id": COLLEGE, "keys": [
        {"kty": "RSA", "n": b64(numbers.n), "e": b64(numbers.e), "kid": kid}]}]}))
    trusting = replace(kit, issuers=kit_from_settings(kit.settings.model_copy(
        update={"trusted_issuers_file": trust})).issuers)
    header = base64.urlsafe_b64encode(json.dumps({"alg": "RS256", "kid": kid}).encode()).rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(credential(examples_dir, COLLEGE)).encode()).rstrip(b"=").decode()
    result = await check(trusting, f"{header}.{body}.{'A' * 171}")  # the key is refused before any signature check
    assert "RSA key of 1024 bits refused" in failure(result)


def test_rotation_keeps_old_keys_published_and_verifiable(cred_settings, examples_dir, tmp_path):
    settings = cred_settings.model_copy(update={"data_dir": tmp_path, "credential_key_pem": None})
    before = kit_from_settings(settings)
    old_jwt = before.sign(credential(examples_dir, before.key.issuer_id), "jwt", NOW)
    old_ldp = before.sign(credential(examples_dir, before.key.issuer_id), "ldp", NOW)
    assert rotate_credential_key(settings, "rsa") [0] == before.keys.rsa.kid
    assert rotate_credential_key(settings, "ed25519")[0] == before.key.verification_method
    after = kit_from_settings(settings)
    assert after.keys.rsa.kid != before.keys.rsa.kid and after.key.multibase != before.key.multibase
    kids = [k["kid"] for k in after.keys.jwks()["keys"]]
    assert kids == [after.key.verification_method, after.keys.rsa.kid, before.keys.rsa.kid,
                    before.key.verification_method]
    assert after.keys.profile()["assertionMethod"] == kids
    assert not any("d" in k for k in json.loads(settings.resolved_credential_previous_keys_file.read_text())["keys"])
    new_jwt = after.sign(credential(examples_dir, after.key.issuer_id), "jwt", NOW)
    assert vcjwt.unverified_parts(new_jwt)[0]["kid"] == after.keys.rsa.kid
    import asyncio

    for data in (old_jwt, old_ldp, new_jwt):
        result = asyncio.run(check(after, data))
        assert result.ok, failure(result)
    with pytest.raises(Exception, match="PEM setting"):
        rotate_credential_key(cred_settings, "ed25519")


# -- trusted issuers -----------------------------------------------------------------------------


def trusting(kit, tmp_path: Path, document: Any, suffix: str = ".json", fetch=None):  # type: ignore[no-untyped-def]
    path = tmp_path / f"trusted{suffix}"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    loaded = kit_from_settings(kit.settings.model_copy(update={"trusted_issuers_file": path}))
    return replace(loaded, fetch=fetch)


async def test_a_trusted_issuers_keys_verify_and_unknown_issuers_fail(kit, examples_dir, tmp_path, engine):
    college = rsa_key(COLLEGE)
    ed = Ed25519PrivateKey.generate()
    did = "did:key:" + public_key_multibase(ed.public_key())
    signed_jwt = vcjwt.sign(credential(examples_dir, COLLEGE), college)
    signed_ldp = dataintegrity.sign(credential(examples_dir, COLLEGE), private_key=ed,
                                    verification_method=f"{did}#{did[8:]}", loader=kit.loader, created=NOW)
    # Not trusted: the key cannot be resolved, the did:key is not the issuer's.
    assert "is not a trusted issuer" in failure(await check(trusting(kit, tmp_path, {"issuers": []}), signed_jwt))
    assert f"not the issuer {COLLEGE}" in failure(await check(kit, signed_ldp))

    yaml_text = f"""issuers:
  - id: {COLLEGE}
    name: Example College
    keys:
      - {json.dumps(college.jwk())}
    did_keys: ["{did}"]
"""
    trusted = trusting(kit, tmp_path, yaml_text, ".yaml")
    for data in (signed_jwt, signed_ldp):
        result = await check(trusted, data)
        assert result.ok, failure(result)
    # Import uses the same trust (a guardian adds the credential to the record).
    from tests.factories import make_family

    family = await make_family(engine)
    async with make_sessionmaker(engine)() as session, session.begin():
        outcome = await import_credential(session, trusted, family.learner_id, signed_jwt, now=NOW,
                                          guardian_id=family.guardian_id)
        assert outcome.outcome == "created" and outcome.issuer_id == COLLEGE
        with pytest.raises(ImportRefused, match="is not a trusted issuer"):
            await import_credential(session, trusted, family.learner_id,
                                    vcjwt.sign(credential(examples_dir, "https://unknown.example.org/i"),
                                               rsa_key("https://unknown.example.org/i")),
                                    now=NOW, guardian_id=family.guardian_id)

    # A trusted issuer's key never vouches for another issuer's credential.
    other = {"id": "https://other.example.org/issuer", "keys": [rsa_key("https://other.example.org/issuer").jwk()]}
    both = trusting(kit, tmp_path, {"issuers": [{"id": COLLEGE, "keys": [college.jwk()]}, other]})
    posing = vcjwt.sign(credential(examples_dir, other["id"]), college)
    assert f"is controlled by {COLLEGE}, not the issuer {other['id']}" in failure(await check(both, posing))
    # An unknown key of a trusted issuer: a clear reason too.
    stranger = rsa_key(COLLEGE)
    assert f"is not among the keys trusted for issuer {COLLEGE}" in failure(
        await check(both, vcjwt.sign(credential(examples_dir, COLLEGE), stranger)))


async def test_keys_are_fetched_only_from_urls_the_operator_allowed(kit, examples_dir, tmp_path):
    fetched: list[str] = []
    served: dict[str, Any] = {}

    async def fetch(url: str) -> Any:
        fetched.append(url)
        return served[url]

    good = rsa_key(COLLEGE, kid="https://college.example.edu/keys/2026.json")
    served["https://college.example.edu/keys/2026.json"] = good.jwk()
    trusted = trusting(kit, tmp_path, {"issuers": [{"id": COLLEGE, "key_urls": ["https://college.example.edu/keys/"]}]},
                       fetch=fetch)
    result = await check(trusted, vcjwt.sign(credential(examples_dir, COLLEGE), good))
    assert result.ok, failure(result)
    assert fetched == ["https://college.example.edu/keys/2026.json"]

    fetched.clear()
    for kid in ("https://college.example.edu/other/2026.json",           # outside the allowed path
                "https://college.example.edu.evil.example/keys/1.json",  # look-alike host
                "http://college.example.edu/keys/2026.json"):            # not https
        result = await check(trusted, vcjwt.sign(credential(examples_dir, COLLEGE), rsa_key(COLLEGE, kid=kid)))
        assert "is not among the keys trusted for issuer" in failure(result)
    # An issuer without key_urls, or an unknown issuer, never triggers a fetch.
    unknown = "https://unknown.example.org/issuer"
    result = await check(trusted, vcjwt.sign(credential(examples_dir, unknown),
                                             rsa_key(unknown, kid="https://college.example.edu/keys/x.json")))
    assert "is not a trusted issuer" in failure(result)
    assert fetched == []

    # What an allowed URL serves must hold the key, and the signature must verify with it.
    impostor = rsa_key(COLLEGE, kid="https://college.example.edu/keys/2026.json")
    assert "does not verify" in failure(await check(trusted, vcjwt.sign(credential(examples_dir, COLLEGE), impostor)))
    served["https://college.example.edu/keys/empty.json"] = {"keys": []}
    missing = rsa_key(COLLEGE, kid="https://college.example.edu/keys/empty.json#k1")
    assert "does not contain it" in failure(await check(trusted, vcjwt.sign(credential(examples_dir, COLLEGE), missing)))


@pytest.mark.parametrize(("document", "message"), [
    ({"issuers": [{"id": COLLEGE, "keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}]}]}, "a JWK needs a kid"),
    ({"issuers": [{"id": COLLEGE, "key_urls": ["http://college.example.edu/keys/"]}]}, "https only"),
    ({"issuers": [{"id": COLLEGE}]}, "has no keys, did_keys, key_urls or hosted_origins"),
    ({"issuers": [{"id": COLLEGE, "did_keys": ["did:web:college.example.edu"]}]}, "not a did:key"),
    ({"trusted": []}, "expected an 'issuers' list"),
    ("{not json", "not JSON/YAML"),
])
def test_a_bad_trust_file_is_a_clear_configuration_error(kit, tmp_path, document, message):
    with pytest.raises(CredentialsNotConfigured, match=message):
        trusting(kit, tmp_path, document)


def test_private_keys_in_the_trust_file_are_refused(kit, tmp_path):
    jwk = copy.deepcopy(rsa_key(COLLEGE).jose_key().as_dict(private=True)) | {"kid": f"{COLLEGE}#1"}
    with pytest.raises(CredentialsNotConfigured, match="private key material"):
        trusting(kit, tmp_path, {"issuers": [{"id": COLLEGE, "keys": [jwk]}]})


def test_an_issuer_key_class_still_signs_ed25519(kit):
    assert isinstance(kit.key, IssuerKey) and kit.key.alg == "Ed25519"
