"""The ``fulfillment`` command: one entry point for every process and operator task.

Subcommands load lazily: ``fulfillment api`` imports the API and nothing of the
workers, the sandbox or the operator tools, and ``fulfillment worker`` nothing of the
API (each process starts in a fraction of the time the whole command line took).
A subcommand whose optional extra is not installed (``fulfillment sandbox`` without
``fulfillment[sandbox]``) says so in one line instead of failing on an import."""

from __future__ import annotations

import importlib
import importlib.util

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
#: Subcommands that need an optional extra: its name, and the modules it brings (the
#: sandbox's package, absent from the production image, and its Handlebars renderer).
EXTRAS = {
    "sandbox": ("sandbox", ("sandbox", "pybars")),
    "run": ("sandbox", ("sandbox", "pybars")),  # it starts `fulfillment sandbox`
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
        extra, modules = EXTRAS.get(cmd_name, (None, ()))
        if any(importlib.util.find_spec(name) is None for name in modules):
            return _needs_extra(cmd_name, extra)
        module, attribute = target.split(":")
        return getattr(importlib.import_module(module), attribute)


def _needs_extra(name: str, extra: str) -> click.Command:
    """A stand-in for a subcommand whose extra is missing: listed, and when run, one
    line that says what to install (exit status 1)."""
    message = f"`fulfillment {name}` needs the {extra} extra: pip install 'fulfillment[{extra}]'"

    def refuse() -> None:
        raise click.ClickException(message)

    return click.Command(name, callback=refuse, help=message, add_help_option=False,
                         context_settings={"ignore_unknown_options": True,
                                           "allow_extra_args": True})  # fmt: skip


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def group() -> None:
    """Fulfillment: order-fulfillment backend for storefronts."""


def main() -> None:
    group(prog_name="fulfillment")
