"""A real Prometheus scrapes a real tracker: the ack-delay p95 query of the dashboard answers per department."""

from __future__ import annotations

import math

import pytest

from services.devprom import PrometheusServer

from ..support import free_port, many_reports, wait_until
from .test_tracker import ack_for, decisions, send_acks, send_reports, start

pytestmark = pytest.mark.prometheus

P95 = "histogram_quantile(0.95, sum by (department, le) (rate(cluebus_ack_delay_seconds_bucket[1m])))"
DEPARTMENTS = {"police", "education"}  # both receive the school report below


@pytest.fixture
def prometheus(request, tmp_path):
    """Start ``prometheus(config_text)``; every server started is stopped at the end."""
    started: list[PrometheusServer] = []

    def start_server(config: str) -> PrometheusServer:
        server = PrometheusServer(config, free_port(), tmp_path / f"prometheus-{len(started)}")
        started.append(server)
        return server.start()

    def stop_all() -> None:
        for server in started:
            server.stop()

    request.addfinalizer(stop_all)
    return start_server


def scrape_config(port: int) -> str:
    return (
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: cluebus-tracker\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )


def by_department(server: PrometheusServer, promql: str) -> dict[str, float]:
    return {r["metric"].get("department", ""): float(r["value"][1]) for r in server.query(promql)}


def test_prometheus_scrapes_the_tracker_and_answers_the_p95_query(
    kafka_bootstrap, bus, services, service_env, prometheus
):
    start(services, service_env, "router", "router")
    tracker = start(services, service_env, "tracker", "tracker")
    reports = many_reports(2, ("school-suspected_trafficking_child",) * 2)  # police lead, education too
    send_reports(kafka_bootstrap, bus, reports)
    routed = decisions(kafka_bootstrap, bus, 2)
    assert all(DEPARTMENTS <= {r.department for r in d.recipients} for d in routed)

    server = prometheus(scrape_config(tracker.port))
    wait_until(lambda: [r for r in server.query('up{job="cluebus-tracker"}') if r["value"][1] == "1"], 60)

    # A rate needs the counter to move between two scrapes: the histogram series appear
    # with the first acknowledgement, so acknowledge the second report once they are scraped.
    send_acks(kafka_bootstrap, bus, [ack_for(routed[0], d, "received") for d in sorted(DEPARTMENTS)])
    counts = "sum by (department) (cluebus_ack_delay_seconds_count)"
    wait_until(lambda: DEPARTMENTS <= {d for d, v in by_department(server, counts).items() if v >= 1}, 60)
    send_acks(kafka_bootstrap, bus, [ack_for(routed[1], d, "received") for d in sorted(DEPARTMENTS)])

    def p95_known() -> dict[str, float] | None:
        values = by_department(server, P95)
        if DEPARTMENTS <= {d for d, v in values.items() if math.isfinite(v) and v > 0}:
            return values
        return None

    values = wait_until(p95_known, 60, interval=0.5)
    for department in DEPARTMENTS:
        assert math.isfinite(values[department]) and values[department] > 0, (department, values)
    # Delays of seconds: the p95 lies in the histogram's first buckets, well under a minute.
    assert all(values[d] <= 60 for d in DEPARTMENTS), values
