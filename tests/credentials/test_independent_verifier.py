"""Credentials the hub issues verify with an independent implementation (Digital Bazaar's
jsonld-signatures + eddsa-rdfc-2022 cryptosuite, and ``jose`` for VC-JWT), run under node.

VC-JWT is RS256 by default (OB 3.0 §8.2.4.1); ``jose`` picks the key from the issuer's published
JWKS by the header's ``kid``, as any verifier dereferencing it would.

``make test`` installs tests/js from its lockfile (``npm ci``) when node_modules is missing.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from hub.credentials import vcjwt
from hub.credentials.keys import RsaIssuerKey, generate_rsa_private_pem
from hub.credentials.service import badge_credential, clr_credential
from hub.db import make_sessionmaker
from hub.records.models import Badge
from tests.credentials.conftest import add_record

pytestmark = pytest.mark.samples
JS = Path(__file__).resolve().parent.parent / "js"
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def run_node(job: dict[str, Any]) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None or not (JS / "node_modules").is_dir():
        pytest.skip("node and tests/js/node_modules are needed (make test runs npm ci)")
    done = subprocess.run([node, str(JS / "verify.mjs")], input=json.dumps(job), capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


async def test_issued_credentials_verify_independently(engine, kit, family, contexts_dir):
    badge_ids = await add_record(engine, family, badges=1)
    async with make_sessionmaker(engine)() as session, session.begin():
        badge = await session.get(Badge, badge_ids[0])
        ldp = await badge_credential(session, kit, badge, NOW)
        jwt = await badge_credential(session, kit, badge, NOW, "jwt")
        clr = await clr_credential(session, kit, family.learner_id, NOW)
    controller = kit.keys.profile()
    for document in (ldp, clr):
        result = run_node({"contextsDir": str(contexts_dir), "credential": document, "controller": controller})
        assert result["verified"] is True, result
    tampered = copy.deepcopy(ldp)
    tampered["credentialSubject"]["achievement"]["name"] = "Something else"
    assert run_node({"contextsDir": str(contexts_dir), "credential": tampered, "controller": controller})["verified"] is False

    jwks = kit.keys.jwks()
    result = run_node({"jwt": jwt, "jwks": jwks})
    assert result["verified"] is True and result["payload"]["jti"] == ldp["id"]
    assert result["header"] == {"alg": "RS256", "kid": kit.keys.rsa.kid, "typ": "JWT"}
    head, body, _ = jwt.split(".")
    forged = run_node({"jwt": f"{head}.{body}.{'A' * 342}", "jwks": jwks})
    assert forged["verified"] is False


async def test_rs256_with_a_swapped_key_is_refused_independently(engine, kit, family):
    """A token signed by another RSA key under the hub's kid: jose refuses it (and so do we)."""
    badge_ids = await add_record(engine, family, badges=1)
    async with make_sessionmaker(engine)() as session, session.begin():
        badge = await session.get(Badge, badge_ids[0])
        ldp = await badge_credential(session, kit, badge, NOW)
    impostor = RsaIssuerKey(private=serialization.load_pem_private_key(generate_rsa_private_pem(), None),
                            issuer_id=kit.keys.issuer_id)
    object.__setattr__(impostor, "kid", kit.keys.rsa.kid)  # claims the hub's key id
    forged = vcjwt.sign(ldp, impostor)
    assert run_node({"jwt": forged, "jwks": kit.keys.jwks()})["verified"] is False


async def test_eddsa_stays_selectable_and_verifies_independently(engine, kit, family):
    ed_kit = replace(kit, keys=replace(kit.keys, jwt_alg="Ed25519"))
    badge_ids = await add_record(engine, family, badges=1)
    async with make_sessionmaker(engine)() as session, session.begin():
        jwt = await badge_credential(session, ed_kit, await session.get(Badge, badge_ids[0]), NOW, "jwt")
    result = run_node({"jwt": jwt, "jwks": kit.keys.jwks()})
    assert result["verified"] is True and result["header"]["alg"] == "Ed25519"
    assert result["header"]["kid"] == kit.key.verification_method
