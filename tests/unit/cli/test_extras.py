"""A subcommand whose optional extra is missing says what to install, in one line."""

from __future__ import annotations

import importlib.util

import pytest
from click.testing import CliRunner

from cli.main import group


@pytest.mark.parametrize("command", [["sandbox"], ["sandbox", "--port", "1"], ["run"]])
def test_the_sandbox_without_its_extra_says_how_to_install_it(monkeypatch, command):
    # Given an install without the sandbox extra (no Handlebars renderer)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pybars" else find_spec(name, *a))  # fmt: skip

    # When the command is run
    result = CliRunner().invoke(group, command)

    # Then it stops with one line that names the extra, and no traceback
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: `fulfillment {command[0]}` needs the sandbox extra: "
        "pip install 'fulfillment[sandbox]'"
    ]


def test_the_sandbox_is_listed_whether_or_not_its_extra_is_installed(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)

    result = CliRunner().invoke(group, ["--help"])

    assert result.exit_code == 0 and "sandbox" in result.output
