"""Contexts, eddsa-rdfc-2022 and VC-JWT against the official vectors, and tampering."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import shutil
from datetime import UTC, datetime

import pytest

from hub.credentials import dataintegrity, vcjwt
from hub.credentials.contexts import CanonicalizationError, ContextError, ContextLoader, canonize
from hub.credentials.keys import (
    IssuerKey,
    generate_private_pem,
    private_key_from_multibase,
    public_key_from_multibase,
)
from hub.credentials.statuslist import bit_at, decode_bits, encode_bits
from hub.credentials.verify import Resolver, trusted_keys_from, verify_credential
from tests.credentials.conftest import load, public_multikey

pytestmark = pytest.mark.samples
NOW = datetime(2026, 11, 23, tzinfo=UTC)
VECTORS = [("ob3", "obv3p0"), ("clr2", "clrv2p0")]


@pytest.mark.parametrize(("prefix", "canon"), VECTORS)
def test_official_vectors_canonicalise_byte_for_byte(examples_dir, loader, prefix, canon):
    credential = load(examples_dir / f"{prefix}-testvector-credential.json")
    signed = load(examples_dir / f"{prefix}-testvector-signed-credential.json")
    assert canonize(credential, loader) == (examples_dir / f"{canon}-testvector-document-canon.txt").read_text()
    proof = dataintegrity.proofs_of(signed)[0]
    config = dataintegrity._proof_config(credential, proof)
    assert canonize(config, loader) == (examples_dir / f"{canon}-testvector-proof-canon.txt").read_text()


def test_w3c_vector_chain(samples_dir, loader):
    w3c = samples_dir / "w3c-eddsa-rdfc-2022-test-vectors"
    unsigned = load(w3c / "unsigned.json")
    canonical = canonize(unsigned, loader)
    assert canonical == (w3c / "canonDocDataInt.txt").read_text()
    assert hashlib.sha256(canonical.encode()).hexdigest() == (w3c / "docHashDataInt.txt").read_text().strip()
    keypair = load(w3c / "keyPair.json")
    signed = load(w3c / "signedDataInt.json")
    again = dataintegrity.sign(unsigned, private_key=private_key_from_multibase(keypair["privateKeyMultibase"]),
                               verification_method=signed["proof"]["verificationMethod"], loader=loader,
                               created=datetime.fromisoformat(signed["proof"]["created"].replace("Z", "+00:00")))
    assert again["proof"]["proofValue"] == signed["proof"]["proofValue"]


@pytest.mark.parametrize(("prefix", "canon"), VECTORS)
def test_signing_the_official_vector_reproduces_its_proof(examples_dir, loader, prefix, canon):
    multikey = load(examples_dir / f"{prefix}-testvector-multikey.json")
    signed = load(examples_dir / f"{prefix}-testvector-signed-credential.json")
    proof = dataintegrity.proofs_of(signed)[0]
    again = dataintegrity.sign(load(examples_dir / f"{prefix}-testvector-credential.json"),
                               private_key=private_key_from_multibase(multikey["secretKeyMultibase"]),
                               verification_method=multikey["id"], loader=loader,
                               created=datetime.fromisoformat(proof["created"].replace("Z", "+00:00")))
    assert again["proof"] == proof


def test_loader_refuses_unknown_urls_and_tampered_files(contexts_dir, tmp_path):
    copy_dir = tmp_path / "contexts"
    shutil.copytree(contexts_dir, copy_dir)
    loader = ContextLoader(copy_dir)
    assert loader.document("https://www.w3.org/ns/credentials/v2")["@context"]
    with pytest.raises(ContextError, match="not pinned"):
        loader("https://evil.example/context.json")
    target = copy_dir / "ob-v3p0-context-3.0.3.json"
    target.write_text(target.read_text().replace('"Achievement"', '"Achievment"', 1))
    with pytest.raises(ContextError, match="pinned"):
        ContextLoader(copy_dir).document("https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json")
    index = json.loads((copy_dir / "contexts-index.json").read_text())
    del index["https://www.w3.org/ns/credentials/v2"]
    (copy_dir / "contexts-index.json").write_text(json.dumps(index))
    with pytest.raises(ContextError, match="not in"):
        ContextLoader(copy_dir).document("https://www.w3.org/ns/credentials/v2")
    with pytest.raises(ContextError, match="no contexts-index.json"):
        ContextLoader(tmp_path / "nowhere").document("https://www.w3.org/ns/credentials/v2")


def test_canonize_refuses_unpinned_contexts_and_undefined_terms(examples_dir, loader):
    credential = load(examples_dir / "ob3-testvector-credential.json")
    credential["@context"] = [*credential["@context"], "https://evil.example/ctx"]
    with pytest.raises(ContextError):
        canonize(credential, loader)
    ob2_only = {"@context": "https://w3id.org/openbadges/v2", "type": "Assertion", "notATerm": 1}
    with pytest.raises(CanonicalizationError, match="notATerm"):
        canonize(ob2_only, loader)


async def _verify(doc, resolver, now=NOW):  # type: ignore[no-untyped-def]
    return await verify_credential(doc, loader=ContextLoaderCache.loader, resolver=resolver, now=now)


class ContextLoaderCache:
    loader: ContextLoader


@pytest.fixture(autouse=True)
def _loader(loader):  # type: ignore[no-untyped-def]
    ContextLoaderCache.loader = loader


@pytest.mark.parametrize("prefix", ["ob3", "clr2"])
async def test_official_signed_credentials_verify(examples_dir, prefix):
    resolver = Resolver(trusted=trusted_keys_from(public_multikey(examples_dir / f"{prefix}-testvector-multikey.json")))
    result = await _verify(load(examples_dir / f"{prefix}-testvector-signed-credential.json"), resolver)
    assert result.ok, [c.line() for c in result.checks]
    names = [c.name for c in result.checks if c.passed]
    assert {"proof", "issuer key", "validity period"} <= set(names)


async def test_w3c_signed_vector_verifies_when_its_key_is_bound_to_the_issuer(samples_dir):
    signed = load(samples_dir / "w3c-eddsa-rdfc-2022-test-vectors" / "signedDataInt.json")
    unbound = await _verify(signed, Resolver())
    assert not unbound.ok and [c.name for c in unbound.failures()] == ["issuer key"]
    assert any(c.name == "proof" and c.passed for c in unbound.checks)  # did:key resolves; signature good
    vm = signed["proof"]["verificationMethod"]
    bound = Resolver(trusted=trusted_keys_from({"id": vm, "controller": signed["issuer"],
                                                "publicKeyMultibase": vm.split("#")[1]}))
    assert (await _verify(signed, bound)).ok


async def test_tampering_is_detected(examples_dir):
    resolver = Resolver(trusted=trusted_keys_from(public_multikey(examples_dir / "ob3-testvector-multikey.json")))
    signed = load(examples_dir / "ob3-testvector-signed-credential.json")

    changed = copy.deepcopy(signed)
    changed["credentialSubject"]["achievement"]["name"] = "Leadership"
    result = await _verify(changed, resolver)
    assert not result.ok and "signature does not match" in result.failures()[0].detail

    # Swapped key: a valid signature by another key, claimed under the issuer's key id.
    other = IssuerKey(private=private_key_from_multibase(
        "z3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjxq"), issuer_id="https://example.edu/issuers/565049", name="x")
    swapped = dataintegrity.sign(load(examples_dir / "ob3-testvector-credential.json"), private_key=other.private,
                                 verification_method=signed["proof"]["verificationMethod"],
                                 loader=ContextLoaderCache.loader)
    result = await _verify(swapped, resolver)
    assert not result.ok and any(c.name == "proof" and "signature" in c.detail for c in result.failures())

    # A key the verifier cannot tie to the issuer.
    foreign = dataintegrity.sign(load(examples_dir / "ob3-testvector-credential.json"), private_key=other.private,
                                 verification_method=other.verification_method, loader=ContextLoaderCache.loader)
    result = await _verify(foreign, resolver)
    assert not result.ok and result.failures()[0].name == "issuer key"

    unsigned = load(examples_dir / "ob3-testvector-credential.json")
    assert "no proof" in (await _verify(unsigned, resolver)).failures()[0].detail

    wrong_suite = copy.deepcopy(signed)
    wrong_suite["proof"]["cryptosuite"] = "ecdsa-rdfc-2019"
    assert "unsupported proof" in (await _verify(wrong_suite, resolver)).failures()[0].detail


async def test_validity_period_is_enforced(examples_dir):
    multikey = load(examples_dir / "ob3-testvector-multikey.json")
    key = private_key_from_multibase(multikey["secretKeyMultibase"])
    resolver = Resolver(trusted=trusted_keys_from(public_multikey(examples_dir / "ob3-testvector-multikey.json")))
    credential = load(examples_dir / "ob3-testvector-credential.json")
    credential["validUntil"] = "2026-01-01T00:00:00Z"
    signed = dataintegrity.sign(credential, private_key=key, verification_method=multikey["id"],
                                loader=ContextLoaderCache.loader)
    result = await _verify(signed, resolver)
    assert [(c.name, c.detail) for c in result.failures()] == [("validity period", "expired at 2026-01-01T00:00:00Z")]
    assert (await _verify(signed, resolver, now=datetime(2025, 6, 1, tzinfo=UTC))).ok
    assert not (await _verify(signed, resolver, now=datetime(2009, 6, 1, tzinfo=UTC))).ok  # before validFrom


async def test_vc_jwt_round_trip_and_tampering(examples_dir):
    key = IssuerKey(private=private_key_from_multibase("z3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjxq"),
                    issuer_id="https://example.edu/issuers/565049", name="Example")
    credential = load(examples_dir / "ob3-testvector-credential.json")
    token = vcjwt.sign(credential, key)
    header, payload = vcjwt.unverified_parts(token)
    assert header == {"alg": "Ed25519", "kid": key.verification_method, "typ": "JWT"}
    assert payload["iss"] == credential["issuer"]["id"] and payload["jti"] == credential["id"]
    assert payload["sub"] == credential["credentialSubject"]["id"] and payload["nbf"] == 1262304000
    resolver = Resolver(own=key)
    result = await _verify(token, resolver)
    assert result.ok and result.format == "jwt", [c.line() for c in result.checks]

    head, body, sig = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged["name"] = "Forged"
    forged_body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    assert not (await _verify(f"{head}.{forged_body}.{sig}", resolver)).ok
    assert "cannot resolve" in (await _verify(token, Resolver())).failures()[0].detail

    other = IssuerKey(private=private_key_from_multibase(
        "zrv2bqTbNwCTsRrHFcJCPjVAduh4Ezcnoq1A3ZxH1GWTNkxipLVuaAoMFmze2gFN9oNXfJjufxSHWVZzsJiUsMHFMcx"),
        issuer_id="https://example.edu/issuers/565049", name="Example")
    swapped = f"{head}.{body}." + vcjwt.sign(credential, other).split(".")[2]
    assert "does not verify" in (await _verify(swapped, resolver)).failures()[0].detail


def test_status_bits_are_left_to_right():
    bits = decode_bits(encode_bits({0, 9, 131071}))
    assert len(bits) == 16384 and bits[0] == 0x80 and bits[1] == 0x40
    assert [bit_at(bits, i) for i in (0, 1, 9, 131070, 131071)] == [1, 0, 1, 0, 1]


def test_multikey_round_trip():
    key = IssuerKey(private=__import__("cryptography.hazmat.primitives.serialization", fromlist=["x"])
                    .load_pem_private_key(generate_private_pem(), None), issuer_id="https://h/credentials/issuer", name="H")
    assert public_key_from_multibase(key.multibase).public_bytes_raw() == key.public.public_bytes_raw()
    assert key.multibase.startswith("z6Mk")
