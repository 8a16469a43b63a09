"""The REST API on the live stack (daphne, a Celery worker, PostgreSQL, Redis, the real model answering from the
demo knowledge base), driven by real clients: httpx for /api/v1/chat (JSON and Server-Sent Events) and the official
`openai` package for /v1."""

import json
import time

import httpx
import pytest
from openai import AsyncOpenAI, OpenAI

from chat.api.keys import api_key_create
from chat.models import Conversation, Message
from tests import stack

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def api_key(transactional_db) -> str:
    _key, raw = api_key_create(name="live tests", scopes=["chat", "read"], rate_limit_per_minute=1000)
    return raw


def headers(raw: str) -> dict:
    return {"Authorization": f"Bearer {raw}"}


def sse_events(lines) -> list[tuple[str, dict]]:
    events, name = [], None
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
            name = None
    return events


def test_a_session_keeps_its_history_and_max_tokens_stops_the_real_engine(production_server, api_key, demo_knowledge):
    question = "My name is Ann. How do I return an item?"
    with httpx.Client(base_url=production_server, headers=headers(api_key), timeout=120) as client:
        first = client.post(
            "/api/v1/chat",
            json={"session_id": "live-1", "user_input": question, "max_tokens": 6, "temperature": 0},
        )
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["status"] == "answered" and body["engine"] == "llamacpp" and body["response"], body
        # The model was cut at exactly the 6 tokens asked for: the parameter reached llama.cpp, not only the API.
        assert body["usage"]["completion_tokens"] == 6 and body["usage"]["prompt_tokens"] > 20
        # The same question again, so the same passages go into the prompt (a different one would bring others).
        second = client.post(
            "/api/v1/chat", json={"session_id": "live-1", "user_input": question, "max_tokens": 6, "temperature": 0}
        )
        assert second.status_code == 200 and second.json()["conversation_id"] == body["conversation_id"]
        # The second prompt carried the first turn: more prompt tokens than the first question alone.
        assert second.json()["usage"]["prompt_tokens"] > body["usage"]["prompt_tokens"], second.json()
    messages = Message.objects.filter(conversation_id=body["conversation_id"]).order_by("seq")
    assert [m.role for m in messages] == ["customer", "bot", "customer", "bot"]
    assert Conversation.objects.get(pk=body["conversation_id"]).session_id == "live-1"


def test_streaming_chat_sends_server_sent_events_as_the_model_writes(production_server, api_key, demo_knowledge):
    # The small model answers this one at length (true or not): several sentences to stream.
    question = "What payment methods do you accept?"
    body = {"session_id": "live-sse", "user_input": question, "max_tokens": 96, "temperature": 0, "stream": True}
    arrivals = []
    with httpx.Client(base_url=production_server, headers=headers(api_key), timeout=120) as client:
        with client.stream("POST", "/api/v1/chat", json=body) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = []
            for line in response.iter_lines():
                lines.append(line)
                if line.startswith("event: delta"):
                    arrivals.append(time.monotonic())
    events = sse_events(lines)
    assert events[0][0] == "start" and events[-1][0] == "done"
    deltas = [data["text"] for name, data in events if name == "delta"]
    assert len(deltas) >= 2  # a sentence at a time (the fact guard checks each), not token by token
    assert arrivals[-1] - arrivals[0] > 0.05  # they came over time, not all at once at the end
    done = events[-1][1]
    assert "".join(deltas).strip() == done["response"] and done["usage"]["completion_tokens"] > 3


def test_a_session_asking_for_a_person_is_handed_off(production_server, api_key):
    with httpx.Client(base_url=production_server, headers=headers(api_key), timeout=60) as client:
        response = client.post("/api/v1/chat", json={"session_id": "live-h", "user_input": "Let me talk to a human"})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "handed_off" and body["response"] is None
    assert Conversation.objects.get(pk=body["conversation_id"]).status == Conversation.Status.QUEUED


def test_the_openai_package_talks_to_the_bot_with_and_without_streaming(production_server, api_key, demo_knowledge):
    client = OpenAI(base_url=f"{production_server}/v1", api_key=api_key, max_retries=0, timeout=120)
    assert [m.id for m in client.models.list()] == ["default"]
    completion = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "What payment methods do you accept?"}],
        max_tokens=7,
        temperature=0,
    )
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason == "length" and completion.usage.completion_tokens == 7

    stream = client.chat.completions.create(
        model="default",
        messages=[
            {"role": "user", "content": "Hi, I ordered a lamp."},
            {"role": "assistant", "content": "Thanks! How can I help with your lamp?"},
            {"role": "user", "content": "It arrived damaged. What can I do?"},
        ],
        max_tokens=96,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    # A sentence at a time (the fact guard checks each), not token by token.
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) >= 2 and text.strip()
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 3
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish in (["stop"], ["length"])
    # Nothing was stored: the OpenAI endpoint keeps no conversation.
    assert not Conversation.objects.exists()


def test_the_openai_package_sees_api_errors_as_its_own_exceptions(production_server, api_key):
    import openai

    client = OpenAI(base_url=f"{production_server}/v1", api_key=api_key, max_retries=0)
    with pytest.raises(openai.NotFoundError, match="model"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=f"{production_server}/v1", api_key="hd_wrong_key", max_retries=0).models.list()


async def test_a_stream_in_progress_does_not_hold_up_other_requests(production_server, api_key, demo_knowledge):
    client = AsyncOpenAI(base_url=f"{production_server}/v1", api_key=api_key, max_retries=0, timeout=120)
    stream = await client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "Can I change the delivery address?"}],  # a long generated answer
        max_tokens=200,
        stream=True,
    )
    first = await anext(aiter(stream))
    assert first.choices[0].delta.role == "assistant"
    async with httpx.AsyncClient(base_url=production_server, timeout=10) as other:
        started = time.monotonic()
        health = await other.get("/healthz")
        spec = await other.get("/api/openapi.json")
        elapsed = time.monotonic() - started
    rest = [chunk async for chunk in stream]
    assert health.status_code == 200 and spec.status_code == 200
    assert rest and rest[-1].choices[0].finish_reason is not None
    # Answered while the stream was still running.
    assert elapsed < 3, elapsed


@pytest.fixture
def second_server(production_env, celery_worker_process, logs_dir):
    web, base_url = stack.start_web(production_env, logs_dir, name="daphne-2")
    yield base_url
    web.stop()


def test_two_server_processes_share_one_rate_limit(production_server, second_server, transactional_db):
    _key, raw = api_key_create(name="limited", scopes=["chat"], rate_limit_per_minute=5)
    statuses = []
    for i in range(8):
        base = (production_server, second_server)[i % 2]
        response = httpx.get(f"{base}/v1/models", headers=headers(raw), timeout=10)
        statuses.append((base == second_server, response.status_code, response.headers.get("retry-after")))
    assert [s for _, s, _ in statuses] == [200] * 5 + [429] * 3
    # Both processes refused once the shared count passed 5, whichever got the sixth request.
    assert {second for second, status, _ in statuses if status == 429} == {True, False}
    assert all(1 <= int(retry) <= 60 for _, status, retry in statuses if status == 429)
