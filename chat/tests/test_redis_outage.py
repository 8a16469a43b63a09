"""Redis down while PostgreSQL is up: what only saves work or carries news must not fail what it serves.

The session cache, the customer's presence and the bot-failing flag live in Redis; the messages live in the
database. tests/test_faults.py restarts a real Redis under a streaming reply.
"""

import pytest
import redis.exceptions

from chat import availability, presence, services, session_cache
from chat.models import Message
from chat.reply import reply_generate
from chat.services import replies

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ungrounded")]


class RedisDown:
    """Django's cache while Redis refuses connections: every call raises as redis-py does."""

    def __getattr__(self, name):
        def refused(*args, **kwargs):
            raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

        return refused


def test_a_stored_message_is_answered_even_if_the_session_cache_fails_after_commit(
    monkeypatch, django_capture_on_commit_callbacks
):
    """The cache's update runs after commit, before the reply's enqueue: raising there skipped the enqueue, so an
    acknowledged message was never answered."""
    conversation, _ = services.conversation_start()
    enqueued = []
    monkeypatch.setattr(replies, "reply_enqueue", lambda **kwargs: enqueued.append(kwargs["message_id"]))
    monkeypatch.setattr(session_cache, "cache", RedisDown())
    with django_capture_on_commit_callbacks(execute=True):
        message, created = services.message_post_customer(
            conversation_id=conversation.id, content="Where is my parcel?", client_id="c-1"
        )
    assert created and enqueued == [message.pk]


def test_the_history_comes_from_the_database_while_the_cache_is_down(monkeypatch):
    conversation, _ = services.conversation_start()
    first, _ = services.message_post_customer(conversation_id=conversation.id, content="Hello")
    monkeypatch.setattr(session_cache, "cache", RedisDown())
    turns, cached = session_cache.turns_before(conversation_id=conversation.id, seq=first.seq + 1)
    assert turns == [("customer", "Hello")] and cached is False


def test_a_reply_is_not_stopped_when_presence_cannot_be_read(monkeypatch):
    monkeypatch.setattr(presence, "cache", RedisDown())
    conversation, _ = services.conversation_start()
    assert presence.customer_gone(conversation.id) is False
    presence.customer_disconnected(conversation.id)  # noted nowhere, and no error


def test_a_reply_completes_while_redis_is_down(fake_engine, monkeypatch):
    """Redis failed the reply after the engine had answered (the bot-recovered flag), leaving it streaming forever."""
    conversation, _ = services.conversation_start()
    message, _ = services.message_post_customer(conversation_id=conversation.id, content="Where is my parcel?")
    for module in (availability, presence, session_cache):
        monkeypatch.setattr(module, "cache", RedisDown())
    reply = reply_generate(customer_message_id=message.pk)
    assert reply is not None and reply.content == "Hello there!"
    stored = Message.objects.get(pk=reply.pk)
    assert stored.state == Message.State.COMPLETE and stored.content == "Hello there!"


def test_a_failed_engine_is_recorded_while_redis_is_down(fake_engine, monkeypatch):
    from inference.engines import EngineError

    fake_engine.script = [EngineError("server gone")]
    conversation, _ = services.conversation_start()
    message, _ = services.message_post_customer(conversation_id=conversation.id, content="Where is my parcel?")
    monkeypatch.setattr(availability, "cache", RedisDown())
    reply_generate(customer_message_id=message.pk)  # the reply fails and the conversation goes to the agents
    states = list(Message.objects.filter(conversation=conversation, role="bot").values_list("state", flat=True))
    assert states == [Message.State.FAILED]
