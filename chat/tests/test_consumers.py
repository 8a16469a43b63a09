"""The customer websocket, driven in-process with channels' WebsocketCommunicator over the Redis channel layer."""

import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from chat import services
from chat.consumers import CLOSE_ACCESS_DENIED, CLOSE_HELLO_REQUIRED
from chat.models import Message
from helpdesk.asgi import application
from inference.engines import EngineError

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("ungrounded")]

# A page of the helpdesk itself (conversations without a site accept only their own origin).
ORIGIN = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")]


async def open_socket(conversation_id, headers=ORIGIN) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, f"/ws/chat/{conversation_id}/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def hello(conversation_id, secret, last_seq=0) -> tuple[WebsocketCommunicator, list[dict]]:
    """Open a socket, say hello, and return it with the frames up to and including `ready` plus the replay."""
    communicator = await open_socket(conversation_id)
    await communicator.send_json_to({"type": "hello", "secret": secret, "last_seq": last_seq})
    frames = [await communicator.receive_json_from()]
    assert frames[0]["type"] == "ready", frames
    while not await communicator.receive_nothing(0.2):
        frames.append(await communicator.receive_json_from())
    return communicator, frames


async def receive_until(communicator, frame_type: str, timeout: float = 10) -> list[dict]:
    frames = []
    while True:
        frame = await communicator.receive_json_from(timeout)
        frames.append(frame)
        if frame["type"] == frame_type:
            return frames


@pytest.fixture
def conversation():
    return services.conversation_start(language="en", region="Europe/Paris")


async def test_wrong_secret_gets_an_error_and_close_4403(conversation):
    conv, _secret = conversation
    communicator = await open_socket(conv.id)
    await communicator.send_json_to({"type": "hello", "secret": "guess"})
    assert (await communicator.receive_json_from())["code"] == "access_denied"
    assert (await communicator.receive_output())["code"] == CLOSE_ACCESS_DENIED


async def test_unknown_conversation_is_refused_like_a_wrong_secret():
    communicator = await open_socket("8d8a4fd5-6a89-4e5e-a1bb-2a7b1c2b7d10")
    await communicator.send_json_to({"type": "hello", "secret": "whatever"})
    assert (await communicator.receive_json_from())["code"] == "access_denied"
    assert (await communicator.receive_output())["code"] == CLOSE_ACCESS_DENIED


async def test_message_before_hello_closes_4401_and_stores_nothing(conversation):
    conv, _ = conversation
    communicator = await open_socket(conv.id)
    await communicator.send_json_to({"type": "message", "content": "hi"})
    assert (await communicator.receive_json_from())["code"] == "hello_required"
    assert (await communicator.receive_output())["code"] == CLOSE_HELLO_REQUIRED
    assert not await database_sync_to_async(Message.objects.exists)()


async def test_hello_without_secret_closes_4401(conversation):
    conv, _ = conversation
    communicator = await open_socket(conv.id)
    await communicator.send_json_to({"type": "hello"})
    assert (await communicator.receive_json_from())["code"] == "secret_required"
    assert (await communicator.receive_output())["code"] == CLOSE_HELLO_REQUIRED


async def test_silent_socket_is_closed_after_the_hello_timeout(conversation, settings):
    settings.CHAT_HELLO_TIMEOUT = 0.3
    conv, _ = conversation
    communicator = await open_socket(conv.id)
    assert (await communicator.receive_json_from(2))["code"] == "hello_timeout"
    assert (await communicator.receive_output(2))["code"] == CLOSE_HELLO_REQUIRED


async def test_malformed_frames_get_error_frames_and_the_socket_keeps_serving(conversation):
    conv, secret = conversation
    communicator, _ = await hello(conv.id, secret)
    cases = [
        ({"text_data": "{not json"}, "invalid_json"),
        ({"text_data": "[1, 2]"}, "invalid_frame"),
        ({"text_data": json.dumps({"type": "launch_missiles"})}, "unknown_type"),
        ({"bytes_data": b"\x00\x01"}, "invalid_frame"),
        ({"text_data": "x" * 100_000}, "frame_too_large"),
        ({"text_data": "[" * 20_000}, "invalid_json"),
        ({"text_data": json.dumps({"type": "hello", "secret": secret})}, "already_authenticated"),
    ]
    for frame, code in cases:
        await communicator.send_to(**frame)
        reply = await communicator.receive_json_from()
        assert reply["type"] == "error" and reply["code"] == code and reply["message"]
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from() == {"type": "pong"}
    await communicator.disconnect()


async def test_a_nonsense_last_seq_replays_everything(conversation, fake_engine, in_process_generation):
    conv, secret = conversation
    communicator, _ = await hello(conv.id, secret)
    await communicator.send_json_to({"type": "message", "content": "first"})
    await receive_until(communicator, "done")
    await communicator.disconnect()
    for last_seq in (10**40, -5, "3", True):
        again, frames = await hello(conv.id, secret, last_seq=last_seq)
        assert [f["message"]["seq"] for f in frames if f["type"] == "message"] == [1, 2]
        await again.disconnect()


@pytest.mark.parametrize(
    ("content", "code"), [("", "empty_message"), ("  ", "empty_message"), (["x"], "invalid_message")]
)
async def test_invalid_messages_are_refused_and_nothing_is_stored(conversation, content, code):
    conv, secret = conversation
    communicator, _ = await hello(conv.id, secret)
    await communicator.send_json_to({"type": "message", "content": content})
    assert (await communicator.receive_json_from())["code"] == code
    assert not await database_sync_to_async(Message.objects.exists)()
    await communicator.disconnect()


async def test_message_over_chat_max_message_chars_is_refused(conversation, settings):
    settings.CHAT_MAX_MESSAGE_CHARS = 50
    conv, secret = conversation
    communicator, _ = await hello(conv.id, secret)
    await communicator.send_json_to({"type": "message", "content": "y" * 51})
    error = await communicator.receive_json_from()
    assert error["code"] == "message_too_long" and "50" in error["message"]
    assert not await database_sync_to_async(Message.objects.exists)()
    await communicator.disconnect()


async def test_origin_not_allowed_is_refused_at_handshake(conversation):
    conv, _ = conversation
    communicator = WebsocketCommunicator(
        application, f"/ws/chat/{conv.id}/", headers=[(b"origin", b"https://evil.example")]
    )
    connected, _ = await communicator.connect()
    assert not connected


async def test_unknown_websocket_path_is_refused_not_a_server_error():
    communicator = WebsocketCommunicator(application, "/ws/chat/not-a-uuid/", headers=ORIGIN)
    connected, _ = await communicator.connect()
    assert not connected


async def test_reply_streams_deltas_then_done(conversation, fake_engine, in_process_generation):
    fake_engine.script = ["Sure", ", I", " can", " help", "."]
    conv, secret = conversation
    communicator, _ = await hello(conv.id, secret)
    await communicator.send_json_to({"type": "message", "content": "Hello?", "client_id": "c-1"})
    frames = await receive_until(communicator, "done")
    types = [f["type"] for f in frames]
    assert {"type": "ack", "client_id": "c-1", "seq": 1} in frames
    bot_started = next(f for f in frames if f["type"] == "message" and f["message"]["role"] == "bot")
    assert bot_started["message"]["state"] == "streaming"
    assert types.index("delta") > types.index("message")
    streamed = "".join(f["text"] for f in frames if f["type"] == "delta")
    done = frames[-1]["message"]
    assert streamed == done["content"] == "Sure, I can help."
    assert done["state"] == "complete" and done["seq"] == 2
    assert done["stats"]["completion_tokens"] == 5 and done["stats"]["ttft_ms"] is not None
    # The engine saw the system prompt and the customer's question.
    turns, _params = fake_engine.calls[-1]
    assert turns[0].role == "system" and "Europe/Paris" in turns[0].content
    assert turns[-1].role == "user" and turns[-1].content == "Hello?"
    await communicator.disconnect()


async def test_engine_failure_mid_stream_marks_the_reply_failed_and_tells_the_customer(
    conversation, fake_engine, in_process_generation
):
    fake_engine.script = ["Let me", " check", EngineError("the engine crashed")]
    conv, secret = conversation
    communicator, _ = await hello(conv.id, secret)
    await communicator.send_json_to({"type": "message", "content": "Where is my order?"})
    done = (await receive_until(communicator, "done"))[-1]["message"]
    assert done["state"] == "failed" and done["content"] == "Let me check"
    reply = await database_sync_to_async(Message.objects.get)(role=Message.Role.BOT)
    assert reply.state == Message.State.FAILED and "crashed" in reply.error
    assert not await database_sync_to_async(Message.objects.filter(state=Message.State.STREAMING).exists)()
    await communicator.disconnect()


async def test_reconnect_replays_only_what_was_missed(conversation, fake_engine, in_process_generation):
    conv, secret = conversation
    communicator, _ = await hello(conv.id, secret)
    await communicator.send_json_to({"type": "message", "content": "first"})
    await receive_until(communicator, "done")
    await communicator.disconnect()
    # Messages 1 (customer) and 2 (bot) exist; a client that saw 1 gets exactly 2 back.
    again, frames = await hello(conv.id, secret, last_seq=1)
    replayed = [f["message"] for f in frames if f["type"] == "message"]
    assert [m["seq"] for m in replayed] == [2]
    assert replayed[0]["role"] == "bot" and replayed[0]["state"] == "complete"
    await again.disconnect()


async def test_a_bad_client_does_not_disturb_another_conversation(fake_engine, in_process_generation):
    (conv_a, secret_a) = await database_sync_to_async(services.conversation_start)()
    (conv_b, secret_b) = await database_sync_to_async(services.conversation_start)()
    good, _ = await hello(conv_b.id, secret_b)
    bad, _ = await hello(conv_a.id, secret_a)
    for _ in range(5):
        await bad.send_to(text_data="garbage")
        assert (await bad.receive_json_from())["code"] == "invalid_json"
    await good.send_json_to({"type": "message", "content": "still there?"})
    done = (await receive_until(good, "done"))[-1]["message"]
    assert done["state"] == "complete"
    assert await bad.receive_nothing(0.3)  # conversation A hears nothing of B
    await good.disconnect()
    await bad.disconnect()


async def test_a_database_failure_while_storing_closes_4013_and_the_resend_after_reconnecting_is_stored_once(
    conversation, monkeypatch
):
    from django.db import OperationalError

    from chat.consumers import CLOSE_TRY_AGAIN_LATER

    conv, secret = conversation
    communicator, _ = await hello(conv.id, secret)
    real_post = services.message_post_customer

    def database_down(**_kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(services, "message_post_customer", database_down)
    await communicator.send_json_to({"type": "message", "content": "hello", "client_id": "c-9"})
    error = await communicator.receive_json_from()
    assert error["code"] == "service_unavailable" and "ack" not in error
    assert (await communicator.receive_output())["code"] == CLOSE_TRY_AGAIN_LATER  # reconnect with backoff
    # Back up: the widget reconnects and resends what was not acknowledged; it is stored once, answered once.
    monkeypatch.setattr(services, "message_post_customer", real_post)
    again, _ = await hello(conv.id, secret)
    await again.send_json_to({"type": "message", "content": "hello", "client_id": "c-9"})
    frames = await receive_until(again, "ack")
    assert frames[-1]["seq"] == 1
    await again.send_json_to({"type": "message", "content": "hello", "client_id": "c-9"})
    assert (await receive_until(again, "ack"))[-1]["seq"] == 1
    assert await database_sync_to_async(Message.objects.filter(client_id="c-9").count)() == 1
    await again.disconnect()


async def test_an_action_while_the_database_is_down_closes_4013(conversation, monkeypatch):
    from django.db import InterfaceError

    conv, secret = conversation
    communicator, _ = await hello(conv.id, secret)

    def database_down(**_kwargs):
        raise InterfaceError("connection already closed")

    monkeypatch.setattr(services, "conversation_contact_set", database_down)
    await communicator.send_json_to({"type": "contact", "name": "Ann", "email": "ann@example.com"})
    assert (await communicator.receive_json_from())["code"] == "service_unavailable"
    assert (await communicator.receive_output())["code"] == 4013


async def test_a_redis_outage_escaping_the_consumer_closes_4013_not_1011(conversation, monkeypatch):
    """What no consumer catches (the auth middleware's session read, the channel layer's receive loop) still ends
    in an error frame and a retry code."""
    import redis.exceptions
    from channels.generic.websocket import AsyncWebsocketConsumer

    conv, secret = conversation
    communicator, _ = await hello(conv.id, secret)

    async def redis_down(self, *args, **kwargs):
        raise redis.exceptions.ConnectionError("Error 111 connecting to 10.0.0.7:6379. Connection refused.")

    monkeypatch.setattr(AsyncWebsocketConsumer, "websocket_receive", redis_down)
    await communicator.send_json_to({"type": "ping"})
    error = await communicator.receive_json_from()
    assert error["code"] == "service_unavailable" and "10.0.0.7" not in error["message"]
    assert (await communicator.receive_output())["code"] == 4013


@pytest.fixture
def password_rule(db):
    from inference.models import FallbackRule

    return FallbackRule.objects.create(
        name="password", keywords="password\n密码", answer="Use 'Forgot password' on the sign-in page."
    )


async def test_a_crashed_engine_is_answered_by_a_matching_rule(
    conversation, fake_engine, in_process_generation, password_rule
):
    fake_engine.script = ["Let me", EngineError("the engine crashed")]
    conv, secret = conversation
    communicator, _ = await hello(conv.id, secret)
    await communicator.send_json_to({"type": "message", "content": "I lost my password"})
    done = (await receive_until(communicator, "done"))[-1]["message"]
    assert done["state"] == "complete" and done["content"] == password_rule.answer
    reply = await database_sync_to_async(Message.objects.get)(role=Message.Role.BOT)
    assert reply.engine == "rules" and reply.state == Message.State.COMPLETE
    await communicator.disconnect()


async def test_a_hung_engine_is_answered_by_a_rule_within_the_first_token_timeout(
    conversation, fake_engine, in_process_generation, password_rule, settings
):
    import time

    from inference.engines import engine_get

    settings.INFERENCE_FIRST_TOKEN_TIMEOUT = 0.5
    engine = await database_sync_to_async(engine_get)()
    engine.delay_s = 30  # far longer than the timeout: the engine never answers in time
    conv, secret = conversation
    communicator, _ = await hello(conv.id, secret)
    started = time.monotonic()
    await communicator.send_json_to({"type": "message", "content": "password reset?"})
    done = (await receive_until(communicator, "done", timeout=5))[-1]["message"]
    assert time.monotonic() - started < 3
    assert done["content"] == password_rule.answer
    await communicator.disconnect()


async def test_chinese_replies_get_full_width_punctuation(fake_engine, in_process_generation):
    conv, secret = await database_sync_to_async(services.conversation_start)(language="zh-CN")
    fake_engine.script = ["您好", ",请问", "有什么", "可以帮您", "?", "请访问 https://a.com/x,y"]
    communicator, _ = await hello(conv.id, secret)
    await communicator.send_json_to({"type": "message", "content": "你好"})
    frames = await receive_until(communicator, "done")
    streamed = "".join(f["text"] for f in frames if f["type"] == "delta")
    assert streamed == frames[-1]["message"]["content"] == "您好，请问有什么可以帮您？请访问 https://a.com/x,y"
    await communicator.disconnect()


async def test_a_reply_stops_once_the_customer_has_left(conversation, fake_engine, in_process_generation, settings):
    import asyncio

    settings.CHAT_ABANDON_AFTER = 0.3
    fake_engine.script = ["word "] * 100
    engine = await database_sync_to_async(__import__("inference.engines", fromlist=["engine_get"]).engine_get)()
    engine.delay_s = 0.05  # a 5-second reply
    conv, secret = conversation
    communicator, _ = await hello(conv.id, secret)
    await communicator.send_json_to({"type": "message", "content": "tell me a long story"})
    frames = []
    while not any(f["type"] == "delta" for f in frames):
        frames.append(await communicator.receive_json_from(5))
    await communicator.disconnect()

    for _ in range(60):
        await asyncio.sleep(0.1)
        reply = await database_sync_to_async(Message.objects.get)(role=Message.Role.BOT)
        if reply.state != Message.State.STREAMING:
            break
    assert reply.state == Message.State.FAILED and reply.error == "customer left"
    assert 0 < len(reply.content.split()) < 100  # stopped part-way, not run to the end


async def test_a_reload_within_the_grace_period_keeps_the_reply_going(
    conversation, fake_engine, in_process_generation, settings
):
    settings.CHAT_ABANDON_AFTER = 30
    fake_engine.script = ["word "] * 30
    engine = await database_sync_to_async(__import__("inference.engines", fromlist=["engine_get"]).engine_get)()
    engine.delay_s = 0.05
    conv, secret = conversation
    first, _ = await hello(conv.id, secret)
    await first.send_json_to({"type": "message", "content": "tell me a story"})
    await first.receive_json_from(5)
    await first.disconnect()  # the page reloads
    second, frames = await hello(conv.id, secret, last_seq=1)
    if frames[-1]["type"] != "done":
        frames += await receive_until(second, "done")
    done = frames[-1]["message"]
    assert done["state"] == "complete" and len(done["content"].split()) == 30
    await second.disconnect()


@pytest.fixture
def site_conversation(settings):
    from chat.models import Site

    # The helpdesk is served from https://helpdesk.example.com: its Host is allowed and its pages are https.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "helpdesk.example.com"]
    settings.HTTPS = True

    site = Site.objects.create(name="Shop", allowed_origins="https://shop.example.com", messages_per_minute=3)
    conversation, secret = services.conversation_start(site=site, language="zh-CN")
    return site, conversation, secret


async def socket_from(conversation_id, origin: bytes, host: bytes = b"helpdesk.example.com"):
    communicator = WebsocketCommunicator(
        application, f"/ws/chat/{conversation_id}/", headers=[(b"origin", origin), (b"host", host)]
    )
    connected, _ = await communicator.connect()
    return communicator, connected


async def test_a_site_conversation_accepts_its_origins_and_the_helpdesks_own_pages_only(site_conversation):
    _site, conv, _secret = site_conversation
    for origin, expected in [
        (b"https://shop.example.com", True),
        (b"https://helpdesk.example.com", True),  # the hosted page, same host as the socket
        (b"https://evil.example", False),
        (b"https://shop.example.com.evil.example", False),
        (b"http://shop.example.com", False),
    ]:
        communicator, connected = await socket_from(conv.id, origin)
        assert connected is expected, origin
        await communicator.disconnect()


async def test_too_many_messages_are_refused_with_when_to_resend(site_conversation, fake_engine, in_process_generation):
    _site, conv, secret = site_conversation
    communicator, _connected = await socket_from(conv.id, b"https://shop.example.com")
    await communicator.send_json_to({"type": "hello", "secret": secret})
    assert (await communicator.receive_json_from())["type"] == "ready"
    for n in range(3):
        await communicator.send_json_to({"type": "message", "content": f"question {n}", "client_id": f"c{n}"})
        await receive_until(communicator, "ack")
    await communicator.send_json_to({"type": "message", "content": "one more", "client_id": "c3"})
    frame = (await receive_until(communicator, "error"))[-1]
    assert frame["code"] == "rate_limited" and frame["client_id"] == "c3" and 1 <= frame["retry_after"] <= 60
    contents = await database_sync_to_async(list)(
        Message.objects.filter(conversation=conv, role="customer").values_list("content", flat=True)
    )
    assert contents == ["question 0", "question 1", "question 2"]
    await communicator.disconnect()


async def test_the_customer_ends_the_chat_and_is_asked_to_rate_in_their_language(site_conversation):
    _site, conv, secret = site_conversation
    communicator, _connected = await socket_from(conv.id, b"https://shop.example.com")
    await communicator.send_json_to({"type": "hello", "secret": secret})
    ready = await communicator.receive_json_from()
    assert ready["conversation"]["rated"] is False
    await communicator.send_json_to({"type": "resolve"})
    frames = await receive_until(communicator, "status")
    system = next(f["message"] for f in frames if f["type"] == "message")
    assert system["role"] == "system" and system["content"] == "您已结束对话。请为我们的服务评分。"
    assert frames[-1]["status"] == "resolved"
    await communicator.send_json_to({"type": "rate", "score": 5})
    assert (await receive_until(communicator, "rated"))[-1]["type"] == "rated"
    await communicator.send_json_to({"type": "rate", "score": 1})
    assert (await receive_until(communicator, "error"))[-1]["code"] == "already_rated"
    await communicator.disconnect()
    again, _ = await socket_from(conv.id, b"https://shop.example.com")
    await again.send_json_to({"type": "hello", "secret": secret})
    assert (await again.receive_json_from())["conversation"]["rated"] is True
    await again.disconnect()


async def test_with_the_bot_off_the_first_message_goes_to_the_agents(site_conversation):
    site, conv, secret = site_conversation
    site.bot_enabled = False
    await database_sync_to_async(site.save)()
    communicator, _connected = await socket_from(conv.id, b"https://shop.example.com")
    await communicator.send_json_to({"type": "hello", "secret": secret})
    await communicator.receive_json_from()
    await communicator.send_json_to({"type": "message", "content": "Hello?", "client_id": "x"})
    frames = await receive_until(communicator, "status")
    assert frames[-1]["status"] == "queued"
    await database_sync_to_async(conv.refresh_from_db)()
    assert conv.handoff_reason == "bot_off"
    await communicator.disconnect()
