"""Credentials the hub issues verify with an independent implementation (Digital Bazaar's
jsonld-signatures + eddsa-rdfc-2022 cryptosuite, and ``jose`` for VC-JWT), run under node.

``make test`` installs tests/js from its lockfile (``npm ci``) when node_modules is missing.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

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
    controller = kit.key.profile()
    for document in (ldp, clr):
        result = run_node({"contextsDir": str(contexts_dir), "credential": document, "controller": controller})
        assert result["verified"] is True, result
    tampered = copy.deepcopy(ldp)
    tampered["credentialSubject"]["achievement"]["name"] = "Something else"
    assert run_node({"contextsDir": str(contexts_dir), "credential": tampered, "controller": controller})["verified"] is False

    result = run_node({"jwt": jwt, "jwk": kit.key.jwk()})
    assert result["verified"] is True and result["payload"]["jti"] == ldp["id"]
    head, body, _ = jwt.split(".")
    forged = run_node({"jwt": f"{head}.{body}.{'A' * 86}", "jwk": kit.key.jwk()})
    assert forged["verified"] is False
