"""The widget's socket and email: the transcript on request (an error without an address), and the customer's
last-seen time kept as sockets open and close (it decides which agent replies are emailed)."""

import pytest
from channels.db import database_sync_to_async
from django.core.cache import cache

from chat import dispatch, presence, services
from chat.models import Conversation
from chat.tests.test_consumers import hello

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("ungrounded")]


@pytest.fixture
def enqueued(monkeypatch):
    calls = []
    monkeypatch.setattr(dispatch, "task_enqueue", lambda task, *args: calls.append((task.name, args)))
    return calls


async def test_the_transcript_frame_queues_the_email_or_says_no_address_is_known(enqueued):
    conversation, secret = await database_sync_to_async(services.conversation_start)(language="en")
    communicator, _ = await hello(conversation.id, secret)
    await communicator.send_json_to({"type": "transcript"})
    error = await communicator.receive_json_from()
    assert (error["type"], error["code"]) == ("error", "no_email")
    assert enqueued == []

    await communicator.send_json_to({"type": "contact", "name": "Ann", "email": "ann@example.com"})
    while (await communicator.receive_json_from())["type"] != "contact_saved":
        pass
    await communicator.send_json_to({"type": "transcript"})
    frame = await communicator.receive_json_from()
    while frame["type"] == "message":  # the system line confirming the contact details
        frame = await communicator.receive_json_from()
    assert frame == {"type": "transcript_sent"}
    assert enqueued == [("chat.tasks.transcript_email_task", (str(conversation.id),))]
    await communicator.disconnect()


async def test_the_customer_is_last_seen_when_their_socket_closes():
    conversation, secret = await database_sync_to_async(services.conversation_start)(language="en")
    communicator, _ = await hello(conversation.id, secret)
    opened = (await database_sync_to_async(Conversation.objects.get)(pk=conversation.id)).customer_last_seen_at
    assert opened is None  # a hello writes nothing: while a socket is open, nothing is emailed anyway
    await communicator.disconnect()
    closed = (await database_sync_to_async(Conversation.objects.get)(pk=conversation.id)).customer_last_seen_at
    assert closed is not None and closed > conversation.created_at


async def test_a_ping_renews_the_customers_presence_even_after_it_ran_out():
    conversation, secret = await database_sync_to_async(services.conversation_start)(language="en")
    communicator, _ = await hello(conversation.id, secret)
    online = database_sync_to_async(presence.customer_online)
    assert await online(conversation.id)
    await database_sync_to_async(cache.delete)(f"chat:online:{conversation.id}")  # as after a long sleep
    assert not await online(conversation.id)
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from() == {"type": "pong"}
    assert await online(conversation.id)
    await communicator.disconnect()
    assert not await online(conversation.id)
