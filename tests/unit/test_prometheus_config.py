"""deploy/prometheus and deploy/grafana: promtool checks and unit tests, metric names, datasources."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.prometheus

REPO = Path(__file__).resolve().parents[2]
PROM = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "cluebus-overview.json"
DATASOURCE_UID = "cluebus-prometheus"
ALERTS = {
    "CluebusAcknowledgementOverdue",
    "CluebusDeadLettersGrowing",
    "CluebusRulesReloadFailed",
    "CluebusConsumerLagHigh",
    "CluebusOutboxBacklog",
    "CluebusAdapterKafkaDown",
    "CluebusTargetDown",
    "CluebusConsumerGuardBusy",
    "CluebusReportsUnrouted",
    "CluebusInternalErrors",
    "CluebusReportsUntracked",
    "CluebusReconcilerStale",
}
METRIC = re.compile(r"cluebus_[a-z_]+")
SUFFIXES = ("_bucket", "_sum", "_count")


def promtool(*args: str) -> None:
    binary = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
    if binary is None:
        pytest.fail(
            "promtool is not installed: run scripts/setup.sh (installs the Debian prometheus package)", pytrace=False
        )
    result = subprocess.run([binary, *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    output = f"{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, f"promtool {' '.join(args)} exited {result.returncode}:\n{output}"


def test_promtool_checks_the_config():
    promtool("check", "config", "deploy/prometheus/prometheus.yml")


def test_promtool_checks_the_rules():
    promtool("check", "rules", "deploy/prometheus/alerts.yml")


def test_promtool_unit_tests_of_the_alerts_pass():
    promtool("test", "rules", "deploy/prometheus/tests/alerts_test.yml")


def test_every_alert_has_a_severity_and_label_only_annotations():
    groups = yaml.safe_load((PROM / "alerts.yml").read_text())["groups"]
    alerts = {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}
    assert set(alerts) == ALERTS
    records = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    assert "cluebus:ack_delay_seconds:p95" in records
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("page", "ticket"), name
        assert {"summary", "description"} <= set(rule["annotations"]), name
        for text in rule["annotations"].values():
            # Only label values and the alert value: no query results of other series.
            for expr in re.findall(r"{{(.*?)}}", text):
                assert re.fullmatch(r"\s*\$(labels\.[a-z_]+|value)\s*", expr), (name, expr)


def test_each_alert_is_exercised_by_the_promtool_tests():
    tests = yaml.safe_load((PROM / "tests" / "alerts_test.yml").read_text())["tests"]
    cases = [c for t in tests for c in t.get("alert_rule_test", [])]
    for alert in ALERTS:
        mine = [c for c in cases if c["alertname"] == alert]
        assert any(c["exp_alerts"] for c in mine), f"{alert}: no case where it fires"
        assert any(not c["exp_alerts"] for c in mine), f"{alert}: no case where it stays silent"
    exprs = [c["expr"] for t in tests for c in t.get("promql_expr_test", [])]
    assert "cluebus:ack_delay_seconds:p95" in exprs


def defined_metrics() -> set[str]:
    """Metric names in the services' source (``{PREFIX}_x`` read as ``cluebus_x``)."""
    names: set[str] = set()
    for path in (REPO / "services").rglob("*.py"):
        text = path.read_text().replace("{PREFIX}_", "cluebus_")
        names.update(METRIC.findall(text))
    return names


def referenced_metrics(text: str) -> set[str]:
    out = set()
    for name in METRIC.findall(text):
        for suffix in SUFFIXES:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        out.add(name)
    return out


@pytest.mark.parametrize("path", [PROM / "alerts.yml", DASHBOARD], ids=["alerts", "dashboard"])
def test_every_metric_referenced_is_defined_in_the_services(path: Path):
    defined = defined_metrics()
    referenced = referenced_metrics(path.read_text())
    assert referenced, f"no cluebus_ metric found in {path.name}"
    # Counters are declared without ``_total`` by some services (prometheus_client appends it).
    missing = sorted(n for n in referenced if n not in defined and n.removesuffix("_total") not in defined)
    assert not missing, f"{path.relative_to(REPO)} uses metrics no service defines: {missing}"


def test_the_metric_check_catches_a_renamed_metric():
    assert "cluebus_ack_delay_seconds" in defined_metrics()
    assert "cluebus_adapter_outbox_backlog" in defined_metrics()  # f"{PREFIX}_adapter_outbox_backlog"
    assert "cluebus_ack_delay_secs" not in defined_metrics()
    assert referenced_metrics("rate(cluebus_ack_delay_seconds_bucket[5m])") == {"cluebus_ack_delay_seconds"}


def iter_panels(panels: list[dict]):
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def test_the_dashboard_uses_the_provisioned_datasource():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "cluebus-overview"
    panels = list(iter_panels(dash["panels"]))
    assert len([p for p in panels if p["type"] != "row"]) >= 10
    expected = {"type": "prometheus", "uid": DATASOURCE_UID}
    for panel in panels:
        assert panel.get("datasource") == expected, panel["title"]
        for target in panel.get("targets", []):
            assert target.get("datasource") == expected, (panel["title"], target.get("refId"))
            assert target["expr"].strip(), panel["title"]
    for var in dash.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            assert var.get("datasource") == expected, var["name"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))


def test_grafana_provisioning_points_at_the_datasource_and_dashboards():
    grafana = REPO / "deploy" / "grafana"
    (ds,) = yaml.safe_load((grafana / "provisioning" / "datasources" / "cluebus.yml").read_text())["datasources"]
    assert ds["uid"] == DATASOURCE_UID and ds["type"] == "prometheus" and ds["url"] == "http://127.0.0.1:9090"
    (provider,) = yaml.safe_load((grafana / "provisioning" / "dashboards" / "cluebus.yml").read_text())["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].rstrip("/").endswith("deploy/grafana/dashboards")
