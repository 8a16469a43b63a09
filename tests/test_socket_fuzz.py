"""Fuzzing both websockets with hypothesis: frames of every known type with fields of the wrong types, unknown types,
malformed and binary frames, sizes around the limits, deep nesting and awkward unicode (unpaired surrogates, RTL,
emoji, NUL), sent through channels' WebsocketCommunicator to the real ASGI application on PostgreSQL and Redis.

After each example: no exception escaped the consumer, the socket still answers a ping with a pong (or closed with
a documented code), every acknowledged message is stored under the sequence number it was acknowledged with, and
the conversation's sequence numbers are whole (each once, none above the conversation's counter).
"""

import json
import os

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chat import services
from chat.consumers import CLOSE_ACCESS_DENIED, CLOSE_HELLO_REQUIRED, CustomerConsumer
from chat.frame_limits import FrameLimit
from chat.models import Conversation, Message, Site
from helpdesk.asgi import application
from helpdesk.consumers import AgentConsumer

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("SOCKET_FUZZ_EXAMPLES", "200"))
FUZZ = hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
HEADERS = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")]
# Codes a customer socket may close with, as chat/consumers.py documents them: no hello first, wrong secret.
DOCUMENTED_CLOSES = {CLOSE_HELLO_REQUIRED, CLOSE_ACCESS_DENIED}

awkward_text = st.text(
    alphabet=st.one_of(
        st.characters(),  # any code point but surrogates
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),  # unpaired surrogates
        st.sampled_from(["\x00", "\u202e", "\u200f", "\u05d0", "\ufeff", "👍", "\U0001f3fd", "\U0001f600", "長", "\n"]),
    ),
    max_size=60,
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    awkward_text,
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(awkward_text, inner, max_size=4), max_leaves=12
)


def frames_of(types: list[str], fields: list[str]):
    """Frames as the socket receives them: ("text", str) or ("bytes", bytes)."""
    known = st.builds(
        lambda kind, values: {"type": kind, **values},
        st.sampled_from(types),
        st.dictionaries(st.sampled_from(fields), json_values, max_size=len(fields)),
    )
    unknown = st.dictionaries(st.sampled_from(["type", *fields]) | awkward_text, json_values, max_size=4)
    as_json = st.one_of(known, known, unknown, json_values).map(lambda value: ("text", json.dumps(value)))
    raw = st.one_of(
        # (channels' test client cannot send an empty frame)
        awkward_text.filter(bool).map(lambda text: ("text", text)),
        st.binary(min_size=1, max_size=64).map(lambda data: ("bytes", data)),
        st.integers(1, 5000).map(lambda depth: ("text", "[" * depth + "]" * depth)),
        st.integers(1, 5000).map(lambda depth: ("text", '{"a":' * depth + "1" + "}" * depth)),
        # around the customer socket's limit (CHAT_MAX_MESSAGE_CHARS * 6 + 1024 characters)
        st.integers(24_000, 26_000).map(lambda n: ("text", json.dumps({"type": "message", "content": "x" * n}))),
    )
    return st.lists(st.one_of(as_json, as_json, raw), min_size=1, max_size=5)


async def send_frame(communicator, frame) -> None:
    kind, data = frame
    await communicator.send_to(**({"text_data": data} if kind == "text" else {"bytes_data": data}))


async def until_pong(communicator) -> tuple[list[dict], dict | None]:
    """Frames up to the pong that answers our ping, or the close that came instead."""
    await communicator.send_json_to({"type": "ping"})
    frames = []
    while True:
        output = await communicator.receive_output(10)  # re-raises whatever escaped the consumer
        if output["type"] == "websocket.close":
            return frames, output
        frame = json.loads(output["text"])
        if frame == {"type": "pong"}:
            return frames, None
        assert frame["type"] in SERVER_FRAME_TYPES, frame
        if frame["type"] == "error":
            assert isinstance(frame["code"], str) and frame["code"] and isinstance(frame["message"], str)
        frames.append(frame)


SERVER_FRAME_TYPES = {
    "ready", "ack", "message", "delta", "done", "status", "typing", "error", "contact_saved", "contact_request",
    "rated", "withdrawn", "queue", "queue_item", "queue_remove", "conversation", "history", "note", "presence",
    "ticket", "summary", "suggestion",
}  # fmt: skip


def sequences_whole(conversation_id, acked: dict[str, int]) -> None:
    conversation = Conversation.objects.get(pk=conversation_id)
    seqs = list(Message.objects.filter(conversation_id=conversation_id).values_list("seq", flat=True))
    assert len(seqs) == len(set(seqs)) and all(1 <= seq <= conversation.last_seq for seq in seqs), seqs
    stored = dict(
        Message.objects.filter(conversation_id=conversation_id, role="customer")
        .exclude(client_id="")
        .values_list("client_id", "seq")
    )
    for client_id, seq in acked.items():  # an accepted message is never lost
        assert stored.get(client_id) == seq, (client_id, seq)


@pytest.fixture
def no_frame_limits(monkeypatch):
    """The limits have their own tests; here they would only turn most examples into rate_limited errors."""
    for consumer in (CustomerConsumer, AgentConsumer):
        limits = {kind: FrameLimit(10**6, 1) for kind in consumer.frame_limits}
        monkeypatch.setattr(consumer, "frame_limits", limits)


@pytest.fixture
def customer_conversation():
    # The bot is off, so messages go to the agents' queue rather than to a model.
    site = Site.objects.create(name="Fuzz", allowed_origins="https://shop.example.com", bot_enabled=False)
    return services.conversation_start(site=site, language="en")


CUSTOMER_TYPES = ["hello", "message", "ping", "typing", "rate", "contact", "resolve"]
CUSTOMER_FIELDS = ["secret", "last_seq", "content", "client_id", "on", "score", "comment", "name", "email"]


@FUZZ
@given(frames=frames_of(CUSTOMER_TYPES, CUSTOMER_FIELDS), say_hello=st.booleans())
def test_customer_socket_survives_any_frames(no_frame_limits, customer_conversation, frames, say_hello):
    conversation, secret = customer_conversation

    async def scenario() -> dict[str, int]:
        headers = [(b"origin", b"https://shop.example.com"), (b"host", b"127.0.0.1:8000")]
        communicator = WebsocketCommunicator(application, f"/ws/chat/{conversation.id}/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        if say_hello:
            await communicator.send_json_to({"type": "hello", "secret": secret, "last_seq": 10**9})
            assert (await communicator.receive_json_from())["type"] == "ready"
        acked: dict[str, int] = {}
        for frame in frames:
            await send_frame(communicator, frame)
            replies, closed = await until_pong(communicator)
            acked.update({r["client_id"]: r["seq"] for r in replies if r["type"] == "ack"})
            if closed is not None:
                assert not say_hello and closed["code"] in DOCUMENTED_CLOSES, closed
                break
        await communicator.disconnect()  # as the server does after a close: the consumer ends, nothing left running
        return acked

    acked = async_to_sync(scenario)()
    sequences_whole(conversation.id, acked)


@pytest.fixture
def agent_with_conversation():
    user = get_user_model().objects.create_user("fuzzer", password="pw-agent-123")
    user.user_permissions.add(Permission.objects.get(codename="use_console"))
    client = Client()
    client.login(username="fuzzer", password="pw-agent-123")
    conversation, _ = services.conversation_start(customer_name="Li Lei")
    services.message_post_customer(conversation_id=conversation.id, content="Hello?")
    Conversation.objects.filter(pk=conversation.pk).update(
        status=Conversation.Status.AGENT, assignee=user, handed_off_at=timezone.now()
    )
    return f"sessionid={client.cookies['sessionid'].value}".encode(), conversation


CONSOLE_TYPES = [*AgentConsumer.FRAME_TYPES]
CONSOLE_FIELDS = ["conversation", "content", "client_id", "on", "to", "status", "priority", "tags", "before_seq"]


@FUZZ
@given(frames=frames_of(CONSOLE_TYPES, CONSOLE_FIELDS), about_ours=st.booleans())
def test_console_socket_survives_any_frames(no_frame_limits, agent_with_conversation, frames, about_ours):
    cookie, conversation = agent_with_conversation
    if about_ours:  # most fuzzed ids name no conversation; these name the agent's own
        frames = [
            ("text", json.dumps({**value, "conversation": str(conversation.id)}))
            if kind == "text" and isinstance(value := _loads(data), dict)
            else (kind, data)
            for kind, data in frames
        ]

    async def scenario() -> None:
        communicator = WebsocketCommunicator(application, "/ws/console/", headers=[*HEADERS, (b"cookie", cookie)])
        connected, _ = await communicator.connect()
        assert connected
        for frame in frames:
            await send_frame(communicator, frame)
            _replies, closed = await until_pong(communicator)
            assert closed is None, closed
        await communicator.disconnect()

    async_to_sync(scenario)()
    sequences_whole(conversation.id, {})


def _loads(data: str):
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None
