"""docker-compose.yml cannot run here (no Docker engine), so check what it references exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hub.cli import app as cli
from hub.config import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)


def test_services_and_startup_order():
    services = COMPOSE["services"]
    assert set(services) == {"db", "migrate", "hub"}
    assert services["db"]["healthcheck"]["test"][0] == "CMD-SHELL" and "pg_isready" in services["db"]["healthcheck"]["test"][1]
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert services["hub"]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    assert services["hub"]["command"][-2:] == ["--workers", "4"]


@pytest.mark.parametrize("service", ["migrate", "hub"])
def test_commands_are_real_cli_commands(service):  # type: ignore[no-untyped-def]
    command = COMPOSE["services"][service]["command"]
    assert command[0] == "kinfolio"
    subcommand = [part for part in command[1:] if not part.startswith("--") and not part.isdigit()]
    result = CliRunner().invoke(cli, [*subcommand, "--help"])
    assert result.exit_code == 0, result.output
    for option in (part for part in command if part.startswith("--")):
        assert option in result.output


def test_build_context_has_what_the_dockerfile_copies():
    for service in ("migrate", "hub"):
        assert COMPOSE["services"][service]["build"] == "."
    dockerfile = (ROOT / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (.+) \S+$", dockerfile, flags=re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), f"Dockerfile copies missing {path}"


def test_secrets_are_required_never_defaulted():
    references = re.findall(r"\$\{([A-Z_]+)([^}]*)\}", COMPOSE_TEXT)
    assert references
    for name, modifier in references:
        assert modifier.startswith(":?"), f"${{{name}}} must be required with :? (no default)"


def test_environment_names_are_real_settings():
    environment = COMPOSE["services"]["hub"]["environment"]
    fields = {f"KINFOLIO_{name.upper()}" for name in Settings.model_fields}
    assert set(environment) <= fields
    assert environment["KINFOLIO_ENVIRONMENT"] == "production"
