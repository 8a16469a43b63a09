"""Readiness: whether this process can serve now, dependency by dependency, for load balancers and operators.

Each dependency the deployment has is checked at once, on a thread of its own, with a short deadline: a hung
database must not hang the probe. The answer says only "ok" or "down" per dependency; why it is down goes to the
log, never to the caller (the endpoint needs no credentials, and error text names hosts and users).

Required: the database, the channel layer and the Celery broker (a customer can neither be read, reached nor
answered without them). The engine is reported but not required: when it is down the fallback answers customers,
and taking every web process out of the load balancer would answer nobody.
"""

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable

import kombu
import redis
from django.conf import settings
from django.db import close_old_connections, connection

from inference.engines import engine_get, engine_is_remote

logger = logging.getLogger(__name__)

OK, DOWN = "ok", "down"
# Seconds each check may take; the probe answers within about this, whatever hangs.
CHECK_TIMEOUT_S = 2.0
# Probes within this many seconds share one round of checks, so a flood of probes is not a flood of connections.
RESULT_TTL_S = 1.0
OPTIONAL = frozenset({"engine"})

_executor = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="readiness")
_last: tuple[float, dict] | None = None
_last_lock = threading.Lock()


def _database() -> None:
    # As channels' database_sync_to_async does: this pool thread's connection follows CONN_MAX_AGE and the
    # health checks like a request's.
    close_old_connections()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        close_old_connections()


def _redis_ping(url: str) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT_S, socket_timeout=CHECK_TIMEOUT_S)
    try:
        if not client.ping():
            raise ConnectionError("no PONG")
    finally:
        client.close()


def _channel_layer_urls() -> list[str]:
    layer = settings.CHANNEL_LAYERS["default"]
    if "redis" not in layer["BACKEND"].lower():
        return []  # in memory: lives and dies with this process
    hosts = layer.get("CONFIG", {}).get("hosts", [])
    return [host["address"] if isinstance(host, dict) else host for host in hosts]


def _channel_layer() -> None:
    for url in _channel_layer_urls():
        _redis_ping(url)


def _broker() -> None:
    url = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://")):
        return _redis_ping(url)
    with kombu.Connection(url, connect_timeout=CHECK_TIMEOUT_S) as broker:  # other brokers: kombu's, tried once
        broker.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT_S)


def _engine() -> None:
    health = engine_get().health()
    if not health.ok:
        raise ConnectionError(health.detail)


def readiness_checks() -> dict[str, Callable[[], None]]:
    """The checks of this deployment's dependencies, by name; each raises when its dependency is down."""
    checks = {"database": _database}
    if _channel_layer_urls():
        checks["channel_layer"] = _channel_layer
    if settings.GENERATION_BACKEND == "celery":
        checks["broker"] = _broker
    if engine_is_remote():  # a local engine lives in the workers (or loads on first use): nothing cheap to ask
        checks["engine"] = _engine
    return checks


def _run(checks: dict[str, Callable[[], None]]) -> dict[str, str]:
    futures = {name: _executor.submit(check) for name, check in checks.items()}
    deadline = time.monotonic() + CHECK_TIMEOUT_S
    states = {}
    for name, future in futures.items():
        try:
            future.result(timeout=max(0.0, deadline - time.monotonic()))
            states[name] = OK
        except concurrent.futures.TimeoutError:
            logger.warning("readiness: %s did not answer within %g s", name, CHECK_TIMEOUT_S)
            states[name] = DOWN
        except Exception as exc:
            logger.warning("readiness: %s is down: %r", name, exc)
            states[name] = DOWN
    return states


def readiness() -> dict:
    """{"ready": bool, "checks": {name: "ok" | "down"}}; ready when every required dependency is ok."""
    global _last
    with _last_lock:
        if _last is not None and time.monotonic() - _last[0] < RESULT_TTL_S:
            return _last[1]
        states = _run(readiness_checks())
        result = {
            "ready": all(state == OK for name, state in states.items() if name not in OPTIONAL),
            "checks": states,
        }
        _last = (time.monotonic(), result)
        return result


def readiness_forget() -> None:
    """Drop the shared result (tests that change a dependency's state between two probes)."""
    global _last
    with _last_lock:
        _last = None
