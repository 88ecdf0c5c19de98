"""The processes that only enqueue messages or read dead letters (the API, the
scheduler, the command line) must not drag in the steps and every provider SDK with
the broker: the broker's middleware reads step outcomes from ``pipelines.outcome``."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Modules a client of the broker has no use for.
HEAVY = ("pipelines.actors", "pipelines.payments.payment", "pipelines.shipping.ship", "pipelines.mail.notify",
         "sendgrid", "integrations.stripe_gateway", "integrations.easypost_gateway")  # fmt: skip


@pytest.mark.parametrize("module", ["api.app", "api.desk.dead_letters", "workers.scheduler", "workers.broker",
                                    "workers.dead_letters", "cli.main"])  # fmt: skip
def test_a_broker_client_imports_no_step_and_no_mail_sdk(module):
    # the API asks EasyPost about addresses itself (POST /v1/addresses/verify, the
    # customer's address change): that gateway is the one provider client it needs
    heavy = tuple(m for m in HEAVY
                  if not (module == "api.app" and m == "integrations.easypost_gateway"))  # fmt: skip
    code = (f"import sys, {module}; "
            f"print(','.join(m for m in {heavy!r} if m in sys.modules))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    assert done.stdout.strip() == "", f"{module} imports {done.stdout.strip()}"


#: What a production process never loads: the sandbox, the operator's traffic tools.
NOT_IN_PRODUCTION = ("sandbox", "cli.sandbox", "cli.simulate", "cli.traffic")


@pytest.mark.parametrize("command", ["api", "worker", "scheduler"])
def test_a_production_process_never_imports_the_sandbox_or_the_other_processes(command):
    # what `fulfillment <command>` imports before it runs: the group, then its command;
    # the API also loads nothing of the workers
    unwanted = NOT_IN_PRODUCTION + (("workers.",) if command == "api" else ())
    code = ("import sys, click; from cli.main import group; "
            f"group.get_command(click.Context(group), {command!r}); "
            f"print(','.join(sorted(m for m in sys.modules if m.startswith({unwanted!r}))))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    assert done.stdout.strip() == "", f"fulfillment {command} imports {done.stdout.strip()}"


def test_every_subcommand_of_the_lazy_group_loads():
    import click

    from cli.main import COMMANDS, group

    context = click.Context(group)
    assert group.list_commands(context) == sorted(COMMANDS)
    for name in COMMANDS:
        assert isinstance(group.get_command(context, name), click.Command), name
