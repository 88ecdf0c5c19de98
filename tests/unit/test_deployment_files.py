"""Docker does not run here, so the deployment files are checked by reading them:
every command they name must be a real ``fulfillment`` sub-command."""

from __future__ import annotations

import shlex
from pathlib import Path

import click
import pytest
import yaml

from cli.main import group

ROOT = Path(__file__).resolve().parents[2]


def is_real_command(argv: list[str]) -> bool:
    """True when argv is ``fulfillment <sub> [<sub>...] [options]`` naming real commands
    and options."""
    if not argv or argv[0] != "fulfillment":
        return False
    command: click.Command = group
    words = argv[1:]
    while isinstance(command, click.Group):
        sub = command.get_command(click.Context(command), words[0]) if words else None
        if sub is None:
            return False
        command, words = sub, words[1:]
    options = {opt for param in command.params for opt in getattr(param, "opts", [])}
    return all(word in options for word in words if word.startswith("-"))


def compose_commands() -> dict[str, list[str]]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return {
        name: service["command"]
        for name, service in compose["services"].items()
        if "build" in service
    }


def test_compose_services_have_health_checks_and_wait_for_them():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("postgres", "redis", "api"):
        assert "healthcheck" in services[name], name
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("service", sorted(compose_commands()))
def test_compose_commands_are_real(service):
    assert is_real_command(compose_commands()[service])


def test_procfile_commands_are_real():
    entries = dict(
        line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()
    )
    assert {"release", "web"} <= set(entries)
    for name, command in entries.items():
        assert is_real_command(shlex.split(command)), name


def test_dockerfile_default_command_is_real():
    import json

    line = next(
        line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD")
    )
    assert is_real_command(json.loads(line.removeprefix("CMD ")))


def test_the_checker_rejects_made_up_commands():
    assert not is_real_command(["fulfillment", "serve"])
    assert not is_real_command(["fulfillment", "db", "upgrade", "--force"])
    assert not is_real_command(["gunicorn", "app"])


@pytest.mark.parametrize("name", ["JWT_SECRET", "STRIPE_WEBHOOK_SECRET", "EASYPOST_WEBHOOK_SECRET",
                                  "SENDGRID_WEBHOOK_PUBLIC_KEY"])  # fmt: skip
def test_compose_requires_every_secret_instead_of_a_public_default(name):
    environment = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["x-env"]
    assert environment[name].startswith(f"${{{name}:?"), environment[name]


def test_compose_runs_in_production_mode():
    text = (ROOT / "docker-compose.yml").read_text()
    assert "FULFILLMENT_ENV" not in text and "DEV_MODE" not in text


def test_every_compose_service_has_a_restart_policy():
    """A crashed server comes back on its own; only the one-shot migration does not."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    policies = {name: service.get("restart") for name, service in services.items()}
    assert policies.pop("migrate") == "no"
    assert policies and all(policy == "unless-stopped" for policy in policies.values()), policies
