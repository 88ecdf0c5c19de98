"""A real Prometheus (the Debian ``prometheus`` binary) for tests, and the queries the
monitoring files hold: every Grafana panel target and every alert expression.

The server is configured from ``monitoring/prometheus/prometheus.local.yml`` with the
targets moved to a test system's ports, scrape and evaluation at 1 s, and the alert
rules of ``alerts.yml`` with their ``for`` durations capped so a short test can see
them fire (their expressions are untouched). It listens on loopback only.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from fulfillment.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "monitoring" / "prometheus"
DASHBOARDS_DIR = ROOT / "monitoring" / "grafana" / "dashboards"

#: What Grafana puts in place of its variables when it runs a panel's query, for
#: Prometheus scraping every second.
GRAFANA_VARIABLES = {"$__rate_interval": "20s", "$__interval": "2s", "$__range": "5m"}


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref: str
    expr: str

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref}: {self.expr}"


def dashboard_queries() -> list[PanelQuery]:
    queries = []
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in _panels(board["panels"]):
            for target in panel.get("targets", []):
                queries.append(
                    PanelQuery(path.stem, panel["title"], target["refId"], target["expr"])
                )
    return queries


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def grafana_expr(expr: str) -> str:
    """The query as Grafana sends it: its variables replaced."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        raise AssertionError(
            "the prometheus binary is not on PATH: make test installs it (tools/install-tools test)"
        )
    return binary


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def api(self, path: str, **params: Any) -> Any:
        response = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        body = response.json()
        if body.get("status") != "success":
            raise PromQLError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("query", query=expr)["result"]

    def query_range(self, expr: str, *, start: float, end: float, step: float = 2) -> list[dict]:
        return self.api("query_range", query=expr, start=start, end=end, step=step)["result"]

    def targets(self) -> list[dict[str, Any]]:
        return self.api("targets")["activeTargets"]

    def rules(self) -> list[dict[str, Any]]:
        return [rule for group in self.api("rules")["groups"] for rule in group["rules"]]

    def firing(self) -> set[tuple[str, str]]:
        """(alert name, the label that tells its instances apart) of firing alerts."""
        return {
            (alert["labels"]["alertname"], _subject(alert["labels"]))
            for alert in self.api("alerts")["alerts"]
            if alert["state"] == "firing"
        }


class PromQLError(AssertionError):
    pass


def _subject(labels: dict[str, str]) -> str:
    for key in ("queue", "provider", "step", "state", "route", "job"):
        if key in labels:
            return labels[key]
    return ""


def has_values(result: list[dict[str, Any]]) -> bool:
    """True when a query result holds at least one real number (NaN is a gap)."""
    for series in result:
        samples = series.get("values") or ([series["value"]] if "value" in series else [])
        if any(math.isfinite(float(value)) for _, value in samples):
            return True
    return False


def rules_for_tests(workdir: Path, *, max_for: str) -> Path:
    """alerts.yml with every ``for`` capped at ``max_for``; the expressions unchanged."""
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = max_for
    path = workdir / "alerts.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


def config_for_tests(workdir: Path, targets: dict[str, str], *, port: int) -> Path:
    """prometheus.local.yml, scraping ``targets`` ({job: host:port}) every second."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.local.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s", scrape_timeout="1s")
    config["rule_files"] = [str(rules_for_tests(workdir, max_for="3s"))]
    for job in config["scrape_configs"]:
        name = job["job_name"]
        address = f"127.0.0.1:{port}" if name == "prometheus" else targets[name]
        job["static_configs"] = [{"targets": [address]}]
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@contextmanager
def running_prometheus(workdir: Path, targets: dict[str, str]) -> Iterator[Prometheus]:
    """A Prometheus scraping ``targets``; stopped (and its data removed) at the end."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = config_for_tests(workdir, targets, port=port)
    check = subprocess.run(
        [shutil.which("promtool") or "promtool", "check", "config", str(config)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [prometheus_binary(), f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
         f"--storage.tsdb.path={workdir / 'data'}", "--storage.tsdb.retention.time=1h"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    server = Prometheus(f"http://127.0.0.1:{port}")
    try:
        _wait_ready(server, process, workdir / "prometheus.log")
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(workdir / "data", ignore_errors=True)


def _wait_ready(server: Prometheus, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"prometheus exited with {process.returncode}:\n{log.read_text()}")
        try:
            if requests.get(f"{server.url}/-/ready", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"prometheus never became ready:\n{log.read_text()[-3000:]}")


#: Words in PromQL that are not metric names.
_KEYWORDS = frozenset({"and", "or", "unless", "by", "without", "on", "ignoring", "bool",
                       "offset", "group_left", "group_right", "inf", "nan"})  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (good enough for our queries)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # range selectors
    expr = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", " ", expr)  # groupings
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        following = expr[match.end() :].lstrip()
        if following.startswith("(") or match.group().lower() in _KEYWORDS:
            continue
        names.add(match.group())
    return names
