"""The real server's timeouts and caps (daphne started as production starts it, through helpdesk.server): an idle
kept-alive HTTP connection is closed, a socket that never says hello is closed, a socket in use outlives the HTTP
idle timeout, and one address cannot hold more sockets than allowed."""

import json
import socket
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from chat import services
from tests import stack

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

IDLE_TIMEOUT = 2.0
HELLO_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def server(production_env, logs_dir):
    env = {**production_env, "CHAT_HELLO_TIMEOUT": str(HELLO_TIMEOUT), "CHAT_MAX_SOCKETS_PER_ADDRESS": "3"}
    web, base_url = stack.start_web(
        env, logs_dir, name="daphne-timeouts", options=("--http-idle-timeout", str(IDLE_TIMEOUT))
    )
    yield base_url
    web.stop()


def port_of(base_url: str) -> int:
    return int(base_url.rsplit(":", 1)[1])


def seconds_until_closed(sock: socket.socket, limit: float) -> float:
    """How long until the server closes the connection (reads return nothing); fails after `limit` seconds."""
    start = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        pytest.fail(f"the connection was still open after {limit} s")
    return time.monotonic() - start


def test_an_idle_kept_alive_http_connection_is_closed_within_the_idle_timeout(server):
    with socket.create_connection(("127.0.0.1", port_of(server))) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n")
        sock.settimeout(10)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert seconds_until_closed(sock, IDLE_TIMEOUT + 5) < IDLE_TIMEOUT + 3


def test_a_connection_that_never_sends_a_request_is_closed_too(server):
    with socket.create_connection(("127.0.0.1", port_of(server))) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # headers that never end
        assert seconds_until_closed(sock, IDLE_TIMEOUT + 5) < IDLE_TIMEOUT + 3


def ws_url(base_url: str, conversation_id) -> str:
    return f"{base_url.replace('http', 'ws', 1)}/ws/chat/{conversation_id}/"


def test_a_socket_that_never_says_hello_is_closed(server):
    conversation, _secret = services.conversation_start(language="en")
    start = time.monotonic()
    with connect(ws_url(server, conversation.id), origin=server, open_timeout=10) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                assert json.loads(ws.recv(timeout=HELLO_TIMEOUT + 5))["code"] == "hello_timeout"
    assert closed.value.rcvd.code == 4401 and time.monotonic() - start < HELLO_TIMEOUT + 3


def test_a_socket_in_use_outlives_the_http_idle_timeout_and_sockets_per_address_are_capped(server):
    conversation, secret = services.conversation_start(language="en")
    url = ws_url(server, conversation.id)
    with connect(url, origin=server) as ws:
        ws.send(json.dumps({"type": "hello", "secret": secret}))
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        time.sleep(IDLE_TIMEOUT + 1.5)  # silent longer than an idle HTTP connection may be
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "pong"}
        with connect(url, origin=server), connect(url, origin=server):
            with pytest.raises(InvalidStatus) as refused:
                connect(url, origin=server)
            assert refused.value.response.status_code == 403
        # The two closed sockets free their places once the server has seen them close (a moment after ours).
        deadline = time.monotonic() + 10
        while True:
            try:
                with connect(url, origin=server):
                    break
            except InvalidStatus:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
