"""Hosted OB 2.0 assertions (OB 2.0 §HostedBadge Verification): fetched from their id on an origin
the operator allowed (``hosted_origins`` in the trusted issuers file), compared, resolved, scoped.

A real HTTP server on loopback serves the Assertion, BadgeClass and issuer Profile; the hub's own
fetcher (httpx) reads them (``KINFOLIO_HOSTED_ALLOW_HTTP_LOOPBACK`` lets the trust file list the
loopback http origin, as only tests may).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from consent import Action
from hub.credentials.importer import ImportRefused, import_credential
from hub.credentials.models import HeldCredential
from hub.credentials.ob2 import MAX_HOSTED_DOCUMENT_BYTES
from hub.credentials.service import CredentialKit, CredentialsNotConfigured, kit_from_settings, verify
from hub.db import make_sessionmaker
from tests.credentials.hosted_site import OB2, Hosted, hosted_kit, issuer_site
from tests.factories import get_token, gql, grant, learner_id_for, make_provider

pytestmark = pytest.mark.samples
NOW = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def hosted() -> Iterator[Hosted]:
    with issuer_site() as running:
        yield running


@pytest.fixture
def trusting(kit, tmp_path, hosted) -> CredentialKit:  # type: ignore[no-untyped-def]
    return hosted_kit(kit, tmp_path, [{"id": hosted.issuer, "hosted_origins": [hosted.base]}])


async def check(engine, kit: CredentialKit, data: Any):  # type: ignore[no-untyped-def]
    async with make_sessionmaker(engine)() as session:
        return await verify(session, kit, data, NOW)


def failures(result) -> str:  # type: ignore[no-untyped-def]
    return "; ".join(f"{c.name}: {c.detail}" for c in result.failures())


async def test_a_hosted_assertion_verifies_and_imports_as_served(engine, trusting, hosted, family):
    result = await check(engine, trusting, hosted.assertion())
    assert result.ok, failures(result)
    assert result.format == "ob2" and result.issuer_id == hosted.issuer
    assert [(c.name, c.passed) for c in result.checks] == [
        ("proof", True), ("hosted assertion", True), ("badge class", True), ("issuer profile", True),
        ("issuer trust", True), ("hosted scope", True), ("validity period", True)]
    assert hosted.seen == ["/assertions/1", "/badges/robotics", "/issuer"]

    # A copy that names the badge by its embedded BadgeClass is the same assertion; the served one is held.
    submitted = hosted.assertion() | {"badge": hosted.document("/badges/robotics"), "evidence": "https://x.example/e"}
    async with make_sessionmaker(engine)() as session, session.begin():
        outcome = await import_credential(session, trusting, family.learner_id, json.dumps(submitted), now=NOW,
                                          guardian_id=family.guardian_id)
        assert (outcome.outcome, outcome.kind, outcome.issuer_id, outcome.credential_id) == (
            "created", "Assertion", hosted.issuer, hosted.url)
        held = (await session.execute(select(HeldCredential))).scalar_one()
    assert held.format == "ob2" and "evidence" not in held.document
    assert held.document["badge"]["name"] == "Hosted Robotics"
    assert held.document["badge"]["issuer"]["name"] == "Riverside Makers"


async def test_same_origin_redirects_are_followed(engine, trusting, hosted):
    submitted = hosted.assertion()
    hosted.serve("/assertions/1", b"", 302, headers={"Location": "/current/assertions/1"})
    hosted.serve("/current/assertions/1", submitted)
    result = await check(engine, trusting, submitted)
    assert result.ok, failures(result)


def _change(hosted: Hosted, path: str, **changes: Any) -> None:
    document = hosted.document(path)
    document.update(changes)
    hosted.serve(path, document)


REFUSALS: dict[str, tuple[Any, str]] = {
    "assertion changed on the server (issuedOn)": (
        lambda h: _change(h, "/assertions/1", issuedOn="2026-02-01T00:00:00+00:00"),
        "hosted assertion: the assertion served at {url} differs from the one submitted in issuedOn"),
    "assertion changed on the server (recipient)": (
        lambda h: _change(h, "/assertions/1", recipient={"type": "email", "hashed": False, "identity": "bo@example.org"}),
        "differs from the one submitted in recipient"),
    "revoked with 410 Gone": (
        lambda h: h.serve("/assertions/1", {"id": h.url, "revoked": True, "revocationReason": "Awarded in error"}, 410),
        "status: revoked: the hosted assertion at {url} answered 410 Gone (Awarded in error)"),
    "revoked with 410 Gone and no body": (
        lambda h: h.serve("/assertions/1", b"", 410, content_type="text/plain"),
        "answered 410 Gone"),
    "revoked: true": (
        lambda h: h.serve("/assertions/1", {"@context": OB2, "type": "Assertion", "id": h.url, "revoked": True}),
        "status: revoked: the hosted assertion at {url} is served with revoked: true"),
    "expired": (
        lambda h: _change(h, "/assertions/1", expires="2026-02-01T00:00:00+00:00"),
        "validity period: expired at 2026-02-01T00:00:00+00:00"),
    "issuer allowedOrigins exclude the host": (
        lambda h: _change(h, "/issuer", verification={"type": "VerificationObject", "allowedOrigins": ["badges.example.org"]}),
        "hosted scope: 127.0.0.1 is not among the issuer's verification.allowedOrigins (badges.example.org)"),
    "issuer startsWith excludes the path": (
        lambda h: _change(h, "/issuer", verification={"startsWith": f"{h.base}/official/"}),
        "does not start with the issuer's verification.startsWith"),
    "malformed redirect": (
        lambda h: h.serve("/assertions/1", b"", 302, headers={"Location": "http://[::1/x"}),
        "proof: hosted assertion at {url}: fetching failed"),
    "redirect to another origin": (
        lambda h: h.serve("/assertions/1", b"", 302,
                          headers={"Location": h.url.replace("127.0.0.1", "localhost")}),
        "proof: hosted assertion at {url}: redirected to http://localhost:"),
    "not JSON": (
        lambda h: h.serve("/assertions/1", b"<html>a badge</html>", content_type="text/html"),
        "proof: hosted assertion at {url}: served text/html, not JSON"),
    "invalid JSON": (
        lambda h: h.serve("/assertions/1", b"{not json"),
        "the body is not valid JSON"),
    "oversized": (
        lambda h: h.serve("/assertions/1", b" " * (MAX_HOSTED_DOCUMENT_BYTES + 1)),
        f"larger than {MAX_HOSTED_DOCUMENT_BYTES} bytes"),
    "not found": (
        lambda h: h.routes.pop("/assertions/1"),
        "proof: hosted assertion at {url}: answered HTTP 404"),
    "BadgeClass missing": (
        lambda h: h.routes.pop("/badges/robotics"),
        "badge class: the BadgeClass at {base}/badges/robotics: answered HTTP 404"),
    "the badge's issuer is not the one that lists the origin": (
        lambda h: (_change(h, "/badges/robotics", issuer=f"{h.base}/other-issuer"),
                   h.serve("/other-issuer", h.document("/issuer") | {"id": f"{h.base}/other-issuer"})),
        "issuer trust: the badge's issuer {base}/other-issuer is not the trusted issuer that lists {base}"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_hosted_refusals(engine, trusting, hosted, family, case):
    submitted = hosted.assertion()
    change, reason = REFUSALS[case]
    change(hosted)
    expected = reason.format(url=hosted.url, base=hosted.base)
    result = await check(engine, trusting, submitted)
    assert not result.ok and expected in failures(result), failures(result)
    async with make_sessionmaker(engine)() as session, session.begin():
        with pytest.raises(ImportRefused) as refused:
            await import_credential(session, trusting, family.learner_id, submitted, now=NOW,
                                    guardian_id=family.guardian_id)
    assert expected in str(refused.value)


async def test_only_origins_the_operator_allowed_are_fetched(engine, kit, tmp_path, hosted):
    submitted = hosted.assertion()
    # No issuer lists this origin: nothing is fetched, and the reason names the setting.
    elsewhere = hosted_kit(kit, tmp_path, [{"id": hosted.issuer, "hosted_origins": ["https://badges.example.org"]}])
    for chosen in (kit, elsewhere):
        result = await check(engine, chosen, submitted)
        assert f"hosted assertion at {hosted.url}: origin {hosted.base} not allowed for fetching " \
               "(KINFOLIO_TRUSTED_ISSUERS_FILE" in failures(result)
    # The BadgeClass on an origin nobody allowed is not fetched either.
    with issuer_site() as other:
        _change(hosted, "/assertions/1", badge=f"{other.base}/badges/robotics")
        trusting = hosted_kit(kit, tmp_path, [{"id": hosted.issuer, "hosted_origins": [hosted.base]}])
        result = await check(engine, trusting, hosted.assertion())
        assert f"badge class: the BadgeClass at {other.base}/badges/robotics: origin {other.base} not allowed" \
            in failures(result)
        assert other.seen == []
    assert hosted.seen == ["/assertions/1"]
    # A hosted assertion whose id is not an HTTP(S) URL cannot be fetched at all.
    for bad in ("urn:uuid:1", "http://[::1", 42):
        result = await check(engine, trusting, submitted | {"id": bad})
        assert "must be the HTTP(S) URL it is hosted at" in failures(result)


async def test_default_scope_is_the_issuer_profiles_origin(engine, kit, tmp_path, hosted):
    # The issuer Profile lives on another origin and declares no verification scope: the assertion
    # hosted here is out of its scope (OB 2.0 §HostedBadge Verification), even though both origins
    # are allowed for fetching.
    with issuer_site() as home:
        _change(hosted, "/badges/robotics", issuer=home.issuer)
        trusting = hosted_kit(kit, tmp_path, [{"id": home.issuer, "hosted_origins": [hosted.base, home.base]}])
        result = await check(engine, trusting, hosted.assertion())
        assert f"the assertion and BadgeClass must be hosted on the origin of the issuer Profile id {home.issuer}" \
            in failures(result)
        # allowedOrigins naming this host (host:port) brings it into scope.
        _change(home, "/issuer", verification={"allowedOrigins": hosted.base.split("//")[1]})
        result = await check(engine, trusting, hosted.assertion())
        assert result.ok, failures(result)


@pytest.mark.parametrize(("origins", "allow", "message"), [
    (["http://127.0.0.1:8000"], False, "fetched over https only"),
    (["http://badges.example.org"], True, "fetched over https only"),
    (["https://badges.example.org/assertions/"], False, "not an origin"),
    ("https://badges.example.org", False, "hosted_origins must be a list"),
])
def test_hosted_origins_are_https_origins(kit, tmp_path, origins, allow, message):
    path = tmp_path / "trusted.json"
    path.write_text(json.dumps({"issuers": [{"id": "https://badges.example.org/issuer", "hosted_origins": origins}]}))
    with pytest.raises(CredentialsNotConfigured, match=message):
        kit_from_settings(kit.settings.model_copy(update={"trusted_issuers_file": path,
                                                          "hosted_allow_http_loopback": allow}))


def test_the_loopback_switch_is_refused_in_production(settings):
    with pytest.raises(ValueError, match="KINFOLIO_HOSTED_ALLOW_HTTP_LOOPBACK is a test-only switch"):
        settings.model_validate(settings.model_dump() | {"environment": "production", "hosted_allow_http_loopback": True})


VERIFY = """query($c: String!) { verifyCredential(credential: $c) {
  verified format credentialId issuerId types checks { check outcome reason } } }"""
IMPORT = """mutation($l: ID!, $c: [String!]!) { importCredentials(learnerId: $l, credentials: $c) {
  results { outcome reasons kind issuerId credentialId badgeSourceIds } } }"""
BADGES = """query($l: ID!) { learner(id: $l) { badges(first: 10) { nodes { sourceId achievement { name }
  issuer { id name } } } } }"""


async def test_graphql_verifies_imports_and_shows_a_hosted_badge(engine, credentials_app, client, trusting, hosted, family,
                                                                 monkeypatch):
    monkeypatch.setattr(credentials_app.state, "credential_kit", trusting)
    provider = await make_provider(engine, "Hosted Wallet", ["badges:contribute", "badges:read"])
    await grant(engine, family, provider, "badges", Action.CONTRIBUTE)
    token = await get_token(client, provider)
    submitted = json.dumps(hosted.assertion())

    verified = (await gql(client, token, VERIFY, {"c": submitted})).json()["data"]["verifyCredential"]
    assert (verified["verified"], verified["format"], verified["credentialId"], verified["issuerId"]) == (
        True, "ob2", hosted.url, hosted.issuer)
    assert {c["check"] for c in verified["checks"]} >= {"proof", "hosted assertion", "badge class", "issuer profile",
                                                        "issuer trust", "hosted scope", "validity period"}

    learner = learner_id_for(family, provider)
    result = (await gql(client, token, IMPORT, {"l": learner, "c": [submitted]})).json()["data"]["importCredentials"]
    [created] = result["results"]
    assert (created["outcome"], created["kind"], created["issuerId"]) == ("CREATED", "Assertion", hosted.issuer)
    nodes = (await gql(client, token, BADGES, {"l": learner})).json()["data"]["learner"]["badges"]["nodes"]
    assert [(n["sourceId"], n["achievement"]["name"], n["issuer"]["name"]) for n in nodes] == [
        (created["badgeSourceIds"][0], "Hosted Robotics", "Riverside Makers")]

    # Revoked on the issuer's server: verifyCredential says so, a new import is refused.
    changed = copy.deepcopy(hosted.assertion())
    hosted.serve("/assertions/1", {"id": hosted.url, "revoked": True}, 410)
    verified = (await gql(client, token, VERIFY, {"c": json.dumps(changed)})).json()["data"]["verifyCredential"]
    assert verified["verified"] is False
    assert any(c["check"] == "status" and c["outcome"] == "FAILED" and "410 Gone" in c["reason"]
               for c in verified["checks"]), verified


def test_cli_verify_shows_the_hosted_checks(contexts_dir, tmp_path, monkeypatch, database_url, engine, hosted):  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from hub.cli import app as cli
    from hub.config import get_settings

    trust = tmp_path / "trusted.json"
    trust.write_text(json.dumps({"issuers": [{"id": hosted.issuer, "hosted_origins": [hosted.base]}]}))
    assertion = tmp_path / "assertion.json"
    assertion.write_text(json.dumps(hosted.assertion()))
    for name, value in {"DATABASE_URL": database_url, "DATA_DIR": str(tmp_path), "JSONLD_CONTEXTS_DIR": str(contexts_dir),
                        "TRUSTED_ISSUERS_FILE": str(trust), "HOSTED_ALLOW_HTTP_LOOPBACK": "true"}.items():
        monkeypatch.setenv(f"KINFOLIO_{name}", value)
    get_settings.cache_clear()
    try:
        ok = CliRunner().invoke(cli, ["credentials", "verify", str(assertion)])
        assert ok.exit_code == 0, ok.output
        assert f"[ok  ] proof: OB 2.0 hosted: fetched {hosted.url}" in ok.output
        assert "[ok  ] hosted scope" in ok.output and ok.output.strip().endswith("VERIFIED")
        hosted.serve("/assertions/1", b"", 410, content_type="text/plain")
        gone = CliRunner().invoke(cli, ["credentials", "verify", str(assertion)])
        assert gone.exit_code == 1 and "[FAIL] status: revoked" in gone.output
    finally:
        get_settings.cache_clear()
