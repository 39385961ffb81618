"""A connector authenticates with private_key_jwt (RFC 7523 §2.2): no shared secret anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc.jwk import KeySet

from connectors.client import HubConfig, HubError, import_private_key
from connectors.runtime import run_instance
from hub.db import make_sessionmaker
from hub.providers.service import create_client, create_provider
from tests.conftest import ISSUER
from tests.connectors.helpers import asgi_http, count_activities, create, linked_family
from tests.factories import ProviderClient


def _pem(private_key) -> bytes:  # type: ignore[no-untyped-def]
    return private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())


async def _key_client(engine, pem: bytes) -> ProviderClient:  # type: ignore[no-untyped-def]
    public = import_private_key(pem).as_dict(private=False)
    async with make_sessionmaker(engine)() as session, session.begin():
        provider = await create_provider(session=session, name="Keyed LRS", kind="school")
        row, secret = await create_client(
            session=session, provider_id=provider.id, name="sync", scopes=["activities:contribute", "activities:read"],
            auth_method="private_key_jwt", jwks=KeySet.import_key_set({"keys": [public]}).as_dict(private=False),
            grant_types=["client_credentials"],
        )
    assert secret is None
    return ProviderClient(provider_id=provider.id, client_id=row.client_id, client_secret="")


def _statements(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "statements.jsonl"
    path.write_text("".join(json.dumps({
        "id": f"00000000-0000-4000-8000-{i:012d}", "actor": {"mbox": "mailto:kim@example.org"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}},
        "object": {"id": f"https://lms.example.org/activities/{i}"}, "timestamp": "2026-03-01T10:00:00Z",
    }) + "\n" for i in range(n)))
    return path


@pytest.mark.parametrize("key", [
    lambda: ec.generate_private_key(ec.SECP256R1()),
    lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    lambda: ed25519.Ed25519PrivateKey.generate(),
], ids=["ES256", "RS256", "Ed25519"])
async def test_sync_runs_with_a_private_key_and_no_secret(engine, app, tmp_path, key):  # type: ignore[no-untyped-def]
    pem = _pem(key())
    provider = await _key_client(engine, pem)
    await linked_family(engine, provider, "kim@example.org", grant_activities=True)
    (tmp_path / "key.pem").write_bytes(pem)
    config = {"hub": {"url": ISSUER, "client_id": provider.client_id, "private_key_file": str(tmp_path / "key.pem")},
              "source": {"paths": [str(_statements(tmp_path, 30))]}}
    await create(engine, "keyed", "xapi-file", config)
    async with asgi_http(app) as http:
        result = await run_instance(sessions=make_sessionmaker(engine), name="keyed", http=http)
    assert result.status == "succeeded", result
    assert result.report.created == 30
    assert await count_activities(engine, provider) == 30


async def test_a_key_the_hub_does_not_know_is_refused_and_nothing_is_stored(engine, app, tmp_path):  # type: ignore[no-untyped-def]
    provider = await _key_client(engine, _pem(ec.generate_private_key(ec.SECP256R1())))
    await linked_family(engine, provider, "kim@example.org", grant_activities=True)
    (tmp_path / "other.pem").write_bytes(_pem(ec.generate_private_key(ec.SECP256R1())))
    config = {"hub": {"url": ISSUER, "client_id": provider.client_id, "private_key_file": str(tmp_path / "other.pem")},
              "source": {"paths": [str(_statements(tmp_path, 5))]}}
    await create(engine, "stolen-id", "xapi-file", config)
    async with asgi_http(app) as http:
        with pytest.raises(HubError, match="token request refused.*invalid_client"):
            await run_instance(sessions=make_sessionmaker(engine), name="stolen-id", http=http)
    assert await count_activities(engine, provider) == 0


def test_config_names_exactly_one_way_to_authenticate(tmp_path):  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="exactly one"):
        HubConfig(url=ISSUER, client_id="c", client_secret_env="X", private_key_file=tmp_path / "k.pem")
    with pytest.raises(ValueError, match="exactly one"):
        HubConfig(url=ISSUER, client_id="c")
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ValueError, match="2048"):
        import_private_key(_pem(weak))
