"""On-call commands: ``dlq``, ``orders show`` and ``verify``."""

from __future__ import annotations

import json
import sys
import uuid

import click

from cli.context import backends


def _dead_letters(settings):
    from workers.broker import create_broker
    from workers.dead_letters import DeadLetters

    return DeadLetters(create_broker(settings))


@click.group()
def dlq() -> None:
    """Dead-letter queues: inspect and redrive."""


@dlq.command("list")
@click.option("--queue", default=None)
@click.option("--json", "as_json", is_flag=True)
def dlq_list(queue: str | None, as_json: bool) -> None:
    """Every dead letter, oldest first."""
    with backends() as settings:
        letters = _dead_letters(settings).list(queue=queue)
    if as_json:
        click.echo(json.dumps([letter.as_dict() for letter in letters], indent=2))
        return
    for letter in letters:
        click.echo(f"{letter.id}  {letter.died_at:%Y-%m-%d %H:%M:%S}  {letter.queue:<13} "
                   f"{letter.actor:<20} {json.dumps(letter.kwargs)}  {letter.error}")  # fmt: skip
    click.echo(f"{len(letters)} dead letter(s)")


@dlq.command("show")
@click.argument("letter_id")
def dlq_show(letter_id: str) -> None:
    """One dead letter in full."""
    with backends() as settings:
        letter = _dead_letters(settings).get(letter_id)
    if letter is None:
        raise click.ClickException(f"no dead letter {letter_id}")
    click.echo(json.dumps(letter.as_dict(), indent=2))


@dlq.command("replay")
@click.argument("letter_id", required=False)
@click.option("--all", "replay_all", is_flag=True, help="every dead letter")
@click.option("--queue", default=None, help="with --all: only this queue")
def dlq_replay(letter_id: str | None, replay_all: bool, queue: str | None) -> None:
    """Send dead letters again; their orders resume where they stopped."""
    if bool(letter_id) == replay_all:
        raise click.UsageError("give one LETTER_ID or --all")
    with backends() as settings:
        store = _dead_letters(settings)
        done = store.replay_all(queue=queue) if replay_all else [store.replay(letter_id)]
    if done == [None]:
        raise click.ClickException(f"no dead letter {letter_id}")
    click.echo(f"replayed {len(done)} dead letter(s)")


@dlq.command("purge")
@click.option("--queue", default=None)
@click.confirmation_option(prompt="Drop the dead letters for good?")
def dlq_purge(queue: str | None) -> None:
    """Drop dead letters without replaying them."""
    with backends() as settings:
        removed = _dead_letters(settings).purge(queue=queue)
    click.echo(f"purged {removed} dead letter(s)")


@click.group()
def orders() -> None:
    """Orders, as on-call sees them."""


@orders.command("show")
@click.argument("order_id", type=click.UUID)
def orders_show(order_id: uuid.UUID) -> None:
    """An order's state and its whole timeline."""
    from pipelines.inspection import describe_order

    with backends() as settings:
        text = describe_order(settings, order_id)
    if text is None:
        raise click.ClickException(f"no order {order_id}")
    click.echo(text)


@click.command()
@click.option("--json", "as_json", is_flag=True)
def verify(as_json: bool) -> None:
    """Check the invariants; exit 1 and list every violation if any is broken."""
    from pipelines.invariants import check_all

    with backends() as settings:
        report = check_all(settings)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for line in report.lines():
            click.echo(line)
    sys.exit(0 if report.ok else 1)
