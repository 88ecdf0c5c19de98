"""``fulfillment templates sync``: the customer e-mails' SendGrid dynamic templates,
from the repository's Handlebars files into the SendGrid account."""

from __future__ import annotations

from pathlib import Path

import click

from fulfillment.settings import load_settings

#: Where the <kind>.hbs files are (``integrations/templates``, not imported here: the
#: command line loads no provider SDK until a command needs one).
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "integrations" / "templates"


@click.group()
def templates() -> None:
    """The customer e-mails' SendGrid templates."""


@templates.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=TEMPLATES_DIR,
    show_default=True,
    help="Where the <kind>.hbs files are.",
)
def sync(directory: Path) -> None:
    """Create each missing template (named fulfillment_<kind>) and give a template whose
    active version differs from its file a new active version; change nothing else."""
    import sendgrid

    from integrations.errors import ProviderError
    from integrations.sendgrid_gateway import SENDGRID_API_HOST
    from integrations.sendgrid_templates import load_templates, sync_templates

    settings = load_settings()
    try:
        sources = load_templates(directory)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    client = sendgrid.SendGridAPIClient(
        settings.sendgrid_api_key.get_secret_value(),
        host=settings.sendgrid_host or SENDGRID_API_HOST,
    )
    try:
        results = sync_templates(client, sources)
    except ProviderError as exc:
        raise click.ClickException(str(exc)) from None
    for result in results:
        click.echo(f"{result.action:9} {result.name} {result.template_id} "
                   f"(active version {result.version_id})")  # fmt: skip
    changed = sum(result.action != "unchanged" for result in results)
    click.echo(f"{len(results)} templates, {changed} changed")
