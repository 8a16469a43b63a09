"""A real Prometheus (Debian's package) scrapes a real daphne and a real Celery worker's metrics port, with the
shipped scrape configuration and alert rules; real conversations happen (an answer written by llama.cpp in the
worker, a handoff, a rating, a console opened), and the series are read back through Prometheus's HTTP API."""

import asyncio
import json
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from websockets.asyncio.client import connect

from chat.models import Message
from tests import stack
from tests.client import ask, conversation_open
from tests.test_metrics_config import ALERTS, PROMETHEUS_CONFIG, alert_rules, dashboard_queries

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TOKEN = "prometheus-test-token"
# Answered by the demo base's "Changing or canceling an order" (tests/test_end_to_end.py): the model writes it.
QUESTION = "Can I change the delivery address?"
STAGES = ("queue_wait", "retrieval", "prompt_build", "engine_first_token", "first_publish")


def prometheus_config(tmp_path, web: str, worker: str) -> str:
    """The shipped prometheus.yml with this machine's targets, a 1 s scrape, the token in a file; vLLM left out."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    jobs["helpdesk-web"]["static_configs"] = [{"targets": [web]}]
    del jobs["helpdesk-worker"]["dns_sd_configs"]
    jobs["helpdesk-worker"]["static_configs"] = [{"targets": [worker]}]
    config["scrape_configs"] = [jobs["helpdesk-web"], jobs["helpdesk-worker"]]  # no vLLM server here
    (tmp_path / "metrics_token").write_text(TOKEN)
    for job in config["scrape_configs"]:
        assert job["authorization"]["credentials_file"] == "/run/secrets/metrics_token"
        job["authorization"]["credentials_file"] = str(tmp_path / "metrics_token")
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.fixture(scope="module")
def monitored(production_env, logs_dir, tmp_path_factory):
    """Its own worker (its own queue, so its counts are this test's alone) and daphne, and Prometheus."""
    binary = shutil.which("prometheus")
    if binary is None:
        message = "prometheus is missing (Debian package prometheus: `make services` installs it)"
        if os.environ.get("HELPDESK_VLLM_PYTHON"):  # make test sets it, after `make services`: a failure there
            pytest.fail(message)
        pytest.skip(message)
    worker_port = stack.free_port()
    env = {
        **production_env,
        "CELERY_QUEUE": production_env["CELERY_QUEUE"] + "-metrics",
        "METRICS_TOKEN": TOKEN,
        "WORKER_METRICS_PORT": str(worker_port),
        "INFERENCE_INSTANCES": "1",
        "INFERENCE_THREADS": "2",  # this worker generates alone
        # Short answers and summaries: the point is that the model writes them, not how much.
        "INFERENCE_MAX_TOKENS": "24",
        "INFERENCE_MAX_TOKENS_LIMIT": "24",
    }
    with ThreadPoolExecutor(2) as pool:  # the two start at once
        starting_worker = pool.submit(stack.start_worker, env, logs_dir, name="celery-metrics")
        web, base_url = stack.start_web(env, logs_dir, name="daphne-metrics")
        worker = starting_worker.result()
    tmp_path = tmp_path_factory.mktemp("prometheus")
    port = stack.free_port()
    config = prometheus_config(tmp_path, base_url.removeprefix("http://"), f"127.0.0.1:{worker_port}")
    prometheus = stack.Process(
        "prometheus",
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        os.environ.copy(),
        logs_dir,
    )
    try:
        stack.wait_http(f"http://127.0.0.1:{port}/-/ready", timeout=30)
        yield base_url, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{worker_port}/metrics", worker
    finally:
        with ThreadPoolExecutor(3) as pool:
            for stopping in (pool.submit(prometheus.stop), pool.submit(web.stop), pool.submit(worker.stop, 30)):
                stopping.result()


def _get(url: str, token: str = "") -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def query(prometheus: str, expr: str) -> list[dict]:
    """The result of an instant query (a list of {metric, value}); fails on a query error."""
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, body = await asyncio.to_thread(_get, url)
    answer = json.loads(body)
    assert status == 200 and answer["status"] == "success", (expr, body)
    return answer["data"]["result"]


async def value(prometheus: str, expr: str) -> float | None:
    """The single value of `expr` (an aggregation), or None when it selects nothing."""
    result = await query(prometheus, expr)
    assert len(result) <= 1, (expr, result)
    return float(result[0]["value"][1]) if result else None


async def until(prometheus: str, expr: str, check, timeout: float = 30) -> float | None:
    """Poll `expr` until check(value) holds (scrapes and rule evaluations are every second)."""
    deadline = time.monotonic() + timeout
    while True:
        current = await value(prometheus, expr)
        if current is not None and check(current):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"{expr} is {current} after {timeout} s")
        await asyncio.sleep(0.5)


@database_sync_to_async
def agent_session_cookie() -> str:
    """A signed-in agent's session cookie (the same database and SECRET_KEY as the server's)."""
    user = get_user_model().objects.create_user("ann", first_name="Ann")
    user.user_permissions.add(Permission.objects.get(codename="use_console"))
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


async def frames_until(ws, kind: str, timeout: float = 30) -> list[dict]:
    frames = []
    while not frames or frames[-1]["type"] != kind:
        frames.append(json.loads(await ws.recv(timeout)))
    return frames


async def test_prometheus_receives_the_helpdesks_series_from_the_web_and_the_worker(monitored, site):
    base_url, prometheus, worker_metrics, worker = monitored
    ws_base = base_url.replace("http", "ws", 1)

    # Both targets are scraped with the token; without it, the worker's port (like /metrics) refuses.
    await until(prometheus, 'sum(up{job="helpdesk-web"})', lambda v: v == 1)
    await until(prometheus, 'sum(up{job="helpdesk-worker"})', lambda v: v == 1)
    for url in (worker_metrics, f"{base_url}/metrics"):
        assert _get(url)[0] == 403 and _get(url, "wrong")[0] == 403  # with a token set, even loopback needs it
        assert _get(url, TOKEN)[0] == 200
    # The database-derived gauges come from the web only: a worker's scrape never queries the database.
    assert await query(prometheus, 'helpdesk_conversations_waiting{job="helpdesk-worker"}') == []
    assert await value(prometheus, 'sum(helpdesk_conversations_waiting{job="helpdesk-web"})') == 0

    # 1. A question the model answers, in the worker.
    first = conversation_open(base_url, site.key, name="Ann", language="en")
    exchange = await ask(base_url, first, QUESTION)
    assert exchange.done["state"] == "complete", exchange.frames[-3:]
    reply = await database_sync_to_async(Message.objects.get)(conversation_id=first["id"], role=Message.Role.BOT)
    assert reply.engine == "llamacpp" and reply.completion_tokens > 0 and reply.ttft_ms > 0

    worker_reply = 'job="helpdesk-worker", engine="llamacpp", purpose="reply"'
    assert await until(prometheus, f"sum(helpdesk_time_to_first_token_seconds_count{{{worker_reply}}})", bool) == 1
    ttft_s = await value(prometheus, f"sum(helpdesk_time_to_first_token_seconds_sum{{{worker_reply}}})")
    assert ttft_s == pytest.approx(reply.ttft_ms / 1000, abs=0.002)  # the stored reply's own figure
    duration_s = await value(prometheus, f"sum(helpdesk_reply_duration_seconds_sum{{{worker_reply}}})")
    assert duration_s > ttft_s
    tokens = 'helpdesk_generated_tokens_total{job="helpdesk-worker", engine="llamacpp"}'
    assert await until(prometheus, f"sum({tokens})", bool) == reply.completion_tokens
    assert await value(prometheus, 'sum(helpdesk_generated_tokens_total{job="helpdesk-web"})') is None
    for stage in STAGES:
        selector = f'job="helpdesk-worker", purpose="reply", stage="{stage}"'
        assert await value(prometheus, f"sum(helpdesk_reply_stage_seconds_count{{{selector}}})") == 1, stage
        assert await value(prometheus, f"sum(helpdesk_reply_stage_seconds_sum{{{selector}}})") >= 0, stage
    assert await value(prometheus, 'sum(helpdesk_knowledge_retrievals_total{result="hit"})') == 1
    assert await value(prometheus, 'sum(helpdesk_generations_total{purpose="reply", outcome="answered"})') == 1

    # 2. A customer who stays connected asks for a person: the handoff is counted, the queue shows it.
    second = conversation_open(base_url, site.key, name="Bo", language="en")
    async with connect(ws_base + second["websocket"], origin=base_url, open_timeout=10) as customer:
        await customer.send(json.dumps({"type": "hello", "secret": second["secret"]}))
        await frames_until(customer, "ready")
        assert await until(prometheus, 'sum(helpdesk_websocket_connections{kind="customer"})', bool) == 1
        await customer.send(json.dumps({"type": "message", "content": "I want to talk to a human agent"}))
        frames = await frames_until(customer, "status")
        assert frames[-1]["status"] == "queued"
        assert await until(prometheus, 'sum(helpdesk_handoffs_total{reason="customer_request"})', bool) == 1
        assert await until(prometheus, 'max(helpdesk_conversations_waiting{job="helpdesk-web"})', bool) == 1
        assert await value(prometheus, "max(helpdesk_conversations_waiting_oldest_seconds)") > 0

        # 3. An agent opens the console: online, one console socket.
        cookie = await agent_session_cookie()
        async with connect(
            ws_base + "/ws/console/", origin=base_url, additional_headers={"Cookie": cookie}, open_timeout=10
        ) as console:
            await frames_until(console, "queue")
            assert await until(prometheus, 'sum(helpdesk_websocket_connections{kind="console"})', bool) == 1
            assert await until(prometheus, "max(helpdesk_agents_online)", bool) == 1

        # 4. The customer ends the chat and rates it.
        await customer.send(json.dumps({"type": "resolve"}))
        await customer.send(json.dumps({"type": "rate", "score": 5, "comment": "Thanks"}))
        await frames_until(customer, "rated")
        assert await until(prometheus, 'sum(helpdesk_ratings_total{score="5"})', bool) == 1

    # Everything closed: the gauges come back down, and nothing was counted twice.
    for gauge in (
        'sum(helpdesk_websocket_connections{kind="customer"})',
        'sum(helpdesk_websocket_connections{kind="console"})',
        "max(helpdesk_agents_online)",
        "max(helpdesk_conversations_waiting)",
    ):
        await until(prometheus, gauge, lambda v: v == 0)
    assert await value(prometheus, "sum(helpdesk_handoffs_total)") == 1
    assert await value(prometheus, "sum(helpdesk_ratings_total)") == 1
    # The handoff's summary, written by the model in the worker after its wait in the queue.
    await until(prometheus, 'sum(helpdesk_generations_total{job="helpdesk-worker", purpose="summary"})', bool)
    summary_wait = 'helpdesk_reply_stage_seconds_count{purpose="summary", stage="queue_wait"}'
    assert await value(prometheus, f"sum({summary_wait})") == 1
    await until(prometheus, "sum(helpdesk_active_streams)", lambda v: v == 0)

    # Every panel's query runs on real data; the answer's time to first token is on its panel.
    for _title, expr in dashboard_queries():
        await query(prometheus, expr.replace("$__rate_interval", "1m"))
    ttft_panel = next(expr for title, expr in dashboard_queries() if title.startswith("Time to first token"))
    result = await query(prometheus, ttft_panel.replace("$__rate_interval", "1m"))
    quantiles = {series["metric"]["engine"]: float(series["value"][1]) for series in result}
    assert quantiles["llamacpp"] > 0, quantiles  # its series existed at 0 before the answer, so rate() sees it
    # The alert rules load and evaluate without error.
    deadline = time.monotonic() + 15
    while True:
        _status, body = await asyncio.to_thread(_get, f"{prometheus}/api/v1/rules")
        rules = [rule for group in json.loads(body)["data"]["groups"] for rule in group["rules"]]
        if len(rules) == len(alert_rules()) and all(rule["health"] == "ok" for rule in rules):
            break
        assert time.monotonic() < deadline, rules
        await asyncio.sleep(0.5)
    assert "worker metrics on http://127.0.0.1:" in worker.output()
