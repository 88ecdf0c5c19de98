"""The processes that only enqueue messages or read dead letters (the API, the
scheduler, the command line) must not drag in the steps and every provider SDK with
the broker: the broker's middleware reads step outcomes from ``pipelines.outcome``."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Modules a client of the broker has no use for.
HEAVY = ("pipelines.actors", "pipelines.payment", "pipelines.shipping", "pipelines.notify",
         "sendgrid", "integrations.stripe_gateway", "integrations.easypost_gateway")  # fmt: skip


@pytest.mark.parametrize("module", ["api.app", "api.admin", "workers.scheduler", "workers.broker",
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
