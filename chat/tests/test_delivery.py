"""No frame is lost silently: a customer socket notices what the channel layer dropped and makes it good from the
database on the same socket (chat.delivery), and the drops are counted.

The drops are made by sending a conversation's events to its group with pieces left out, as a full inbox would;
the real channel layer's own drop is in the last test."""

import asyncio
import logging

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from chat import delivery, services
from chat.delivery import Delivery
from chat.metrics import CHANNEL_LAYER_DROPPED, FRAMES_MISSED
from chat.models import Conversation, Message
from chat.serializers import message_to_dict
from chat.tests.test_consumers import hello, receive_until

pytestmark = [pytest.mark.django_db(transaction=True)]

QUIET_S = 0.3


@pytest.fixture(autouse=True)
def short_quiet_period(monkeypatch):
    monkeypatch.setattr(delivery, "STREAM_QUIET_S", QUIET_S)
    monkeypatch.setattr("chat.consumers.STREAM_QUIET_S", QUIET_S)


def missed(kind: str) -> float:
    return FRAMES_MISSED.labels(kind=kind)._value.get()


@database_sync_to_async
def started_conversation() -> tuple[Conversation, str]:
    return services.conversation_start(language="en", region="Europe/Paris")


@database_sync_to_async
def message_add(conversation: Conversation, seq: int, role: str, content: str = "", state: str = "complete") -> dict:
    message = Message.objects.create(conversation=conversation, seq=seq, role=role, content=content, state=state)
    Conversation.objects.filter(pk=conversation.pk).update(last_seq=seq)
    return message_to_dict(message)


@database_sync_to_async
def reply_finish(conversation: Conversation, seq: int, content: str) -> None:
    Message.objects.filter(conversation=conversation, seq=seq).update(
        content=content, state=Message.State.COMPLETE, completed_at=timezone.now()
    )


async def group_send(conversation: Conversation, event: dict) -> None:
    await get_channel_layer().group_send(conversation.group_name, event)


def delta(conversation: Conversation, seq: int, offset: int, text: str) -> dict:
    return {"type": "chat.delta", "conversation": str(conversation.id), "seq": seq, "text": text, "offset": offset}


async def test_a_lost_piece_is_counted_and_the_lost_end_comes_from_the_database():
    conversation, secret = await started_conversation()
    socket, _ = await hello(conversation.id, secret)
    start = await message_add(conversation, 1, "bot", state="streaming")
    await group_send(conversation, {"type": "chat.message", "message": start})
    assert (await socket.receive_json_from())["message"]["state"] == "streaming"
    before_delta, before_done = missed("delta"), missed("done")

    await group_send(conversation, delta(conversation, 1, 0, "Standard "))
    # "shipping " (offset 9) is lost on the way
    await group_send(conversation, delta(conversation, 1, 18, "takes 3 days."))
    frames = [await socket.receive_json_from(), await socket.receive_json_from()]
    assert [(f["offset"], f["text"]) for f in frames] == [(0, "Standard "), (18, "takes 3 days.")]
    assert missed("delta") == before_delta + 1

    # The reply ends, and its `done` is lost too: the socket reads it from the database once the reply falls quiet.
    await reply_finish(conversation, 1, "Standard shipping takes 3 days.")
    done = await socket.receive_json_from(timeout=QUIET_S * 10)
    assert done["type"] == "done"
    assert done["message"]["seq"] == 1 and done["message"]["content"] == "Standard shipping takes 3 days."
    assert missed("done") == before_done + 1
    assert await socket.receive_nothing(QUIET_S * 3)  # sent once, and the watch stops with the stream
    await socket.disconnect()


async def test_a_healthy_stream_is_neither_counted_nor_sent_twice():
    conversation, secret = await started_conversation()
    socket, _ = await hello(conversation.id, secret)
    start = await message_add(conversation, 1, "bot", state="streaming")
    counts = [missed(kind) for kind in ("message", "delta", "done")]
    await group_send(conversation, {"type": "chat.message", "message": start})
    await group_send(conversation, delta(conversation, 1, 0, "Hello "))
    await asyncio.sleep(QUIET_S * 2)  # quiet for a while (a slow engine): the database says it still streams
    await group_send(conversation, delta(conversation, 1, 6, "there."))
    await reply_finish(conversation, 1, "Hello there.")
    finished = await database_sync_to_async(Message.objects.get)(conversation=conversation, seq=1)
    await group_send(conversation, {"type": "chat.done", "message": message_to_dict(finished)})
    frames = await receive_until(socket, "done")
    assert [f["type"] for f in frames] == ["message", "delta", "delta", "done"]
    assert await socket.receive_nothing(QUIET_S * 3)
    assert [missed(kind) for kind in ("message", "delta", "done")] == counts
    await socket.disconnect()


async def test_a_reply_whose_start_was_lost_is_sent_from_the_database_before_its_piece():
    conversation, secret = await started_conversation()
    socket, _ = await hello(conversation.id, secret)
    await message_add(conversation, 1, "bot", state="streaming")
    before = missed("message")
    await group_send(conversation, delta(conversation, 1, 7, "world"))  # the start and the first piece were lost
    first, second = await socket.receive_json_from(), await socket.receive_json_from()
    assert first["type"] == "message" and first["message"]["seq"] == 1 and first["message"]["state"] == "streaming"
    assert second == {"type": "delta", "seq": 1, "text": "world", "offset": 7}  # the widget sees the gap by offset
    assert missed("message") == before + 1
    await socket.disconnect()


async def test_a_lost_agent_message_is_read_again_when_the_next_one_skips_it():
    conversation, secret = await started_conversation()
    socket, _ = await hello(conversation.id, secret)
    await message_add(conversation, 1, "agent", "Hi, I am Ann.")
    second = await message_add(conversation, 2, "agent", "Your refund was sent today.")
    before = missed("message")
    await group_send(conversation, {"type": "chat.message", "message": second})  # seq 1's event was lost
    frames = [await socket.receive_json_from(), await socket.receive_json_from()]
    assert [(f["type"], f["message"]["seq"], f["message"]["content"]) for f in frames] == [
        ("message", 1, "Hi, I am Ann."),
        ("message", 2, "Your refund was sent today."),
    ]
    assert await socket.receive_nothing(0.3)
    assert missed("message") == before + 1
    await socket.disconnect()


async def test_a_private_note_between_two_messages_is_never_sent():
    conversation, secret = await started_conversation()
    socket, _ = await hello(conversation.id, secret)
    await message_add(conversation, 1, "note", "customer is a VIP")
    second = await message_add(conversation, 2, "agent", "Hello!")
    await group_send(conversation, {"type": "chat.message", "message": second})
    frame = await socket.receive_json_from()
    assert frame["message"]["seq"] == 2 and frame["message"]["content"] == "Hello!"
    assert await socket.receive_nothing(0.3)
    await socket.disconnect()


async def test_a_reply_withdrawn_while_its_news_was_lost_is_removed():
    conversation, secret = await started_conversation()
    socket, _ = await hello(conversation.id, secret)
    start = await message_add(conversation, 1, "bot", state="streaming")
    await group_send(conversation, {"type": "chat.message", "message": start})
    await socket.receive_json_from()
    await database_sync_to_async(Message.objects.filter(conversation=conversation, seq=1).delete)()
    assert await socket.receive_json_from(timeout=QUIET_S * 10) == {"type": "withdrawn", "seq": 1}
    await socket.disconnect()


def test_delivery_tracks_offsets_per_reply():
    tracked = Delivery(sent_seq=3)
    tracked.message_sent({"seq": 4, "state": "streaming", "content": ""}, now=0)
    assert tracked.delta_missed(4, 0, "abc", now=1) is None
    assert tracked.delta_missed(4, 3, "de", now=2) is None
    assert tracked.delta_missed(4, 9, "x", now=3) == "delta"
    assert tracked.delta_missed(4, 10, "y", now=4) is None  # after a gap the client waits for the end: no recount
    assert tracked.quiet(now=4 + delivery.STREAM_QUIET_S / 2) == []
    assert tracked.quiet(now=5 + delivery.STREAM_QUIET_S) == [4]
    tracked.message_sent({"seq": 4, "state": "complete", "content": "abcde…xy"}, now=5)
    assert tracked.streams == {} and tracked.sent_seq == 4
    assert tracked.message_skips(5) is False and tracked.message_skips(6) is True


def test_a_streaming_reply_read_from_the_database_is_watched_but_its_pieces_are_not_checked():
    tracked = Delivery()
    tracked.message_sent({"seq": 2, "state": "streaming", "content": ""}, now=0, from_database=True)
    assert tracked.delta_missed(2, 40, "more", now=1) is None
    assert 2 in tracked.streams


def test_the_channel_layers_own_drop_notice_is_counted_and_said_as_a_warning(caplog):
    before = CHANNEL_LAYER_DROPPED._value.get()
    with caplog.at_level(logging.INFO):
        logging.getLogger("channels_redis.core").info(
            "%s of %s channels over capacity in group %s", 3, 5, "conversation-abc"
        )
    assert CHANNEL_LAYER_DROPPED._value.get() == before + 3
    assert any(r.levelno == logging.WARNING and "news dropped" in r.getMessage() for r in caplog.records)


async def test_a_real_redis_channel_layer_over_capacity_drops_and_the_drop_is_counted(settings):
    """channels-redis itself, with an inbox of 2: the third message to the group is dropped, and counted."""
    from channels_redis.core import RedisChannelLayer

    host = settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]
    layer = RedisChannelLayer(hosts=[host], capacity=2, prefix=f"drop-test-{id(settings)}")
    channel = await layer.new_channel()
    await layer.group_add("drops", channel)
    before = CHANNEL_LAYER_DROPPED._value.get()
    try:
        for number in range(3):
            await layer.group_send("drops", {"type": "chat.delta", "n": number})
        assert CHANNEL_LAYER_DROPPED._value.get() == before + 1
        received = [await layer.receive(channel), await layer.receive(channel)]
        assert [m["n"] for m in received] == [0, 1]
    finally:
        await layer.flush()
        await layer.close_pools()
