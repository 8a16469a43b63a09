"""The shipped monitoring files (deploy/): every dashboard panel and alert rule names only series that the app, the
worker or vLLM exports; promtool accepts the rules and the scrape configuration, and the alerts fire when they
should; and docker-compose.yml, Prometheus and Grafana agree on ports, paths and the token.

The app's and the worker's names come from the real registry of this process, with every metrics module imported
(the web's collector too, as helpdesk.asgi registers it). vLLM's come from the vLLM installed in its virtualenv
(`make install-vllm`): its metric definitions are read from its source with Python's parser, which gives each
series its kind (a counter is exported with _total, a histogram with _bucket, _sum and _count). Building vLLM's
own stat logger would ask its code directly, but needs torch and a model configuration: 17 s instead of 1.
"""

import ast
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from tests import stack

ROOT = stack.ROOT
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "helpdesk.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
# Series Prometheus makes itself for every target.
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"}
# What the issue asks the dashboard to show of vLLM's.
VLLM_ANCHORS = {
    "vllm:time_to_first_token_seconds_bucket",
    "vllm:e2e_request_latency_seconds_bucket",
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:generation_tokens_total",
    "vllm:prompt_tokens_total",
}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}

# PromQL's own words: aggregations, functions and keywords (functions are also recognised by their parenthesis).
PROMQL_WORDS = {
    "sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group",
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "inf", "nan",
}  # fmt: skip


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (Grafana's $__ variables allowed)."""
    expr = re.sub(r"\$__\w+", "1m", expr)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values and other strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges and subqueries
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", expr)  # label lists
    expr = re.sub(r"\boffset\s+\w+", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][\w:]*", expr):
        rest = expr[match.end() :].lstrip()
        if match.group() not in PROMQL_WORDS and not rest.startswith("("):
            names.add(match.group())
    return names


def test_the_expression_reader_finds_metrics_and_skips_functions_labels_and_numbers():
    expr = (
        'histogram_quantile(0.99, sum by (le, model_name) (rate(vllm:time_to_first_token_seconds_bucket{a="b c"}'
        '[$__rate_interval]))) > 1e-3 and on() max(helpdesk_agents_online offset 5m) == 0 or up{job=~"x|y"}'
    )
    assert promql_metric_names(expr) == {
        "vllm:time_to_first_token_seconds_bucket",
        "helpdesk_agents_online",
        "up",
    }


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expression) of every query of every panel, rows included."""
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for top in dashboard["panels"] for p in [top, *top.get("panels", [])]]
    return [(p["title"], t["expr"]) for p in panels for t in p.get("targets", [])]


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


@pytest.fixture
def app_and_worker_names(db) -> set[str]:
    """Every series name this codebase's processes export: the web's and the workers' (one registry here)."""
    from django_prometheus.middleware import Metrics

    import helpdesk.asgi  # noqa: F401  (registers the web's database-derived gauges)
    from chat import metrics as chat_metrics  # noqa: F401
    from helpdesk import metrics as helpdesk_metrics  # noqa: F401

    Metrics.get_instance()  # django-prometheus's request series, made at the first request otherwise
    names = set()
    for family in REGISTRY.collect():  # the web's collector reads the (empty) test database
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def vllm_package() -> Path | None:
    python = stack.vllm_python()
    if python is None:
        message = "the vLLM virtualenv is missing: run `make install-vllm`"
        if os.environ.get("HELPDESK_VLLM_PYTHON"):  # make test sets it: there, a missing vLLM is a failure
            pytest.fail(message)
        pytest.skip(message)
    where = "import importlib.util; print(importlib.util.find_spec('vllm').submodule_search_locations[0])"
    return Path(subprocess.run([python, "-c", where], capture_output=True, text=True, check=True).stdout.strip())


def vllm_metric_names(package: Path) -> set[str]:
    """The series vLLM's source defines: calls of Gauge/Counter/Histogram (or its *_cls) with name="vllm:..."."""
    kinds = {"gauge": "gauge", "counter": "counter", "histogram": "histogram"}
    names = set()
    for path in package.rglob("*.py"):
        source = path.read_text(errors="replace")
        if '"vllm:' not in source:
            continue
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Call):
                continue
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            kind = kinds.get(func.lower().strip("_").removesuffix("_cls"))
            name = next((k.value for k in node.keywords if k.arg == "name"), None)
            if kind and isinstance(name, ast.Constant) and str(name.value).startswith("vllm:"):
                # As prometheus-client does: a counter named ..._total is exported once with the suffix.
                family = name.value.removesuffix("_total") if kind == "counter" else name.value
                names.update(family + suffix for suffix in SUFFIXES[kind])
    return names


@pytest.fixture(scope="module")
def vllm_names() -> set[str]:
    names = vllm_metric_names(vllm_package())
    assert VLLM_ANCHORS <= names, VLLM_ANCHORS - names  # the reader is right about vLLM's best-known series
    assert "vllm:num_requests_running_total" not in names  # and about their kinds (a gauge has no _total)
    assert "vllm:iteration_tokens_total_bucket" in names  # a histogram whose name ends in _total keeps it
    return names


def test_every_dashboard_query_and_alert_names_exported_series_only(app_and_worker_names, vllm_names):
    exported = app_and_worker_names | vllm_names | PROMETHEUS_OWN
    queries = [*dashboard_queries(), *((rule["alert"], rule["expr"]) for rule in alert_rules())]
    assert len(queries) > 30
    unknown = {}
    for title, expr in queries:
        names = promql_metric_names(expr)
        assert names, f"{title}: no metric in {expr!r}"
        if names - exported:
            unknown[title] = sorted(names - exported)
    assert unknown == {}


def test_the_dashboard_shows_vllm_beside_the_helpdesk_and_alerts_cover_both():
    used = set().union(*(promql_metric_names(expr) for _title, expr in dashboard_queries()))
    assert VLLM_ANCHORS <= used, VLLM_ANCHORS - used
    assert {
        "helpdesk_time_to_first_token_seconds_bucket",
        "helpdesk_reply_duration_seconds_bucket",
        "helpdesk_reply_stage_seconds_bucket",
        "helpdesk_handoffs_total",
        "helpdesk_ratings_total",
        "helpdesk_conversations_waiting",
        "helpdesk_websocket_connections",
    } <= used
    alerted = set().union(*(promql_metric_names(rule["expr"]) for rule in alert_rules()))
    assert {
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "helpdesk_conversations_waiting_oldest_seconds",
        "helpdesk_engine_failures_total",
        "helpdesk_agents_online",
        "helpdesk_sites_in_business_hours",
    } <= alerted


def test_compose_prometheus_and_grafana_agree_on_ports_paths_and_the_token():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"helpdesk-web", "helpdesk-worker", "vllm"}

    # The token: from .env to every app service, and to Prometheus as the secret file it sends.
    for name in ("web", "worker"):
        assert services[name]["environment"]["METRICS_TOKEN"].startswith("${METRICS_TOKEN:?")
    assert compose["secrets"]["metrics_token"] == {"environment": "METRICS_TOKEN"}
    assert "metrics_token" in services["prometheus"]["secrets"]
    for job in ("helpdesk-web", "helpdesk-worker"):
        assert jobs[job]["authorization"] == {"type": "Bearer", "credentials_file": "/run/secrets/metrics_token"}

    # Where each job looks: daphne's port, the workers' metrics port (every replica, by DNS), vLLM's server.
    web_port = services["web"]["command"][services["web"]["command"].index("-p") + 1]
    assert jobs["helpdesk-web"]["static_configs"][0]["targets"] == [f"web:{web_port}"]
    assert services["web"]["environment"]["ALLOWED_HOSTS"].endswith(",web")  # Django answers that Host
    worker_env = services["worker"]["environment"]
    assert worker_env["WORKER_METRICS_ADDR"] == "0.0.0.0"
    (dns,) = jobs["helpdesk-worker"]["dns_sd_configs"]
    assert dns["names"] == ["worker"] and dns["port"] == int(worker_env["WORKER_METRICS_PORT"])
    vllm_port = next(a.split("=")[1] for a in services["vllm"]["command"] if a.startswith("--port="))
    assert jobs["vllm"]["static_configs"][0]["targets"] == [f"vllm:{vllm_port}"]

    # Prometheus reads this folder; Grafana its provisioning and the dashboard folder the provider names.
    assert "./deploy/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    assert all((PROMETHEUS_CONFIG.parent / rules).is_file() for rules in config["rule_files"])
    grafana = services["grafana"]
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/helpdesk.yml").read_text())["providers"][0]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in grafana["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    (source,) = datasource["datasources"]
    assert source["url"] == "http://prometheus:9090"
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert {p["datasource"]["uid"] for p in panels} == {source["uid"]}
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is missing (Debian package prometheus: `make services` installs it)")
    return path


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_rules_and_the_configuration(tmp_path):
    tool = promtool()
    checked = run(tool, "check", "rules", str(ALERTS))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in checked.stdout
    # Full check (files included) on a copy whose token file exists, as compose's secret does in the container.
    for path in PROMETHEUS_CONFIG.parent.iterdir():
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "metrics_token").write_text("s3cret")
    config = (tmp_path / "prometheus.yml").read_text().replace("/run/secrets/metrics_token", "metrics_token")
    (tmp_path / "prometheus.yml").write_text(config)
    checked = run(tool, "check", "config", str(tmp_path / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_helpdesk_alerts_fire_when_they_should(tmp_path):
    """promtool's rule unit tests: series in, alerts out (with their texts rendered), minute by minute."""
    tool = promtool()
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    descriptions = {rule["alert"]: rule["annotations"]["description"] for rule in alert_rules()}

    def firing(alert: str, summary: str) -> list[dict]:
        annotations = {"summary": summary, "description": descriptions[alert]}
        return [{"exp_labels": {"severity": "warning"}, "exp_annotations": annotations}]

    def at(minute: int, alert: str, alerts: list[dict]) -> dict:
        return {"eval_time": f"{minute}m", "alertname": alert, "exp_alerts": alerts}

    nobody, waiting, failures, drops = (
        "HelpdeskNoAgentOnlineInBusinessHours",
        "HelpdeskConversationsWaitingTooLong",
        "HelpdeskEngineFailures",
        "HelpdeskChannelLayerDropping",
    )
    unit = {
        "rule_files": ["alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # Two web processes report the same state: max(), not sum().
                    *(
                        {"series": f'helpdesk_sites_in_business_hours{{instance="{web}"}}', "values": "1x40"}
                        for web in ("web1", "web2")
                    ),
                    # Nobody online for 20 minutes, then an agent opens the console.
                    *(
                        {"series": f'helpdesk_agents_online{{instance="{web}"}}', "values": "0x20 1x20"}
                        for web in ("web1", "web2")
                    ),
                    # A conversation waits longer and longer: 60 s more every minute.
                    {"series": 'helpdesk_conversations_waiting_oldest_seconds{instance="web1"}', "values": "0+60x20"},
                    # Three failures within five minutes, all answered by a rule.
                    {
                        "series": 'helpdesk_engine_failures_total{answered_by="rule", instance="worker1"}',
                        "values": "0 0 1 2 3 3 3",
                    },
                    # A web process's inbox overflows once, at the 3rd minute: 4 messages dropped.
                    {"series": 'helpdesk_channel_layer_dropped_total{instance="web1"}', "values": "0 0 0 4x10"},
                ],
                "alert_rule_test": [
                    at(10, nobody, []),  # pending: not yet 15 minutes
                    at(16, nobody, firing(nobody, "No agent is online while a site is in its business hours")),
                    at(30, nobody, []),
                    at(12, waiting, []),  # over 10 minutes since the 11th, pending for 5
                    at(16, waiting, firing(waiting, "A customer has waited 16m 0s for an agent")),
                    at(3, failures, []),
                    at(5, failures, firing(failures, "The engine failed 3 times in 10 minutes")),
                    at(5, "HelpdeskRepliesFailed", []),  # every failure was answered
                    at(2, drops, []),
                    at(4, drops, firing(drops, "The channel layer dropped 4 messages in 5 minutes")),
                    at(10, drops, []),  # no drop for 5 minutes
                ],
            }
        ],
    }
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(unit))
    tested = run(tool, "test", "rules", str(tmp_path / "alerts_test.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
