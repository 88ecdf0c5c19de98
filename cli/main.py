"""The ``fulfillment`` command: one entry point for every process and operator task.

Subcommands load lazily: ``fulfillment api`` imports the API and nothing of the
workers, the sandbox or the operator tools, and ``fulfillment worker`` nothing of the
API (each process starts in a fraction of the time the whole command line took)."""

from __future__ import annotations

import importlib

import click

#: Every subcommand: its name and where it lives ("module:attribute").
COMMANDS = {
    "api": "cli.serve:api",
    "run": "cli.serve:run",
    "worker": "cli.workers:worker",
    "scheduler": "cli.workers:scheduler",
    "sandbox": "cli.sandbox:sandbox",
    "db": "cli.database:db",
    "users": "cli.admin:users",
    "catalog": "cli.admin:catalog",
    "dlq": "cli.operations:dlq",
    "orders": "cli.operations:orders",
    "verify": "cli.operations:verify",
    "simulate": "cli.simulate:simulate",
    "templates": "cli.templates:templates",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when one is run or listed (click's
    documented pattern for lazily loaded subcommands)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target.split(":")
        return getattr(importlib.import_module(module), attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def group() -> None:
    """Fulfillment: order-fulfillment backend for storefronts."""


def main() -> None:
    group(prog_name="fulfillment")
