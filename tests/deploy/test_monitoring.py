"""deploy/monitoring/: the Grafana dashboard and the Prometheus rules.

promtool checks and unit-tests the rules; the dashboard's PromQL is checked by
promtool too (as throw-away recording rules). Every metric name either side
uses must be one the services really export (the prometheus_client registry
once every service is imported, with the suffixes each type exposes), a
series the rules record, or a RabbitMQ series from the allow-list below.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from cli.mesh import SERVICE_NAMES
from shared.bus.topology import Topology

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "rules.yaml"
RULES_TEST = MONITORING / "rules.test.yaml"
DASHBOARD = MONITORING / "dashboard.json"
OPERATIONS = ROOT / "docs" / "operations.md"

# RabbitMQ's Prometheus plugin (>= 3.10), scraped at /metrics/detailed with
# family=queue_coarse_metrics and family=queue_consumer_count.
RABBITMQ: dict[str, frozenset[str]] = {
    name: frozenset({"queue", "vhost"})
    for name in (
        "rabbitmq_detailed_queue_messages",
        "rabbitmq_detailed_queue_messages_ready",
        "rabbitmq_detailed_queue_messages_unacked",
        "rabbitmq_detailed_queue_consumers",
    )
}
# Labels Prometheus adds to every scraped series (Prometheus Operator's
# ServiceMonitor: namespace, pod, service, container, endpoint).
TARGET_LABELS = frozenset(
    {"namespace", "pod", "job", "instance", "service", "container", "endpoint"}
)
SEVERITIES = frozenset({"critical", "warning", "info"})

# Grafana's variables, replaced by values PromQL accepts.
GRAFANA_VARS = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$namespace": "sendmesh",
    "$bus": "sendmesh",
    "$channel": "email",
}
AGGREGATIONS_AND_KEYWORDS = frozenset(
    {
        "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
        "bottomk", "topk", "quantile", "by", "without", "on", "ignoring", "group_left",
        "group_right", "bool", "offset", "and", "or", "unless", "atan2", "inf", "nan",
    }
)  # fmt: skip
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
MATCHERS = re.compile(r"\{[^{}]*\}")
RANGE = re.compile(r"\[[^\[\]]*\]")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
WORD = re.compile(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(\s*\()?")
SELECTOR = re.compile(r"(?<![\w:.])([a-zA-Z_:][\w:]*)\s*(\{[^{}]*\})")
MATCHER_LABEL = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
LABEL_VALUES = re.compile(r"^label_values\((.*),\s*([a-zA-Z_]\w*)\s*\)$")


# -- reading PromQL ---------------------------------------------------------


def without_grafana_vars(expr: str) -> str:
    for var, value in sorted(GRAFANA_VARS.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace("${" + var[1:] + "}", value).replace(var, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: no functions, keywords, labels, durations."""
    text = STRING.sub('""', without_grafana_vars(expr))
    text = MATCHERS.sub(" ", text)
    text = RANGE.sub(" ", text)
    text = GROUPING.sub(" ", text)
    names = set()
    for match in WORD.finditer(text):
        word, call = match.group(1), match.group(2)
        if not call and word.lower() not in AGGREGATIONS_AND_KEYWORDS:
            names.add(word)
    return names


def matcher_labels(expr: str) -> Iterator[tuple[str, str]]:
    """(metric, label) for every label matcher written on a metric."""
    text = STRING.sub('""', without_grafana_vars(expr))
    for match in SELECTOR.finditer(text):
        for label in MATCHER_LABEL.findall(match.group(2)):
            yield match.group(1), label


def grouping_labels(expr: str) -> set[str]:
    """Labels named in by/without/on/ignoring/group_left/group_right clauses."""
    text = STRING.sub('""', without_grafana_vars(expr))
    return {label.strip() for group in GROUPING.findall(text) for label in group.split(",")} - {""}


def test_metric_names_are_read_out_of_promql_without_labels_functions_keywords_or_durations():
    expr = (
        'histogram_quantile(0.99, sum by (le, channel) (rate(a_bucket{channel=~"$channel",'
        'le=~"1|1[.]0"}[$__rate_interval]))) / on (namespace) group_left '
        "sum without (pod) (b_total offset 15m) > 1e3 and c:d:rate5m or vector(0) * +Inf "
        'unless topk(10, e{x="sum(f)"}) > bool 2'
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c:d:rate5m", "e"}
    assert set(matcher_labels(expr)) == {("a_bucket", "channel"), ("a_bucket", "le"), ("e", "x")}
    assert grouping_labels(expr) == {"le", "channel", "namespace", "pod"}


# -- what the services export ---------------------------------------------------


SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
    "unknown": ("",),
}


@pytest.fixture(scope="module")
def exported() -> dict[str, frozenset[str]]:
    """Every series name the services' registry exposes -> its label names."""
    importlib.import_module("shared.metrics")
    for name in SERVICE_NAMES:
        importlib.import_module(f"services.{name}.__main__")
    labels_of = {
        name: frozenset(getattr(collector, "_labelnames", ()))
        for name, collector in REGISTRY._names_to_collectors.items()
    }
    series: dict[str, frozenset[str]] = {}
    for family in REGISTRY.collect():
        own = labels_of.get(family.name, frozenset())
        for suffix in SUFFIXES[family.type]:
            extra = {"le"} if suffix == "_bucket" else set()
            extra |= {"version", "service"} if family.type == "info" else set()
            series[family.name + suffix] = own | extra
    assert "sendmesh_deliveries_total" in series and "grpc_server_handled_total" in series
    return series


def recorded_labels(name: str) -> frozenset[str]:
    """level:metric:operations: the level lists the labels a recorded series keeps."""
    level = name.split(":", 1)[0]
    return frozenset(level.split("_"))


# -- the files ----------------------------------------------------------------


@pytest.fixture(scope="session")
def promtool() -> str:
    """promtool from PATH, .tools/bin/, or extracted by scripts/ensure-promtool.sh."""
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ensure-promtool.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"promtool is needed and missing:\n{result.stderr}", pytrace=False)
    return result.stdout.strip().splitlines()[-1]


def run_promtool(promtool: str, *args: str, cwd: Path = MONITORING) -> str:
    result = subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=300, check=False, cwd=cwd
    )
    said = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{said}"
    return said


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def alerts(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for rule in rules if "alert" in rule]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


@dataclass(frozen=True)
class Query:
    where: str
    expr: str


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # inside collapsed rows


def dashboard_queries(dashboard: dict[str, Any]) -> list[Query]:
    """Every panel target, and the selector inside every label_values() variable."""
    queries = [
        Query(f"panel {p['title']!r} target {t['refId']}", t["expr"])
        for p in panels(dashboard)
        for t in p.get("targets", [])
    ]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            match = LABEL_VALUES.match(var["definition"])
            assert match, f"variable {var['name']}: only label_values(selector, label) is used"
            queries.append(Query(f"variable {var['name']}", match.group(1)))
    return queries


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the Markdown headings of a page."""
    anchors = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


# -- the rules ------------------------------------------------------------------


def test_promtool_check_rules_accepts_the_rules(promtool: str):
    said = run_promtool(promtool, "check", "rules", str(RULES))
    assert "SUCCESS" in said and "WARNING" not in said.upper()


def test_promtool_unit_tests_of_the_rules_pass(promtool: str):
    said = run_promtool(promtool, "test", "rules", RULES_TEST.name)
    assert "SUCCESS" in said


def test_every_alert_has_a_unit_test_where_it_fires_and_one_where_it_does_not(
    alerts: list[dict[str, Any]],
):
    cases = [
        case
        for test in yaml.safe_load(RULES_TEST.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    for alert in alerts:
        name, severity = alert["alert"], alert["labels"]["severity"]
        mine = [c for c in cases if c["alertname"] == name]
        assert any(not c.get("exp_alerts") for c in mine), f"{name}: no case where it is quiet"
        fired = [a["exp_labels"] for c in mine for a in c.get("exp_alerts") or []]
        assert any(labels.get("severity") == severity for labels in fired), (
            f"{name} ({severity}): no case where it fires"
        )


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook_section(
    alerts: list[dict[str, Any]],
):
    anchors = heading_anchors(OPERATIONS.read_text())
    expected = {
        "DeadLettersGrowing", "QueueBacklogOld", "ConsumerMissing", "ChannelErrorRatioHigh",
        "LatencySLOBurnRate", "OutboxStuck", "SchedulerLate",
    }  # fmt: skip
    assert {a["alert"] for a in alerts} == expected
    for alert in alerts:
        name = alert["alert"]
        assert alert["labels"]["severity"] in SEVERITIES, name
        notes = alert["annotations"]
        assert notes["summary"] and notes["description"], name
        page, _, anchor = notes["runbook_url"].partition("#")
        assert page == "docs/operations.md", name
        assert anchor == name.lower() and anchor in anchors, f"{name}: no runbook section {anchor}"


def test_recorded_series_are_named_level_metric_operation_after_the_labels_they_keep(
    rules: list[dict[str, Any]],
):
    for rule in rules:
        if "record" not in rule:
            continue
        name = rule["record"]
        assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", name), name
        kept = recorded_labels(name)
        for label in grouping_labels(rule["expr"]):
            assert label in kept | {"le"}, f"{name} keeps {label}, its name says {sorted(kept)}"


def queue_patterns(text: str) -> set[str]:
    return set(re.findall(r'queue=~"([^"]+)"', text))


def test_the_work_queue_and_dead_letter_patterns_match_the_topology_exactly(
    dashboard: dict[str, Any],
):
    # The rules and the dashboard name queues by pattern; the topology names them by code.
    rule_patterns = queue_patterns(RULES.read_text())
    dash_patterns = {
        p.replace("$bus", "[a-z][a-z0-9_-]*") for p in queue_patterns(DASHBOARD.read_text())
    }
    work = [p for p in rule_patterns | dash_patterns if "plan|" in p]
    dead = [p for p in rule_patterns | dash_patterns if p.endswith("[.]dead")]
    assert work and dead
    for ns in ("sendmesh", "t0a1b2c3d4e", "prod-eu_1"):
        queues = Topology(ns).all_queues(SERVICE_NAMES)
        assert f"{ns}.send.email" in queues and f"{ns}.delay.0" in queues
        for queue in queues:
            is_dead = queue.endswith(".dead")
            is_work = not is_dead and not queue.startswith(f"{ns}.delay.")
            for pattern in work:
                assert bool(re.fullmatch(pattern, queue)) == is_work, (pattern, queue)
            for pattern in dead:
                assert bool(re.fullmatch(pattern, queue)) == is_dead, (pattern, queue)


# -- the dashboard ----------------------------------------------------------------


def test_the_dashboard_is_grafana_38_or_later_with_a_prometheus_datasource_variable(
    dashboard: dict[str, Any],
):
    assert dashboard["schemaVersion"] >= 38
    assert dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    source = variables["datasource"]
    assert (source["type"], source["query"]) == ("datasource", "prometheus")
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel.get("description"), panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    for var in variables.values():
        if var["type"] == "query":
            assert var["datasource"]["uid"] == "${datasource}", var["name"]


def test_dashboard_panels_fit_the_grid_without_overlapping(dashboard: dict[str, Any]):
    taken: dict[tuple[int, int], str] = {}
    for panel in panels(dashboard):
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


def test_every_dashboard_query_is_promql_promtool_accepts(
    dashboard: dict[str, Any], promtool: str, tmp_path: Path
):
    queries = dashboard_queries(dashboard)
    records = [
        {"record": f"dashboard:query:{i}", "expr": without_grafana_vars(q.expr)}
        for i, q in enumerate(queries)
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    said = run_promtool(promtool, "check", "rules", str(path), cwd=tmp_path)
    assert f"{len(records)} rules found" in said


def test_the_dashboard_shows_what_the_issue_asks_for(dashboard: dict[str, Any]):
    used = set().union(*(metric_names(q.expr) for q in dashboard_queries(dashboard)))
    wanted = {
        "grpc_server_handled_total",  # intake rate and errors
        "sendmesh_deliveries_total",  # per channel and outcome
        "sendmesh_delivery_latency_seconds_bucket",  # latency percentiles per channel
        "sendmesh_decisions_total",  # suppressions and caps
        "sendmesh_deferrals_total",
        "sendmesh_scheduler_deferred_deliveries",
        "sendmesh_scheduler_lag_seconds_bucket",
        "rabbitmq_detailed_queue_messages_ready",  # queue depth
        "rabbitmq_detailed_queue_consumers",  # consumers per queue
        "rabbitmq_detailed_queue_messages",  # dead-letter queues
        "sendmesh_consumer_messages_total",
        "sendmesh_outbox_backlog_messages",
        "sendmesh_provider_call_seconds_bucket",
        "sendmesh_provider_errors_total",
    }
    assert wanted <= used, f"not on the dashboard: {sorted(wanted - used)}"
    intake = [q.expr for q in dashboard_queries(dashboard) if "grpc_server_handled_total" in q.expr]
    assert all('grpc_service="sendmesh.intake.v1.Intake"' in expr for expr in intake)


def test_the_operations_doc_describes_every_dashboard_row(dashboard: dict[str, Any]):
    doc = OPERATIONS.read_text()
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows and all(f"| {title} |" in doc for title in rows), rows


# -- names on both sides ------------------------------------------------------------


def test_the_dashboard_and_the_rules_use_only_metrics_and_labels_that_exist(
    dashboard: dict[str, Any], rules: list[dict[str, Any]], exported: dict[str, frozenset[str]]
):
    recorded = {r["record"]: recorded_labels(r["record"]) for r in rules if "record" in r}
    known = {**exported, **RABBITMQ, **recorded}
    queries = dashboard_queries(dashboard) + [
        Query(f"rule {r.get('record') or r.get('alert')}", r["expr"]) for r in rules
    ]
    problems = []
    for q in queries:
        names = metric_names(q.expr)
        if not names:
            problems.append(f"{q.where}: selects no metric")
        for name in sorted(names - known.keys()):
            problems.append(f"{q.where}: {name} is not exported, recorded or allowed")
        for name, label in matcher_labels(q.expr):
            if name in known and label not in known[name] | TARGET_LABELS:
                problems.append(f"{q.where}: {name} has no label {label}")
        labels = set().union(*(known.get(n, frozenset()) for n in names)) | TARGET_LABELS
        for label in sorted(grouping_labels(q.expr) - labels - {"le"}):
            problems.append(f"{q.where}: no metric it uses has a label {label}")
    for var in dashboard["templating"]["list"]:
        match = LABEL_VALUES.match(var.get("definition", ""))
        if match:
            [name] = metric_names(match.group(1))
            if match.group(2) not in known[name] | TARGET_LABELS:
                problems.append(f"variable {var['name']}: {name} has no label {match.group(2)}")
    assert not problems, "\n".join(problems)
