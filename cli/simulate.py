"""``fulfillment simulate``: storefront traffic against a running API.

Registers customers, places orders at a rate or a concurrency (each with an
Idempotency-Key, retried as a real storefront retries), a mix of good and declined
cards and optional cancellations and sandbox faults; waits until every order is
terminal; prints a summary (or JSON) and runs ``fulfillment verify``.
"""

from __future__ import annotations

import asyncio
import json
import sys

import click

from cli.traffic import Simulation, SimulationConfig, summarize


@click.command()
@click.option("--api", "api_url", default=None, help="default: http://API_HOST:API_PORT")
@click.option("--sandbox", "sandbox_url", default=None, help="default: the local sandbox")
@click.option("-n", "--orders", default=200, show_default=True)
@click.option(
    "--rate", type=float, default=0.0, help="orders per second (0: as fast as --concurrency allows)"
)
@click.option("-c", "--concurrency", default=16, show_default=True)
@click.option("--customers", default=10, show_default=True)
@click.option("--decline-rate", type=float, default=0.1, show_default=True)
@click.option("--cancel-rate", type=float, default=0.0, show_default=True)
@click.option("--sca-rate", type=float, default=0.0, show_default=True,
              help="share of orders paid with a card that needs 3-D Secure (sandbox only; "
                   "one customer in five fails the authentication)")  # fmt: skip
@click.option("--fault", "faults", multiple=True, metavar="PROVIDER.FIELD=VALUE",
              help="a sandbox fault during the run, e.g. stripe.error_rate=0.2")  # fmt: skip
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--timeout",
    type=float,
    default=600,
    show_default=True,
    help="seconds to wait for terminal states",
)
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@click.option("--no-verify", is_flag=True, help="skip fulfillment verify at the end")
def simulate(api_url, sandbox_url, orders, rate, concurrency, customers, decline_rate,
             cancel_rate, sca_rate, faults, seed, timeout, as_json, no_verify) -> None:  # fmt: skip
    """Storefront traffic against a running API, then a summary and verify."""
    from cli.context import backends
    from fulfillment.settings import load_settings

    settings = load_settings()
    fault_map = _faults(faults)
    config = SimulationConfig(
        api_url=api_url or f"http://{settings.api_host}:{settings.api_port}",
        sandbox_url=sandbox_url or settings.stripe_api_base,
        orders=orders, rate=rate, concurrency=concurrency, customers=customers,
        decline_rate=decline_rate, cancel_rate=cancel_rate, sca_rate=sca_rate, seed=seed,
        timeout=timeout,
        faults=fault_map,
    )  # fmt: skip
    result = asyncio.run(Simulation(config).run(progress=not as_json))
    report = None
    if not no_verify:
        from pipelines.operations.invariants import check_all

        with backends(settings) as ready:
            report = check_all(ready)
        result["verify"] = report.as_dict()
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        summarize(result)
        if report is not None:
            for line in report.lines():
                click.echo(line)
    failed = result["unfinished"] or (report is not None and not report.ok)
    sys.exit(1 if failed else 0)


def _faults(flags: tuple[str, ...]) -> dict[str, dict[str, float | str]]:
    """``stripe.error_rate=0.2`` -> {"stripe": {"error_rate": 0.2}} for the control API."""
    faults: dict[str, dict[str, float | str]] = {}
    for flag in flags:
        target, _, value = flag.partition("=")
        provider, _, field = target.partition(".")
        if not (provider and field and value):
            raise click.BadParameter(
                f"{flag!r}: expected PROVIDER.FIELD=VALUE", param_hint="--fault"
            )
        try:
            faults.setdefault(provider, {})[field] = float(value)
        except ValueError:
            faults.setdefault(provider, {})[field] = value
    return faults
