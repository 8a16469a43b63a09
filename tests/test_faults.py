"""Faults on the production shape (daphne, a Celery worker, the real model): PostgreSQL stopped and started, Redis
restarted under a streaming reply, the engine's server hung and then gone. Each test has a PostgreSQL or Redis of
its own (tests/private_services.py) or its own engine server, so the shared ones keep serving everyone else.

The worker killed mid-generation is tests/test_end_to_end.py's.
"""

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time

import httpx
import pytest
from channels.db import database_sync_to_async
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chat.models import Message
from inference.model_files import bundled_model_path
from tests import stack
from tests.client import ask, conversation_open
from tests.private_services import PrivatePostgres, PrivateRedis

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

QUESTION = "Can I change the delivery address?"  # the demo base answers it in several sentences
CLOSE_TRY_AGAIN_LATER = 4013

SEED = """
import json
from django.contrib.auth import get_user_model
from django.test import Client
from chat.api.keys import api_key_create
from chat.models import Site
site = Site.objects.create(name="Acme", prechat_name="optional", prechat_email="optional")
_key, raw = api_key_create(name="ops", scopes=["chat"])
admin = get_user_model().objects.create_superuser("ops-admin", "ops@example.com", "pw-ops-admin-123")
client = Client()
client.force_login(admin)
print(json.dumps({"site": site.key, "api_key": raw, "session": client.cookies["sessionid"].value}))
"""


def _ws_url(base_url: str, path: str) -> str:
    return base_url.replace("http", "ws", 1) + path


async def _closed_with(ws, timeout: float = 10) -> tuple[list[dict], int | None]:
    """The frames a socket sends until it closes, and its close code."""
    frames = []
    try:
        while True:
            frames.append(json.loads(await ws.recv(timeout)))
    except ConnectionClosed:
        pass
    return frames, ws.close_code


def _until(check, timeout: float, step: float = 0.3):
    """Poll `check` until it returns something true (returned), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {check.__doc__ or check}")
        time.sleep(step)


@pytest.fixture
def private_postgres():
    pg = PrivatePostgres()
    yield pg
    pg.destroy()


async def test_postgresql_stopped_answers_503_and_retry_codes_then_recovers_by_itself(
    private_postgres, production_env, logs_dir
):
    pg = private_postgres
    pg.psql("CREATE DATABASE helpdesk", database="postgres")
    env = {**production_env, "DATABASE_URL": pg.url, "CELERY_QUEUE": production_env["CELERY_QUEUE"] + "-pgdown"}
    for args in (["migrate", "--noinput", "-v", "0"], ["shell", "-c", SEED]):
        done = subprocess.run([sys.executable, "manage.py", *args], env=env, cwd=stack.ROOT, capture_output=True)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
    seeded = json.loads(done.stdout.decode().strip().splitlines()[-1])
    web, base_url = stack.start_web(env, logs_dir, name="daphne-pgdown")
    http = httpx.Client(base_url=base_url, timeout=10)
    api = {"Authorization": f"Bearer {seeded['api_key']}"}
    staff = {"Cookie": f"sessionid={seeded['session']}"}
    widget = {"Origin": base_url}
    try:
        assert http.get("/readyz").json() == {
            "ready": True,
            "checks": {"database": "ok", "channel_layer": "ok", "broker": "ok"},
        }
        conversation = conversation_open(base_url, seeded["site"])
        customer = await connect(_ws_url(base_url, conversation["websocket"]), origin=base_url, open_timeout=10)
        await customer.send(json.dumps({"type": "hello", "secret": conversation["secret"], "last_seq": 0}))
        assert json.loads(await asyncio.wait_for(customer.recv(), 10))["type"] == "ready"

        pg.stop()

        assert http.get("/healthz").json() == {"ok": True}  # alive: nothing to restart
        ready = _until(lambda: (r := http.get("/readyz")).status_code == 503 and r, timeout=5)
        assert ready.json() == {"ready": False, "checks": {"database": "down", "channel_layer": "ok", "broker": "ok"}}
        for response in (
            http.get("/v1/models", headers=api),
            http.post("/api/v1/chat", headers=api, json={"message": "Hello?"}),
            http.get(f"/widget/v1/sites/{seeded['site']}", headers=widget),
            http.post(f"/widget/v1/sites/{seeded['site']}/conversations", headers=widget, json={}),
        ):
            assert response.status_code == 503, (response.request.url, response.text)
            assert response.json()["error"]["code"] == "service_unavailable"
            assert response.headers["Retry-After"] == "5"
            assert str(pg.port) not in response.text and "postgres" not in response.text.lower()
        for path in ("/console/", "/reports/", "/admin/"):
            page = http.get(path, headers={**staff, "Accept": "text/html"})
            assert page.status_code == 503 and page.headers["Content-Type"].startswith("text/html"), path
            assert "Traceback" not in page.text and str(pg.port) not in page.text

        # The open socket: the message is not acknowledged; the socket is told to come back later.
        await customer.send(json.dumps({"type": "message", "content": "Are you there?", "client_id": "m-1"}))
        frames, code = await _closed_with(customer)
        assert [f["code"] for f in frames] == ["service_unavailable"] and code == CLOSE_TRY_AGAIN_LATER
        # New sockets: the customer's from a page (its origin check reads the sites) and from a program (no Origin:
        # refused at the hello), and the console's (whose session cannot be read): the same.
        for path, headers, origin in (
            (conversation["websocket"], {}, base_url),
            (conversation["websocket"], {}, None),
            ("/ws/console/", staff, base_url),
        ):
            ws = await connect(_ws_url(base_url, path), origin=origin, additional_headers=headers, open_timeout=10)
            if path != "/ws/console/":
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(json.dumps({"type": "hello", "secret": conversation["secret"], "last_seq": 0}))
            frames, code = await _closed_with(ws)
            assert [f["code"] for f in frames] == ["service_unavailable"] and code == CLOSE_TRY_AGAIN_LATER, path

        pg.start()

        started = time.monotonic()
        _until(lambda: http.get("/readyz").status_code == 200, timeout=20)
        recovered_s = time.monotonic() - started
        assert http.get("/v1/models", headers=api).status_code == 200
        assert http.get(f"/widget/v1/sites/{seeded['site']}", headers=widget).status_code == 200
        assert http.get("/console/", headers=staff).status_code == 200
        # The customer reconnects (as the widget does on 4013) and resends the unacknowledged message: stored once.
        async with connect(_ws_url(base_url, conversation["websocket"]), origin=base_url) as again:
            await again.send(json.dumps({"type": "hello", "secret": conversation["secret"], "last_seq": 0}))
            assert json.loads(await asyncio.wait_for(again.recv(), 10))["type"] == "ready"
            for _ in range(2):  # a second resend, as after a lost ack
                await again.send(json.dumps({"type": "message", "content": "Are you there?", "client_id": "m-1"}))
                frame = json.loads(await asyncio.wait_for(again.recv(), 10))
                while frame["type"] != "ack":
                    frame = json.loads(await asyncio.wait_for(again.recv(), 10))
                assert frame["seq"] == 1
        assert pg.psql("SELECT count(*) FROM chat_message WHERE client_id = 'm-1'") == "1"
        assert recovered_s < 20
    finally:
        http.close()
        web.stop()


@pytest.fixture
def private_redis(logs_dir):
    server = PrivateRedis(logs_dir)
    yield server
    server.destroy()


class Customer:
    """The widget's socket protocol as a program: reconnects whenever the socket closes, with the last sequence
    number it holds complete before any streaming reply (so streaming replies are replayed whole), and records
    every frame of every connection."""

    def __init__(self, base_url: str, conversation: dict):
        self.url = _ws_url(base_url, conversation["websocket"])
        self.origin = base_url
        self.secret = conversation["secret"]
        self.messages: dict[int, dict] = {}  # seq -> the message as last seen
        self.frames: list[tuple[int, dict]] = []  # (connection number, frame)
        self.closes: list[int | None] = []
        self.connections = 0
        self.ws = None

    def last_seq(self) -> int:
        streaming = [seq for seq, m in self.messages.items() if m["state"] == "streaming"]
        first_streaming = min(streaming, default=2**31)
        done = [seq for seq, m in self.messages.items() if m["state"] != "streaming" and seq < first_streaming]
        return max(done, default=0)

    async def open(self) -> None:
        while True:
            try:
                self.ws = await connect(self.url, origin=self.origin, open_timeout=5)
                self.connections += 1
                await self.ws.send(json.dumps({"type": "hello", "secret": self.secret, "last_seq": self.last_seq()}))
                first = json.loads(await self.ws.recv(5))
                self._note(first)
                if first["type"] == "ready":
                    return
                await self.ws.close()
            except (OSError, ConnectionClosed, TimeoutError):
                pass
            await asyncio.sleep(0.5)  # the widget's backoff, shortened

    def _note(self, frame: dict) -> None:
        self.frames.append((self.connections, frame))
        if frame["type"] in ("message", "done"):
            self.messages[frame["message"]["seq"]] = frame["message"]

    async def send(self, frame: dict) -> None:
        await self.ws.send(json.dumps(frame))

    async def until(self, check, timeout: float) -> None:
        """Read frames, reconnecting on every close, until `check(frame)` is true for one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                frame = json.loads(await self.ws.recv(max(0.1, deadline - time.monotonic())))
            except ConnectionClosed:
                self.closes.append(self.ws.close_code)
                await self.open()
                continue
            self._note(frame)
            if check(frame):
                return
        raise AssertionError(f"not within {timeout} s; frames: {self.frames[-6:]}")

    def completions(self, seq: int) -> list[dict]:
        """Every delivery of message `seq` in a final state (complete or failed), over every connection."""
        return [
            f
            for _n, f in self.frames
            if f["type"] in ("message", "done") and f["message"]["seq"] == seq and f["message"]["state"] != "streaming"
        ]


async def test_redis_restarted_mid_stream_loses_and_doubles_nothing(private_redis, production_env, logs_dir, site):
    from django.contrib.auth import get_user_model
    from django.test import Client

    redis_server = private_redis
    env = {
        **production_env,
        "REDIS_URL": redis_server.url,
        "CELERY_QUEUE": production_env["CELERY_QUEUE"] + "-redis",
        "INFERENCE_MAX_TOKENS": "64",
    }
    # One generation at a time: the second question waits in Redis's queue while Redis restarts.
    worker = stack.start_worker(env, logs_dir, concurrency=1, name="celery-redis")
    web, base_url = stack.start_web(env, logs_dir, name="daphne-redis")

    def staff_session() -> str:
        admin = get_user_model().objects.create_superuser("ops-admin", "ops@example.com", "pw-ops-admin-123")
        client = Client()
        client.force_login(admin)
        return client.cookies["sessionid"].value

    session = await database_sync_to_async(staff_session)()
    try:
        first, second = conversation_open(base_url, site.key), conversation_open(base_url, site.key)
        ann, bob = Customer(base_url, first), Customer(base_url, second)
        await ann.open()
        await bob.open()
        console = await connect(
            _ws_url(base_url, "/ws/console/"), origin=base_url, additional_headers={"Cookie": f"sessionid={session}"}
        )
        await console.send(json.dumps({"type": "open", "conversation": first["id"]}))

        await ann.send({"type": "message", "content": QUESTION, "client_id": "ann-1"})
        await ann.until(lambda f: f["type"] == "delta", timeout=90)  # streaming now
        await bob.send({"type": "message", "content": "How long does standard shipping take?", "client_id": "bob-1"})
        await bob.until(lambda f: f["type"] == "ack", timeout=10)  # accepted, queued behind Ann's reply

        streaming = await database_sync_to_async(
            Message.objects.filter(conversation_id=first["id"], role="bot", state="streaming").exists
        )()
        assert streaming  # the restart lands mid-stream
        assert redis_server.cli("LLEN", env["CELERY_QUEUE"]) == "1"  # Bob's reply waits in Redis's queue
        redis_server.restart(down_s=1.0)

        for customer in (ann, bob):
            await customer.until(
                lambda f: (
                    f["type"] in ("done", "message")
                    and f["message"]["role"] == "bot"
                    and f["message"]["state"] != "streaming"
                ),
                timeout=150,
            )

        # The console reconnects as console.js does (on any close), opens the conversation again, and finds it whole.
        console_frames, console_closes = [], []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                frame = json.loads(await console.recv(max(0.1, deadline - time.monotonic())))
            except ConnectionClosed:
                console_closes.append(console.close_code)
                await asyncio.sleep(0.5)
                with_cookie = {"Cookie": f"sessionid={session}"}
                try:
                    console = await connect(
                        _ws_url(base_url, "/ws/console/"), origin=base_url, additional_headers=with_cookie
                    )
                    await console.send(json.dumps({"type": "open", "conversation": first["id"]}))
                except (OSError, ConnectionClosed):
                    pass
                continue
            console_frames.append(frame)
            if frame["type"] == "conversation" and console_closes:
                break
        await console.close()

        stored = {}
        for customer, conversation in ((ann, first), (bob, second)):
            rows = await database_sync_to_async(list)(
                Message.objects.filter(conversation_id=conversation["id"])
                .order_by("seq")
                .values("seq", "role", "state", "content")
            )
            stored[customer] = rows
            # One customer message and one bot reply, complete (the model's, or its fallback's).
            assert [(r["role"], r["state"]) for r in rows] == [("customer", "complete"), ("bot", "complete")], rows
            bot = rows[1]
            # Every message reached the customer, each final state exactly once, as stored.
            completions = customer.completions(bot["seq"])
            assert len(completions) == 1, completions
            assert completions[0]["message"]["content"] == bot["content"]
            assert [f for _n, f in customer.frames if f["type"] == "ack"] == [
                {"type": "ack", "client_id": f"{'ann' if customer is ann else 'bob'}-1", "seq": 1}
            ]
            customer_message = [f for _n, f in customer.frames if f["type"] == "message" and f["message"]["seq"] == 1]
            assert len(customer_message) == 1, customer_message  # shown once, not replayed again
        # On the pub/sub layer a socket can ride out the restart (what was published meanwhile is made good from the
        # database, chat.delivery); on the queue layer it goes down and comes back. Either way, only these closes.
        assert set(ann.closes) <= {CLOSE_TRY_AGAIN_LATER, 1006, 1011, 1012}, ann.closes
        reopened = next(f for f in reversed(console_frames) if f["type"] == "conversation")["conversation"]
        seqs = [m["seq"] for m in reopened["messages"]]
        assert seqs == sorted(set(seqs)) and {1, 2} <= set(seqs), seqs
        assert "reply_generate_task" in worker.output()
        # Both tasks were acknowledged across the restart: nothing is left in Redis to be delivered a second time.
        queue = env["CELERY_QUEUE"]
        _until(lambda: redis_server.cli("HLEN", "unacked") == "0" and redis_server.cli("LLEN", queue) == "0", 10)
    finally:
        web.stop()
        worker.stop()


async def test_the_engine_server_hung_then_gone_gets_the_fallback_within_its_timeout(
    production_env, logs_dir, site, transactional_db
):
    from inference.models import FallbackRule

    await database_sync_to_async(FallbackRule.objects.create)(
        name="address", keywords="delivery address\nshipping", answer="Write to us and we will change it for you."
    )
    server, engine_url = stack.start_llamacpp_server(logs_dir, str(bundled_model_path()))
    first_token_timeout = 3.0
    env = {
        **production_env,
        "CELERY_QUEUE": production_env["CELERY_QUEUE"] + "-engine",
        "INFERENCE_ENGINE": "openai",
        "INFERENCE_BASE_URL": engine_url,
        "INFERENCE_SERVED_MODEL_NAME": "smollm2",
        "INFERENCE_MAX_MODEL_LEN": "2048",
        "INFERENCE_FIRST_TOKEN_TIMEOUT": str(first_token_timeout),
    }
    worker = stack.start_worker(env, logs_dir, name="celery-engine")
    web, base_url = stack.start_web(env, logs_dir, name="daphne-engine")
    http = httpx.Client(base_url=base_url, timeout=10)
    try:
        checks = {"database": "ok", "channel_layer": "ok", "broker": "ok"}
        assert http.get("/readyz").json() == {"ready": True, "checks": {**checks, "engine": "ok"}}

        server.popen.send_signal(signal.SIGSTOP)  # hung: connections are accepted, nothing is answered
        for state in ("hung", "gone"):
            if state == "gone":
                server.popen.kill()  # the server dies
                server.popen.wait()
            time.sleep(1.1)  # past the readiness result shared between probes
            ready = http.get("/readyz")
            # Reported, but the web still serves: the fallback answers customers meanwhile.
            assert ready.status_code == 200 and ready.json() == {"ready": True, "checks": {**checks, "engine": "down"}}
            conversation = conversation_open(base_url, site.key)
            started = time.monotonic()
            exchange = await ask(base_url, conversation, QUESTION, timeout=30)
            took = time.monotonic() - started
            assert exchange.done["state"] == "complete", (state, exchange.frames[-3:])
            assert exchange.done["content"] == "Write to us and we will change it for you.", state
            assert took < first_token_timeout + 4, (state, took)
            reply = await database_sync_to_async(Message.objects.get)(conversation_id=conversation["id"], role="bot")
            assert reply.engine == "rules" and reply.state == Message.State.COMPLETE
    finally:
        http.close()
        web.stop()
        worker.stop()
        if server.popen.poll() is None:
            server.popen.send_signal(signal.SIGCONT)
        server.stop()
