"""``fulfillment sandbox``: the local Stripe, SendGrid and EasyPost on one port."""

from __future__ import annotations

from typing import Any

import click

from cli.context import init_logging
from fulfillment.settings import load_settings
from integrations.stripe_events import SUBSCRIBED_EVENTS
from sandbox import PROVIDERS, ProviderFaults, SandboxConfig, serve
from sandbox.config import local_api_url
from sandbox.stripe.endpoints import event_types

#: Where the sandbox keeps what it holds, under VAR_DIR.
STATE_FILE = "sandbox.sqlite3"
#: The shorthand flags, applied to every provider (--fault refines one provider).
SHORTHANDS = (
    ("latency", "Seconds added to every answer."),
    ("error_rate", "Share of requests answered 503 (or --fault P.error_status=N)."),
    ("rate_limit_rate", "Share of requests answered 429 with Retry-After."),
    ("timeout_rate", "Share of requests processed, then answered too late."),
    ("webhook_duplicate_rate", "Share of webhooks delivered twice."),
    ("webhook_delay", "Webhooks wait up to this many seconds."),
    ("webhook_reorder_rate", "Share of webhooks held back so later ones overtake them."),
)


def _fault_flags(command: Any) -> Any:
    for name, help_text in reversed(SHORTHANDS):
        flag = "--" + name.replace("_", "-")
        command = click.option(flag, name, type=float, default=None, help=help_text)(command)
    return command


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=int, default=None, help="Port [default: SANDBOX_PORT, 12111].")
@click.option(
    "--webhook-url",
    default=None,
    help="Base URL of the API that takes webhooks [default: SANDBOX_WEBHOOK_URL, else the "
    "local API at API_HOST:API_PORT, http://127.0.0.1:8080].",
)
@click.option(
    "--no-webhooks",
    is_flag=True,
    help="Send no webhooks: Stripe starts without an endpoint (its events stay readable at "
    "GET /v1/events), EasyPost's are only logged.",
)
@click.option(
    "--stripe-events",
    default=",".join(SUBSCRIBED_EVENTS),
    show_default=True,
    help="What the sandbox's Stripe endpoint subscribes to, comma-separated; '*' for every "
    "event type. The default is what the saga acts on.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for every fault.")
@click.option(
    "--tracker-step-seconds",
    type=float,
    default=15.0,
    show_default=True,
    help="Seconds between tracker statuses; 0 moves them only through the control API.",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="PROVIDER.FIELD=VALUE",
    help="One provider's fault, e.g. stripe.error_rate=0.2 or easypost.fail_next=3 "
    "(PROVIDER may be '*'); stripe.search_lag=S sets how long a new PaymentIntent takes "
    "to show in Stripe's search (5 s by default, as Stripe is not read-after-write); "
    "stripe.refund_pending=P makes that share of new refunds pending, settled "
    "stripe.refund_settle_after=S seconds later, and stripe.refund_fail_after=S is when a "
    "refund on pm_card_refundFail fails (5 s each by default). Repeatable.",
)
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="SQLite file that keeps payments, refunds, mail, shipments and trackers across "
    "restarts [default: VAR_DIR/sandbox.sqlite3].",
)
@click.option("--ephemeral", is_flag=True, help="Keep nothing: start empty every time.")
@click.option(
    "--no-templates",
    is_flag=True,
    help="SendGrid starts without the repository's e-mail templates (by default they are "
    "installed, as if `fulfillment templates sync` had run).",
)
@_fault_flags
def sandbox(
    host: str,
    port: int | None,
    webhook_url: str | None,
    no_webhooks: bool,
    stripe_events: str,
    seed: int,
    tracker_step_seconds: float,
    faults: tuple[str, ...],
    state_file: str | None,
    ephemeral: bool,
    no_templates: bool,
    **shorthands: float | None,
) -> None:
    """Serve Stripe at /, SendGrid under /sendgrid and EasyPost under /easypost/v2,
    with signed webhooks back to the API and seeded fault injection
    (control API under /_sandbox)."""
    settings = load_settings()
    init_logging(settings)
    target = webhook_url or settings.sandbox_webhook_url or local_api_url(settings)
    if no_webhooks:
        target = None
    try:
        provider_faults = parse_faults(faults, shorthands)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="fault flags") from None
    try:
        enabled_events = tuple(event_types(t.strip() for t in stripe_events.split(",") if t))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--stripe-events") from None
    config = SandboxConfig.from_settings(
        settings,
        webhook_url=target,
        seed=seed,
        faults=provider_faults,
        stripe_enabled_events=enabled_events,
        tracker_step_seconds=tracker_step_seconds,
        state_path=None if ephemeral else state_file or str(settings.var_dir / STATE_FILE),
        install_templates=not no_templates,
    )
    port = port or settings.sandbox_port
    click.echo(f"sandbox on http://{host}:{port}  (webhooks to {target or 'nowhere'})", err=True)
    serve(config, host=host, port=port, print_fn=None)


def parse_faults(
    flags: tuple[str, ...], shorthands: dict[str, float | None]
) -> dict[str, ProviderFaults]:
    """Shorthands for every provider, then ``PROVIDER.FIELD=VALUE`` flags on top."""
    common = {name: value for name, value in shorthands.items() if value is not None}
    updates: dict[str, dict[str, str | float]] = {p: dict(common) for p in PROVIDERS}
    for flag in flags:
        target, _, value = flag.partition("=")
        provider, _, field = target.partition(".")
        if not value or not field:
            raise ValueError(f"{flag!r} is not PROVIDER.FIELD=VALUE")
        for name in PROVIDERS if provider in ("*", "all") else (provider,):
            if name not in updates:
                raise ValueError(f"unknown provider {provider!r} in {flag!r}")
            updates[name][field] = value
    return {provider: ProviderFaults.from_mapping(values) for provider, values in updates.items()}
