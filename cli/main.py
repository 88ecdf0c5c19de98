"""The ``fulfillment`` command: one entry point for every process and operator task."""

from __future__ import annotations

import click

from cli.admin import catalog, users
from cli.database import db
from cli.serve import api, run


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def group() -> None:
    """Fulfillment: order-fulfillment backend for storefronts."""


for command in (api, run, db, users, catalog):
    group.add_command(command)


def main() -> None:
    group(prog_name="fulfillment")
