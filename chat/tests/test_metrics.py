"""chat's Prometheus series, read back from the real default registry: the pipeline's timings and token counts (with
the spec'd fake engine), the customer socket's gauge and the socket's rate-limit refusals."""

import time

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from prometheus_client import REGISTRY

from chat import services
from chat.generation import GenerationRequest, Outcome, Publisher, generate
from chat.metrics import queue_wait_observe
from chat.models import Site
from helpdesk.asgi import application
from inference.engines import EngineError
from inference.types import ChatTurn

ORIGIN = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")]


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def stage_count(stage: str, purpose: str = "reply") -> float:
    return sample("helpdesk_reply_stage_seconds_count", purpose=purpose, stage=stage)


class SlowPublisher(Publisher):
    """Publishing takes 50 ms: the first_publish stage must include it."""

    def delta(self, text: str) -> None:
        time.sleep(0.05)


@pytest.mark.django_db
@pytest.mark.usefixtures("ungrounded")
def test_an_answer_is_timed_by_stage_and_its_tokens_are_counted(fake_engine):
    fake_engine.script = ["Your ", "parcel ", "left ", "today."]
    stages = {stage: stage_count(stage) for stage in ("prompt_build", "engine_first_token", "first_publish")}
    first_publish_sum = sample("helpdesk_reply_stage_seconds_sum", purpose="reply", stage="first_publish")
    ttft = sample("helpdesk_time_to_first_token_seconds_count", engine="fake", purpose="reply")
    duration = sample("helpdesk_reply_duration_seconds_count", engine="fake", purpose="reply")
    tokens = sample("helpdesk_generated_tokens_total", engine="fake")
    prompt_tokens = sample("helpdesk_prompt_tokens_total", engine="fake")
    speed = sample("helpdesk_tokens_per_second_count", engine="fake")

    result = generate(
        GenerationRequest(purpose="reply", history=[ChatTurn("user", "Where is my parcel?")]), SlowPublisher()
    )

    assert result.outcome == Outcome.ANSWERED
    for stage, before in stages.items():
        assert stage_count(stage) == before + 1, stage  # once per output, not per token or per publish
    assert (
        sample("helpdesk_reply_stage_seconds_sum", purpose="reply", stage="first_publish") >= first_publish_sum + 0.05
    )
    assert sample("helpdesk_time_to_first_token_seconds_count", engine="fake", purpose="reply") == ttft + 1
    assert sample("helpdesk_reply_duration_seconds_count", engine="fake", purpose="reply") == duration + 1
    assert sample("helpdesk_generated_tokens_total", engine="fake") == tokens + 4
    assert result.stats.prompt_tokens > 0
    assert sample("helpdesk_prompt_tokens_total", engine="fake") == prompt_tokens + result.stats.prompt_tokens
    assert sample("helpdesk_tokens_per_second_count", engine="fake") == speed + 1
    assert sample("helpdesk_active_streams") == 0  # back down once the output is done


@pytest.mark.django_db
@pytest.mark.usefixtures("ungrounded")
def test_an_engine_failure_without_a_fallback_is_counted_for_outputs_agents_read(fake_engine):
    fake_engine.script = [EngineError("engine down")]
    before = sample("helpdesk_engine_failures_total", answered_by="nobody")
    result = generate(GenerationRequest(purpose="summary", history=[ChatTurn("user", "x")], rules_fallback=False))
    assert result.outcome == Outcome.FAILED
    assert sample("helpdesk_engine_failures_total", answered_by="nobody") == before + 1
    assert sample("helpdesk_active_streams") == 0


def test_queue_wait_is_observed_for_generation_tasks_only():
    before = stage_count("queue_wait", purpose="completion")
    queue_wait_observe(task_name="chat.tasks.completion_generate_task", waited_s=0.3)
    queue_wait_observe(task_name="helpdesk.tasks.webhook_deliver_task", waited_s=0.3)
    assert stage_count("queue_wait", purpose="completion") == before + 1
    assert (
        REGISTRY.get_sample_value("helpdesk_reply_stage_seconds_count", {"purpose": "webhook", "stage": "queue_wait"})
        is None
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("ungrounded", "fake_engine", "in_process_generation")
async def test_the_customer_socket_gauge_counts_open_sockets_and_the_rate_limit_refusals():
    site = await database_sync_to_async(Site.objects.create)(name="Shop", messages_per_minute=1)
    conversation, secret = await database_sync_to_async(services.conversation_start)(site=site)
    open_before = sample("helpdesk_websocket_connections", kind="customer")
    refused_before = sample("helpdesk_rate_limited_total", channel="socket", limit="messages")

    communicator = WebsocketCommunicator(application, f"/ws/chat/{conversation.id}/", headers=ORIGIN)
    assert (await communicator.connect())[0]
    assert sample("helpdesk_websocket_connections", kind="customer") == open_before + 1
    await communicator.send_json_to({"type": "hello", "secret": secret})
    assert (await communicator.receive_json_from())["type"] == "ready"
    for n in (1, 2):
        await communicator.send_json_to({"type": "message", "content": f"Message {n}", "client_id": f"c{n}"})
    frames = []
    while not any(f["type"] == "error" for f in frames):
        frames.append(await communicator.receive_json_from(5))
    assert next(f for f in frames if f["type"] == "error")["code"] == "rate_limited"
    assert sample("helpdesk_rate_limited_total", channel="socket", limit="messages") == refused_before + 1

    await communicator.disconnect()
    assert sample("helpdesk_websocket_connections", kind="customer") == open_before


@pytest.mark.django_db(transaction=True)
async def test_a_refused_handshake_is_not_counted_as_an_open_socket():
    site = await database_sync_to_async(Site.objects.create)(name="Shop", allowed_origins="https://shop.example")
    conversation, _secret = await database_sync_to_async(services.conversation_start)(site=site)
    before = sample("helpdesk_websocket_connections", kind="customer")
    foreign = [(b"origin", b"https://evil.example"), (b"host", b"127.0.0.1:8000")]
    communicator = WebsocketCommunicator(application, f"/ws/chat/{conversation.id}/", headers=foreign)
    assert not (await communicator.connect())[0]
    await communicator.disconnect()
    assert sample("helpdesk_websocket_connections", kind="customer") == before
