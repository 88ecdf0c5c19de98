"""The monitoring files read as a whole: promtool accepts the configs and rules and their
unit tests pass; every alert is complete and has a runbook; every dashboard query reads
metrics the code defines; compose, Grafana provisioning and the scrape configs agree."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram

from fulfillment.settings import Settings
from monitoring import metrics
from pipelines.common import MILESTONES
from tests.support.prometheus import (
    DASHBOARDS_DIR,
    PROMETHEUS_DIR,
    ROOT,
    alert_rules,
    dashboard_queries,
    metric_names,
)
from workers.middleware.step_metrics import LEVELS

RUNBOOKS = ROOT / "docs" / "runbooks.md"
GRAFANA = ROOT / "monitoring" / "grafana"
#: The commands a runbook section may send the reader to.
COMMANDS = ("fulfillment orders show", "fulfillment dlq list", "fulfillment verify")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is not on PATH: make test installs it (tools/install-tools test)"
    return subprocess.run(
        [binary, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=120
    )


def exported_names() -> set[str]:
    """Every sample name monitoring/metrics.py's collectors export."""
    names = set()
    for collector in vars(metrics).values():
        if isinstance(collector, Counter):
            names.add(f"{collector._name}_total")
        elif isinstance(collector, Histogram):
            names.update(f"{collector._name}_{suffix}" for suffix in ("bucket", "sum", "count"))
        elif isinstance(collector, Gauge):
            names.add(collector._name)
    return names


def runbook_sections() -> dict[str, str]:
    text = RUNBOOKS.read_text()
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def dashboards() -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in DASHBOARDS_DIR.glob("*.json")}


def panel_titles() -> dict[str, set[str]]:
    """{dashboard title without the "Fulfillment / " prefix: its panel titles}"""
    return {
        board["title"].removeprefix("Fulfillment / "): {
            panel["title"] for panel in board["panels"] if panel["type"] != "row"
        }
        for board in dashboards().values()
    }


# --- Prometheus -----------------------------------------------------------------------


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus.local.yml"])
def test_promtool_accepts_the_scrape_configs(config):
    result = promtool("check", "config", config)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_rules_and_their_unit_tests_pass():
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "alerts.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_is_complete_and_has_a_runbook_section():
    sections = runbook_sections()
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        assert annotations["runbook_url"] == f"docs/runbooks.md#{name.lower()}", name
        assert name in sections, f"docs/runbooks.md has no section '## {name}'"


def test_every_runbook_section_names_a_real_panel_and_a_command():
    panels = panel_titles()
    alerts = {rule["alert"] for rule in alert_rules()}
    for name, body in runbook_sections().items():
        if name not in alerts:
            continue
        assert all(part in body for part in ("**Means**", "**Look**", "**Fix**")), name
        lines = re.findall(r"Dashboard: (.+(?:\n  .+)*)", body)
        text = " ".join(" ".join(line.split()) for line in lines)
        references = list(re.finditer(r"(Overview|Pipeline|Integrations|API) → ", text))
        assert references, f"{name}: no 'Dashboard: Board → Panel' line"
        for ref in references:
            rest = text[ref.end() :]
            assert any(rest.startswith(title) for title in panels[ref.group(1)]), (
                f"{name}: no panel on {ref.group(1)} starts {rest[:40]!r}"
            )
        assert any(command in body for command in COMMANDS), name


def test_every_alert_has_a_firing_and_a_quiet_test_case():
    cases = yaml.safe_load((PROMETHEUS_DIR / "alerts.test.yml").read_text())["tests"]
    firing, quiet = set(), set()
    for case in cases:
        for check in case["alert_rule_test"]:
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - firing == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown quiet"


def test_alert_expressions_read_only_metrics_we_export():
    known = exported_names() | {"up"}
    for rule in alert_rules():
        assert metric_names(rule["expr"]) <= known, rule["alert"]


def test_the_local_config_scrapes_the_default_ports_and_compose_the_services():
    defaults = Settings()
    local = yaml.safe_load((PROMETHEUS_DIR / "prometheus.local.yml").read_text())
    compose = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())

    def targets(config):
        return {
            job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
        }

    assert targets(local) == {
        "fulfillment-api": [f"127.0.0.1:{defaults.api_metrics_port}"],
        "fulfillment-worker": [f"127.0.0.1:{defaults.worker_metrics_port}"],
        "fulfillment-scheduler": [f"127.0.0.1:{defaults.scheduler_metrics_port}"],
        "prometheus": ["127.0.0.1:9090"],
    }
    assert targets(compose) == {
        "fulfillment-api": [f"api:{defaults.api_metrics_port}"],
        "fulfillment-worker": [f"worker:{defaults.worker_metrics_port}"],
        "fulfillment-scheduler": [f"scheduler:{defaults.scheduler_metrics_port}"],
        "prometheus": ["localhost:9090"],
    }


# --- Grafana --------------------------------------------------------------------------


def test_dashboards_cover_what_on_call_needs():
    panels = panel_titles()
    assert set(panels) == {"Overview", "Pipeline", "Integrations", "API"}
    assert {"Orders per minute by outcome", "Orders in each state", "Dead letters by queue",
            "Lead time to paid / shipped / delivered (p50, p95)", "Firing alerts"} <= panels["Overview"]  # fmt: skip
    assert {"Step throughput", "Step p95 duration", "Retries by step",
            "Failures and dead letters by step", "Queue depth (ready and delayed)"} <= panels["Pipeline"]  # fmt: skip
    assert {"Provider error rate", "Provider latency (p50, p95)", "Webhooks by outcome"} <= panels[
        "Integrations"
    ]
    assert {"Requests by route", "Errors by route", "p95 latency by route"} <= panels["API"]


def test_dashboards_are_well_formed_and_use_the_provisioned_datasource():
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    uid = datasources["datasources"][0]["uid"]
    uids = [board["uid"] for board in dashboards().values()]
    assert len(set(uids)) == len(uids)
    for name, board in dashboards().items():
        ids = [panel["id"] for panel in board["panels"]]
        assert len(set(ids)) == len(ids), name
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == uid, (name, panel["title"])
            assert panel["targets"], (name, panel["title"])
            refs = [target["refId"] for target in panel["targets"]]
            assert len(set(refs)) == len(refs), (name, panel["title"])


def test_dashboard_queries_read_only_metrics_we_export_or_dramatiq_does():
    known = exported_names() | {"ALERTS", "up"}
    for query in dashboard_queries():
        unknown = {
            name for name in metric_names(query.expr) - known if not name.startswith("dramatiq_")
        }
        assert not unknown, f"{query}: {unknown}"


def test_every_metric_we_export_is_on_a_dashboard():
    shown = set().union(*(metric_names(query.expr) for query in dashboard_queries()))
    for collector in vars(metrics).values():
        if isinstance(collector, Counter | Gauge | Histogram):
            assert any(name.startswith(collector._name) for name in shown), collector._name


def test_compose_runs_prometheus_and_grafana_with_the_files_mounted():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("worker", "scheduler", "prometheus", "grafana"):
        assert "healthcheck" in services[name], name
    assert "./monitoring/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    grafana = services["grafana"]["volumes"]
    assert "./monitoring/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/fulfillment.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert f"./monitoring/grafana/dashboards:{path}:ro" in grafana
    for name in ("api", "worker", "scheduler"):  # metrics servers must listen beyond loopback
        assert services[name]["environment"]["API_HOST"] == "0.0.0.0", name
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_make_test_installs_the_programs_the_tests_call_and_ci_runs_that_same_step():
    makefile = (ROOT / "Makefile").read_text()
    script = (ROOT / ".ci" / "run").read_text()
    installer = (ROOT / "tools" / "install-tools").read_text()
    # make test depends on the step that installs prometheus and promtool
    assert re.search(r"^test: .*\btest-tools\b", makefile, re.M)
    assert re.search(r"^test-tools:\n\ttools/install-tools test$", makefile, re.M)
    assert "prometheus" in installer and "promtool" in installer
    # and CI has no copy of that step of its own: it calls make test, the whole of it,
    # first with nothing configured (the new user's path)
    assert "apt-get" not in script and "promtool" not in script
    assert re.search(r"^env -u DATABASE_URL -u REDIS_URL make test$", script, re.M)


def test_the_tool_installer_stops_at_once_with_one_line_where_it_cannot_install(tmp_path):
    # Given a PATH with bash but neither promtool nor apt-get
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "id", "env"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    # When the installer runs
    done = subprocess.run([str(bin_dir / "bash"), str(ROOT / "tools" / "install-tools"), "test"],
                          env={"PATH": str(bin_dir)}, capture_output=True, text=True, timeout=30)  # fmt: skip
    # Then it fails with one line that says what to install
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert "prometheus" in done.stderr and "apt-get install prometheus" in done.stderr


def test_the_label_values_created_in_advance_are_the_ones_used():
    assert set(MILESTONES.values()) == set(metrics.MILESTONES)
    assert set(LEVELS) == set(metrics.STEP_OUTCOMES)
