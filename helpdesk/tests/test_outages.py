"""Backends down, seen from the outside: liveness and readiness, 503s instead of 500s, sockets told to retry.

In-process, with the outage simulated at the boundary (a cursor or a client that raises); tests/test_faults.py
stops the real PostgreSQL, Redis and engine server under the production shape.
"""

import time

import pytest
import redis.exceptions
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import OperationalError, connection
from django.test import Client, RequestFactory

from chat.api.keys import api_key_create
from helpdesk import health, views
from helpdesk.asgi import application

pytestmark = pytest.mark.django_db

# What a driver's error says: hosts, users, paths. None of it may reach a client.
SECRET_DETAIL = "connection to server at 10.9.8.7, port 5432 failed: FATAL: password authentication failed for user"


@pytest.fixture(autouse=True)
def fresh_readiness():
    health.readiness_forget()
    yield
    health.readiness_forget()


@pytest.fixture
def database_down(monkeypatch):
    """Every query of this thread's connection fails as when PostgreSQL is stopped."""

    def refused(*args, **kwargs):
        raise OperationalError(SECRET_DETAIL)

    monkeypatch.setattr(connection, "cursor", refused)


def _down(*args, **kwargs):
    raise OperationalError(SECRET_DETAIL)


def test_healthz_is_liveness_only_and_answers_while_the_database_is_down(client, database_down):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"ok": True}


def test_readyz_lists_each_dependency_of_the_production_shape(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {"ready": True, "checks": {"database": "ok", "channel_layer": "ok", "broker": "ok"}}
    assert response["Cache-Control"] == "no-store"


def test_readyz_says_which_dependency_is_down_without_its_error_text(client, monkeypatch):
    monkeypatch.setattr(health, "_database", _down)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"ready": False, "checks": {"database": "down", "channel_layer": "ok", "broker": "ok"}}
    assert b"10.9.8.7" not in response.content and b"password" not in response.content


def test_readyz_reports_a_dead_redis_for_the_channel_layer_and_the_broker(client, settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:9/0"]}}
    }
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"  # nothing listens on the discard port
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "channel_layer": "down", "broker": "down"}


def test_readyz_answers_within_its_deadline_when_a_dependency_hangs(client, monkeypatch):
    monkeypatch.setattr(health, "_channel_layer", lambda: time.sleep(health.CHECK_TIMEOUT_S + 3))
    started = time.monotonic()
    response = client.get("/readyz")
    assert time.monotonic() - started < health.CHECK_TIMEOUT_S + 1
    assert response.status_code == 503 and response.json()["checks"]["channel_layer"] == "down"


def test_readyz_reports_a_remote_engine_that_is_down_but_stays_ready(client, settings):
    """The fallback answers while the engine is down: the web process still serves, so it stays in rotation."""
    from inference.engines import engine_reset

    settings.INFERENCE_ENGINE = "openai"
    settings.INFERENCE_BASE_URL = "http://127.0.0.1:9/v1"
    engine_reset()
    try:
        response = client.get("/readyz")
    finally:
        engine_reset()
    assert response.status_code == 200
    assert response.json() == {
        "ready": True,
        "checks": {"database": "ok", "channel_layer": "ok", "broker": "ok", "engine": "down"},
    }
    assert b"127.0.0.1:9" not in response.content


def test_the_api_answers_503_json_with_retry_after_while_the_database_is_down(monkeypatch):
    _key, raw = api_key_create(name="shop backend", scopes=["chat"])
    monkeypatch.setattr(connection, "cursor", _down)
    client = Client(raise_request_exception=False)
    response = client.get("/v1/models", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "service_unavailable"
    assert response["Retry-After"] == "5"
    assert b"10.9.8.7" not in response.content


def test_the_widget_endpoints_answer_503_json_readable_by_any_page(database_down):
    client = Client(raise_request_exception=False)
    for method, path in (
        ("get", "/widget/v1/sites/any-key"),
        ("post", "/widget/v1/sites/any-key/conversations"),
        ("post", "/widget/v1/sites/any-key/messages"),
    ):
        response = getattr(client, method)(path, headers={"Origin": "https://shop.example"})
        assert response.status_code == 503, (path, response.content)
        assert response.json()["error"]["code"] == "service_unavailable"
        assert response["Retry-After"] == "5" and response["Access-Control-Allow-Origin"] == "*"


def test_staff_pages_answer_a_plain_503_page_not_a_traceback(admin_user):
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    connection.cursor, real = _down, connection.cursor
    try:
        responses = [client.get(path) for path in ("/console/", "/reports/", "/admin/", "/")]
    finally:
        connection.cursor = real
    for response in responses:
        assert response.status_code == 503 and response["Content-Type"].startswith("text/html")
        assert b"Briefly unavailable" in response.content
        assert b"Traceback" not in response.content and b"10.9.8.7" not in response.content


def test_a_failure_outside_any_view_still_answers_503_for_an_outage_and_500_otherwise():
    request = RequestFactory().get("/console/")
    try:
        raise OperationalError(SECRET_DETAIL)
    except OperationalError:
        response = views.server_error(request)
    assert response.status_code == 503 and b"10.9.8.7" not in response.content
    try:
        raise redis.exceptions.ConnectionError("Error 111 connecting to redis:6379")
    except redis.exceptions.ConnectionError:
        assert views.server_error(RequestFactory().get("/api/v1/sessions")).status_code == 503
    try:
        raise KeyError("a bug")
    except KeyError:
        assert views.server_error(request).status_code == 500


@pytest.mark.django_db(transaction=True)
async def test_the_console_socket_closes_4013_when_the_session_cannot_be_read(client, monkeypatch):
    """channels' auth middleware reads the session before the consumer runs: an outage there was an HTTP 500."""
    import channels.auth

    user = await database_sync_to_async(get_user_model().objects.create_user)("agent9", password="pw-agent-123")
    await database_sync_to_async(user.user_permissions.add)(
        await database_sync_to_async(Permission.objects.get)(codename="use_console")
    )
    await database_sync_to_async(client.login)(username="agent9", password="pw-agent-123")
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def session_unreadable(scope):
        raise OperationalError(SECRET_DETAIL)

    monkeypatch.setattr(channels.auth, "get_user", session_unreadable)
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1"), (b"cookie", cookie)]
    communicator = WebsocketCommunicator(application, "/ws/console/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    error = await communicator.receive_json_from()
    assert error["code"] == "service_unavailable" and "10.9.8.7" not in error["message"]
    assert (await communicator.receive_output())["code"] == 4013


def test_a_hung_postgresql_or_redis_fails_requests_in_seconds_instead_of_holding_them():
    """libpq and redis-py wait as long as TCP does by default: every request would hang on an unreachable host."""
    from django.core.cache import cache

    assert connection.get_connection_params()["connect_timeout"] == 5
    pool = cache._cache._get_connection_pool(write=False)
    assert pool.connection_kwargs["socket_connect_timeout"] == 2 and pool.connection_kwargs["socket_timeout"] == 5
