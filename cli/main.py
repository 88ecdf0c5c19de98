"""The ``fulfillment`` command: one entry point for every process and operator task."""

from __future__ import annotations

import click

from cli.admin import catalog, users
from cli.database import db
from cli.operations import dlq, orders, verify
from cli.sandbox import sandbox
from cli.serve import api, run
from cli.simulate import simulate
from cli.templates import templates
from cli.workers import scheduler, worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def group() -> None:
    """Fulfillment: order-fulfillment backend for storefronts."""


for command in (
    api,
    run,
    worker,
    scheduler,
    sandbox,
    db,
    users,
    catalog,
    dlq,
    orders,
    verify,
    simulate,
    templates,
):
    group.add_command(command)


def main() -> None:
    group(prog_name="fulfillment")
