"""Errors reach clients in generic words: an engine's error names its server (base URL, model path), and that detail
belongs in the server's log, not in an API answer."""

import json
import logging

import pytest
from django.test import AsyncClient

from chat.api.keys import api_key_create
from inference.engines import EngineError

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("ungrounded")]

INTERNAL = "http://10.20.30.40:8000/v1"


@pytest.fixture
def headers(settings):
    settings.API_RATE_LIMIT_PER_IP = 10_000
    _key, raw = api_key_create(name="shop backend", scopes=["chat"])
    return {"Authorization": f"Bearer {raw}"}


def completion(stream: bool) -> str:
    return json.dumps({"model": "default", "messages": [{"role": "user", "content": "hi"}], "stream": stream})


async def test_an_engine_failure_answers_503_without_the_engines_address(
    headers, fake_engine, in_process_generation, caplog
):
    fake_engine.script = [EngineError(f"{INTERNAL} failed: ConnectError('[Errno 111] Connection refused')")]
    with caplog.at_level(logging.WARNING):
        response = await AsyncClient().post(
            "/v1/chat/completions", completion(False), content_type="application/json", headers=headers
        )
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "engine_unavailable"
    assert "10.20.30.40" not in response.content.decode() and "Errno" not in response.content.decode()
    assert INTERNAL in caplog.text  # the staff still find out what happened, in the log


async def test_a_streamed_engine_failure_says_nothing_of_the_engine_either(headers, fake_engine, in_process_generation):
    fake_engine.script = [EngineError(f"{INTERNAL} failed: ReadTimeout()")]
    response = await AsyncClient().post(
        "/v1/chat/completions", completion(True), content_type="application/json", headers=headers
    )
    body = b"".join([chunk async for chunk in response.streaming_content]).decode()
    assert '"engine_unavailable"' in body
    assert "10.20.30.40" not in body and "ReadTimeout" not in body


def test_the_completion_error_event_itself_is_generic_for_every_relay(fake_engine, monkeypatch):
    """The playground relays the worker's events as they are: the event must already be clean."""
    from chat import completions

    sent = []
    monkeypatch.setattr(completions.CompletionPublisher, "send", lambda self, kind, **data: sent.append((kind, data)))
    fake_engine.script = [EngineError(f"{INTERNAL} failed: ConnectError()")]
    job = completions.completion_job_new(turns=[["user", "hi"]], overrides={})
    completions.completion_generate(job)
    errors = [data for kind, data in sent if kind == "error"]
    assert errors and errors[0]["code"] == "engine_unavailable"
    assert "10.20.30.40" not in errors[0]["message"] and "ConnectError" not in errors[0]["message"]
