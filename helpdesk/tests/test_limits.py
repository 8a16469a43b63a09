"""Request body limits: 413 in the JSON error format, before the body is read (helpdesk.limits), and Django's own cap
answered as 413 rather than 500 (the API) or an HTML 400 (the widget)."""

import json

import pytest
from asgiref.testing import ApplicationCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from chat.api.keys import api_key_create
from chat.models import Conversation, Site
from helpdesk.limits import BodySizeLimitMiddleware, body_limit

THREE_MB = 3 * 1024 * 1024


class RecordingApp:
    """An inner application that reads the whole body (as Django does) and answers 200 with its length."""

    def __init__(self):
        self.calls = 0
        self.body = b""
        self.disconnected = False

    async def __call__(self, scope, receive, send):
        self.calls += 1
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                return
            self.body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(len(self.body)).encode()})


def http_scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict:
    return {"type": "http", "method": "POST", "path": path, "headers": headers, "query_string": b""}


async def answer(communicator: ApplicationCommunicator) -> tuple[int, dict, bytes]:
    start = await communicator.receive_output(2)
    body = await communicator.receive_output(2)
    return start["status"], dict(start["headers"]), body["body"]


@pytest.fixture
def limits(settings):
    settings.REQUEST_BODY_LIMIT_DEFAULT = 1000
    settings.REQUEST_BODY_LIMITS = {"/widget/": 100, "/admin/": 10_000}


async def test_a_declared_length_over_the_limit_is_refused_before_anything_is_read(limits):
    inner = RecordingApp()
    scope = http_scope("/api/v1/chat", [(b"content-length", str(THREE_MB).encode())])
    communicator = ApplicationCommunicator(BodySizeLimitMiddleware(inner), scope)
    # No body is ever sent: the answer must come from the header alone.
    status, headers, body = await answer(communicator)
    assert status == 413
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    assert inner.calls == 0
    await communicator.wait(1)


async def test_a_chunked_body_is_counted_while_it_arrives_and_stopped_at_the_limit(limits):
    inner = RecordingApp()
    communicator = ApplicationCommunicator(BodySizeLimitMiddleware(inner), http_scope("/widget/v1/sites/x", []))
    for _ in range(3):
        await communicator.send_input({"type": "http.request", "body": b"x" * 40, "more_body": True})
    status, _headers, body = await answer(communicator)
    assert status == 413
    assert json.loads(body)["error"]["limit"] == 100
    await communicator.wait(1)
    # The application saw the first chunks, then the client "leaving"; it never answered over the refusal.
    assert inner.disconnected
    assert len(inner.body) == 80


async def test_bodies_within_the_limit_of_their_prefix_pass_untouched(limits):
    inner = RecordingApp()
    scope = http_scope("/admin/knowledge/import", [(b"content-length", b"5000")])
    communicator = ApplicationCommunicator(BodySizeLimitMiddleware(inner), scope)
    await communicator.send_input({"type": "http.request", "body": b"y" * 5000})
    status, _headers, body = await answer(communicator)
    assert (status, body) == (200, b"5000")
    await communicator.wait(1)


def test_each_prefix_has_its_own_limit(limits):
    assert body_limit("/widget/v1/sites/abc/conversations") == 100
    assert body_limit("/admin/knowledge/article/add/") == 10_000
    assert body_limit("/api/v1/chat") == 1000


async def test_a_malformed_content_length_is_a_400_not_a_crash(limits):
    inner = RecordingApp()
    communicator = ApplicationCommunicator(
        BodySizeLimitMiddleware(inner), http_scope("/api/v1/chat", [(b"content-length", b"12abc")])
    )
    status, _headers, body = await answer(communicator)
    assert status == 400
    assert json.loads(body)["error"]["code"] == "invalid_request"
    assert inner.calls == 0


@pytest.mark.django_db(transaction=True)
async def test_the_served_application_refuses_a_3_mb_body_with_413():
    from helpdesk.asgi import application

    scope = {
        **http_scope("/api/v1/chat", [(b"content-length", str(THREE_MB).encode()), (b"host", b"127.0.0.1")]),
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 5000),
        "scheme": "http",
        "http_version": "1.1",
        "raw_path": b"/api/v1/chat",
        "root_path": "",
    }
    communicator = ApplicationCommunicator(application, scope)
    status, _headers, body = await answer(communicator)
    assert status == 413
    assert json.loads(body)["error"]["code"] == "payload_too_large"


@pytest.mark.django_db
def test_a_3_mb_api_body_with_a_valid_key_is_413_not_500(settings):
    # Through Django alone (no ASGI limit in front): its own cap must answer 413 in the API's format.
    settings.API_RATE_LIMIT_PER_IP = 10_000
    _key, raw = api_key_create(name="shop backend", scopes=["chat"])
    body = json.dumps({"message": "x" * THREE_MB})
    response = Client().post(
        "/api/v1/chat", data=body, content_type="application/json", headers={"Authorization": f"Bearer {raw}"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


@pytest.mark.django_db
def test_a_3_mb_widget_body_is_a_json_413_and_opens_nothing():
    site = Site.objects.create(name="Shop")
    body = json.dumps({"name": "x" * THREE_MB})
    response = Client().post(f"/widget/v1/sites/{site.key}/conversations", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not Conversation.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/widget/v1/sites/%00",
        "/widget/v1/sites/W%00y/conversations",
        "/api/v1/conversations?status=%00",
        "/reports/conversations/?site=%00",
        "/accounts/login/?next=/%00",
    ],
)
def test_a_nul_in_the_address_is_a_400_not_a_database_error(path):
    # Found by the widget fuzzer (tests/test_api_schemathesis.py): PostgreSQL refuses NUL, which was a 500.
    response = Client().get(path)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


@pytest.mark.django_db
def test_a_malformed_site_key_is_unknown_without_a_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        response = Client().get("/widget/v1/sites/" + "k" * 40)
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_site"


class FakeDaphneServer:
    """What daphne's request asks of its server, for requests that never reach the application."""

    server_name = "test"
    proxy_forwarded_address_header = None

    def protocol_connected(self, protocol):
        pass

    def protocol_disconnected(self, protocol):
        pass

    def log_action(self, *args):
        pass


def daphne_connection():
    from twisted.internet.testing import StringTransport

    from helpdesk.server import idle_timeout_factory

    protocol = idle_timeout_factory(None)(FakeDaphneServer()).buildProtocol(("127.0.0.1", 40000))
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def test_daphne_keeps_nothing_of_a_declared_3_mb_body_and_answers_413(limits):
    protocol, transport = daphne_connection()
    protocol.dataReceived(b"POST /api/v1/chat HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % THREE_MB)
    request = protocol._channel.requests[-1]
    assert request.body_refused  # from the header, before a byte of the body
    for _ in range(47):
        protocol.dataReceived(b"x" * 65536)
        assert request.content.getvalue() == b""  # read and dropped, never buffered or spooled to disk
    assert transport.value() == b""  # answered once the client has sent it all, so that it reads the answer
    protocol.dataReceived(b"x" * 65536)
    head, _, body = transport.value().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert json.loads(body)["error"] == {
        "code": "payload_too_large",
        "message": "The request body is larger than this address accepts (1000 bytes).",
        "limit": 1000,
    }


def test_daphne_stops_keeping_a_chunked_body_at_the_limit(limits):
    protocol, transport = daphne_connection()
    protocol.dataReceived(
        b"POST /widget/v1/sites/k/conversations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    request = protocol._channel.requests[-1]
    protocol.dataReceived(b"50\r\n" + b"y" * 80 + b"\r\n")
    assert not request.body_refused and request.content.tell() == 80
    for _ in range(100):
        protocol.dataReceived(b"50\r\n" + b"y" * 80 + b"\r\n")
    assert request.body_refused and request.content.getvalue() == b""
    protocol.dataReceived(b"0\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 413")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/accounts/login/", "/playground/generate", "/admin/login/"])
def test_a_body_over_djangos_own_cap_is_413_wherever_it_is_read(path, settings):
    # Read by the CSRF middleware (forms) or by the view (the playground's JSON): Django's answer was a 400 page.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-boss-123")
    client = Client()
    client.force_login(user)
    response = client.post(path, data="username=" + "x" * 5000, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
