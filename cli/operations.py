"""On-call commands: ``dlq``, ``orders show`` and ``orders list``, and ``verify``."""

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
    from pipelines.operations.inspection import describe_order

    with backends() as settings:
        text = describe_order(settings, order_id)
    if text is None:
        raise click.ClickException(f"no order {order_id}")
    click.echo(text)


@orders.command("list")
@click.option("--status", "statuses", multiple=True, metavar="STATUS", help="repeatable")
@click.option("--from", "created_from", metavar="ISO8601", help="placed at or after")
@click.option("--to", "created_to", metavar="ISO8601", help="placed at or before")
@click.option("--email", default=None, help="the customer's e-mail, any case")
@click.option("--product", default=None, help="a product's id or SKU")
@click.option("--needs-attention/--no-needs-attention", default=None)
@click.option("--stalled-minutes", type=click.IntRange(min=1), default=None,
              help="live orders whose status has not changed for this long")  # fmt: skip
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def orders_list(statuses, created_from, created_to, email, product, needs_attention,
                stalled_minutes, limit, as_json) -> None:  # fmt: skip
    """Orders newest first, filtered as GET /v1/admin/orders filters them."""
    from pipelines.operations.search import OrderFilter, find_orders

    wanted = OrderFilter(statuses=_statuses(statuses), created_from=_when(created_from, "--from"),
                         created_to=_when(created_to, "--to"), email=email, product=product,
                         needs_attention=needs_attention, stalled_minutes=stalled_minutes)  # fmt: skip
    with backends() as settings:
        rows = find_orders(settings, wanted, limit=limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['id']}  {row['created_at'][:19]}  {row['status']:<16} "
                   f"{row['total']:>10} {row['currency']}  {row['email']}  {row['last_error'] or ''}")  # fmt: skip
    click.echo(f"{len(rows)} order(s)")


def _when(text: str | None, name: str):
    """An ISO 8601 time from the command line (UTC unless it says otherwise)."""
    from datetime import UTC, datetime

    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time", param_hint=name) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _statuses(given: tuple[str, ...]) -> tuple[str, ...]:
    from fulfillment.states import OrderStatus

    known = {status.value for status in OrderStatus}
    statuses = tuple(part for value in given for part in value.split(",") if part)
    unknown = sorted(set(statuses) - known)
    if unknown:
        raise click.BadParameter(f"unknown status {', '.join(unknown)}", param_hint="--status")
    return statuses


@click.command()
@click.option("--json", "as_json", is_flag=True)
def verify(as_json: bool) -> None:
    """Check the invariants; exit 1 and list every violation if any is broken."""
    from pipelines.operations.invariants import check_all

    with backends() as settings:
        report = check_all(settings)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for line in report.lines():
            click.echo(line)
    sys.exit(0 if report.ok else 1)
