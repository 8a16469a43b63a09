"""The production configuration: `check --deploy`, docker-compose.yml and .env.example agree with the code."""

import importlib
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.utils.module_loading import import_string

from inference.engines import ENGINE_ALIASES
from tests.stack import process_env

ROOT = Path(settings.BASE_DIR)
SETTINGS_SOURCE = (ROOT / "helpdesk" / "settings.py").read_text()
# Every variable the settings read: env.str("NAME", ...), env.db("NAME"), ...
SETTINGS_VARIABLES = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]*)"', SETTINGS_SOURCE))
APP_SERVICES = ("web", "worker", "migrate")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def check_deploy(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def test_production_settings_pass_check_deploy():
    env = process_env(
        DJANGO_DEBUG="0",
        DJANGO_HTTPS="1",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="help.example.com",
        DATABASE_URL="postgres://helpdesk@127.0.0.1:5432/helpdesk",
        REDIS_URL="redis://127.0.0.1:6379/0",
    )
    result = check_deploy(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_plain_http_settings_are_flagged_by_check_deploy():
    """The check is real: without DJANGO_HTTPS it reports the missing HTTPS protections."""
    env = process_env(DJANGO_HTTPS="0", SECRET_KEY=secrets.token_urlsafe(64), DJANGO_DEBUG="0")
    result = check_deploy(env)
    assert result.returncode != 0 and "security.W008" in result.stderr + result.stdout


def test_compose_has_every_production_service_with_healthchecks(compose):
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker", "vllm", "migrate"} <= set(services)
    for name in ("postgres", "redis", "web", "worker", "vllm"):
        assert services[name]["healthcheck"]["test"], name
    assert {"pgdata", "redisdata", "models"} <= set(compose["volumes"])


def test_compose_app_commands_refer_to_real_modules(compose):
    web = compose["services"]["web"]["command"]
    # daphne, through helpdesk.server: the same server with the project's idle, handshake and ping timeouts.
    assert web[:3] == ["python", "-m", "helpdesk.server"] and callable(importlib.import_module("helpdesk.server").main)
    module, attribute = web[-1].split(":")
    assert callable(getattr(importlib.import_module(module), attribute))

    worker = compose["services"]["worker"]["command"]
    assert worker[:3] == ["celery", "-A", "helpdesk"] and worker[worker.index("-P") + 1] == "threads"
    assert importlib.import_module("helpdesk").celery_app.main == "helpdesk"

    migrate = compose["services"]["migrate"]["command"]
    assert migrate[:3] == ["python", "manage.py", "migrate"] and (ROOT / "manage.py").is_file()


def test_compose_environment_uses_only_real_settings(compose):
    for name in APP_SERVICES:
        environment = compose["services"][name]["environment"]
        unknown = set(environment) - SETTINGS_VARIABLES
        assert not unknown, f"{name} sets variables the settings never read: {unknown}"
        # Secrets have no defaults in production: compose refuses to start without them.
        assert environment["SECRET_KEY"].startswith("${SECRET_KEY:?")
        assert environment["DJANGO_HTTPS"] == "1"
    default_engine = re.search(
        r"INFERENCE_ENGINE:-(\w+)", compose["services"]["worker"]["environment"]["INFERENCE_ENGINE"]
    )
    assert import_string(ENGINE_ALIASES[default_engine.group(1)])


def test_compose_vllm_serves_qwen3_from_local_weights(compose):
    vllm = compose["services"]["vllm"]
    flags = dict(([*arg.lstrip("-").split("=", 1), "true"])[:2] for arg in vllm["command"])
    assert flags["served-model-name"] == "Qwen/Qwen3-4B-Instruct-2507"
    assert flags["model"].startswith("/models/")  # never a hub download at run time
    assert vllm["environment"]["HF_HUB_OFFLINE"] == "1"
    assert int(flags["max-model-len"]) <= 262144 and 0 < float(flags["gpu-memory-utilization"]) < 1
    assert vllm["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


def test_env_example_documents_every_setting():
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))
    missing = SETTINGS_VARIABLES - documented
    assert not missing, f".env.example does not document: {sorted(missing)}"
    assert not documented - SETTINGS_VARIABLES - {"POSTGRES_PASSWORD", "VLLM_API_KEY", "GRAFANA_ADMIN_PASSWORD"}


def test_compose_workers_reach_the_vllm_service(compose):
    worker = compose["services"]["worker"]
    vllm = compose["services"]["vllm"]
    flags = dict([*arg.lstrip("-").split("=", 1), "true"][:2] for arg in vllm["command"])
    environment = worker["environment"]
    assert environment["INFERENCE_BASE_URL"].endswith(f"http://vllm:{flags['port']}/v1}}")
    assert flags["served-model-name"] in environment["INFERENCE_SERVED_MODEL_NAME"]
    assert environment["INFERENCE_API_KEY"].startswith("${VLLM_API_KEY:?")  # the key the server requires
    assert worker["depends_on"]["vllm"]["condition"] == "service_healthy"


def test_compose_trusts_forwarded_headers_only_from_configured_proxies(compose):
    """daphne's --proxy-headers believed X-Forwarded-For from any client of the published port: per-IP limits were
    bypassed and /metrics' loopback trust opened. The app decides instead, from TRUSTED_PROXIES."""
    web = compose["services"]["web"]
    assert not any("proxy-headers" in arg for arg in web["command"])
    for name in APP_SERVICES:
        environment = compose["services"][name]["environment"]
        assert "TRUSTED_PROXIES" in environment and "NUM_PROXIES" not in environment
        assert environment["METRICS_TOKEN"].startswith("${METRICS_TOKEN:?")  # never an open /metrics
    # Published on the host's loopback unless the operator says otherwise: the TLS proxy is the way in.
    assert web["ports"] == ["${WEB_BIND:-127.0.0.1}:8000:8000"]
