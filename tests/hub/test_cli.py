"""The operator CLI against the test database: grant management and clear errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from hub.cli import app as cli
from hub.config import get_settings

runner = CliRunner()


@pytest.fixture
def kinfolio(engine, database_url, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KINFOLIO_DATABASE_URL", database_url)
    monkeypatch.setenv("KINFOLIO_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()

    def run(*args: str, ok: bool = True):  # type: ignore[no-untyped-def]
        result = runner.invoke(cli, list(args))
        if ok:
            assert result.exit_code == 0, result.output
        return result

    yield run
    get_settings.cache_clear()


def test_grant_management_round_trip(kinfolio):  # type: ignore[no-untyped-def]
    kinfolio("guardian", "create", "--email", "Pat@Example.org", "--name", "Pat")
    learner_id = kinfolio("learner", "create", "--given-name", "Ria", "--family-name", "Moss", "--dob", "2014-02-03",
                          "--guardian", "pat@example.org").output.strip()
    kinfolio("provider", "create", "--name", "Maths App", "--kind", "app")
    created = kinfolio("client", "create", "--provider", "Maths App", "--scope", "skills:read").output
    assert "client_secret:" in created and "shown only now" in created

    first = kinfolio("grant", "create", "--learner", learner_id, "--provider", "Maths App", "--section", "skills",
                     "--action", "read", "--purpose", "Practice plans", "--by", "pat@example.org").output
    again = kinfolio("grant", "create", "--learner", learner_id, "--provider", "Maths App", "--section", "skills",
                     "--action", "read", "--purpose", "Practice plans", "--by", "pat@example.org").output
    assert "(granted)" in first and "(already granted)" in again
    grants = [json.loads(line) for line in kinfolio("grant", "list", "--learner", learner_id).output.splitlines()]
    assert [(g["section"], g["action"], g["purpose"], g["revoked_at"]) for g in grants] == [
        ("skills", "read", "Practice plans", None)
    ]
    assert kinfolio("grant", "revoke", "--learner", learner_id, "--provider", "Maths App",
                    "--by", "pat@example.org").output.strip() == "revoked 1 grant(s)"
    grants = [json.loads(line) for line in kinfolio("grant", "list").output.splitlines()]
    assert grants[0]["revoked_at"] is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["grant", "create", "--learner", "not-a-uuid", "--provider", "P", "--section", "skills", "--action", "read",
          "--purpose", "x", "--by", "a@b.c"], "is not a UUID"),
        (["grant", "create", "--learner", "00000000-0000-4000-8000-000000000000", "--provider", "P", "--section",
          "grades", "--action", "read", "--purpose", "x", "--by", "a@b.c"], "unknown section 'grades'"),
        (["grant", "create", "--learner", "00000000-0000-4000-8000-000000000000", "--provider", "P", "--section",
          "skills", "--action", "write", "--purpose", "x", "--by", "a@b.c"], "action must be one of"),
        (["grant", "create", "--learner", "00000000-0000-4000-8000-000000000000", "--provider", "Nobody", "--section",
          "skills", "--action", "read", "--purpose", "x", "--by", "a@b.c"], "no provider named 'Nobody'"),
        (["learner", "create", "--given-name", "A", "--family-name", "B", "--dob", "03/02/2014", "--guardian", "a@b.c"],
         "YYYY-MM-DD"),
        (["client", "create", "--provider", "Nobody", "--scope", "skills:read"], "no provider named"),
    ],
    ids=["bad learner id", "unknown section", "unknown action", "unknown provider", "bad date", "client for nobody"],
)
def test_bad_input_is_one_clear_line_and_exit_2(kinfolio, args, message):  # type: ignore[no-untyped-def]
    result = kinfolio(*args, ok=False)
    assert result.exit_code == 2
    assert message in result.output


def test_unknown_scope_for_client_is_refused(kinfolio):  # type: ignore[no-untyped-def]
    kinfolio("provider", "create", "--name", "Scoped", "--kind", "club")
    result = kinfolio("client", "create", "--provider", "Scoped", "--scope", "grades:read", ok=False)
    assert result.exit_code == 2 and "unknown section 'grades'" in result.output


def test_guardian_must_be_the_learners_guardian_to_grant(kinfolio):  # type: ignore[no-untyped-def]
    kinfolio("guardian", "create", "--email", "one@example.org", "--name", "One")
    kinfolio("guardian", "create", "--email", "stranger@example.org", "--name", "Stranger")
    learner_id = kinfolio("learner", "create", "--given-name", "Ria", "--family-name", "Moss", "--dob", "2014-02-03",
                          "--guardian", "one@example.org").output.strip()
    kinfolio("provider", "create", "--name", "App", "--kind", "app")
    result = kinfolio("grant", "create", "--learner", learner_id, "--provider", "App", "--section", "skills",
                      "--action", "read", "--purpose", "x", "--by", "stranger@example.org", ok=False)
    assert result.exit_code == 2 and "not permitted: not a guardian of this learner" in result.output


def test_demo_loads_once_and_prints_a_working_recipe(kinfolio):  # type: ignore[no-untyped-def]
    first = kinfolio("demo", "--activities-per-learner", "50").output
    second = kinfolio("demo").output
    assert "demo data loaded" in first and "demo data already loaded" in second
    for output in (first, second):
        assert "client_secret:" in output and "/oauth/token" in output and "/graphql" in output
        assert "Family portal:" in output and "password:" in output
    assert len(kinfolio("learner", "list").output.splitlines()) == 4


def test_code_flow_clients_and_key_rotation(kinfolio, tmp_path):  # type: ignore[no-untyped-def]
    kinfolio("provider", "create", "--name", "Reading App", "--kind", "app")
    web = kinfolio("client", "create", "--provider", "Reading App", "--scope", "badges:read",
                   "--redirect-uri", "https://reading.example.org/cb").output
    assert "client_secret:" in web
    public = kinfolio("client", "create", "--provider", "Reading App", "--scope", "badges:read",
                      "--redirect-uri", "http://127.0.0.1:8765/cb", "--auth-method", "none").output
    assert "no client secret" in public
    refused = kinfolio("client", "create", "--provider", "Reading App", "--scope", "badges:read",
                       "--redirect-uri", "https://reading.example.org/cb#x", ok=False)
    assert refused.exit_code == 2 and "fragment" in refused.output
    refused = kinfolio("client", "create", "--provider", "Reading App", "--scope", "badges:read",
                       "--auth-method", "private_key_jwt", ok=False)
    assert refused.exit_code == 2 and "JWKS" in refused.output
    first = kinfolio("keys", "rotate").output
    assert first.startswith("signing with ") and "retiring" in first
    assert (tmp_path / "jwt-signing-keyring.json").exists()


def test_learner_invite_only_from_the_learner_view_age(kinfolio):  # type: ignore[no-untyped-def]
    from tests.portal_helpers import years_ago

    kinfolio("guardian", "create", "--email", "pat@example.org", "--name", "Pat")
    teen = kinfolio("learner", "create", "--given-name", "Ria", "--family-name", "Moss", "--dob",
                    years_ago(18).isoformat(), "--guardian", "pat@example.org").output.strip()
    child = kinfolio("learner", "create", "--given-name", "Bo", "--family-name", "Moss", "--dob",
                     years_ago(9).isoformat(), "--guardian", "pat@example.org").output.strip()
    link = kinfolio("learner", "invite", "--learner", teen, "--email", "ria@example.org").output.strip()
    assert link.startswith("http") and "/account/learner-invite/" in link
    refused = kinfolio("learner", "invite", "--learner", child, "--email", "bo@example.org", ok=False)
    assert refused.exit_code == 2 and "too young" in refused.output
    taken = kinfolio("learner", "invite", "--learner", child, "--email", "pat@example.org", ok=False)
    assert taken.exit_code == 2
