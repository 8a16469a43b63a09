"""The console's queue over the real socket and Redis channel layer: the whole list when an agent connects, then one
entry per change (computed once for every console), and the whole list again now and then."""

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from chat import services as chat_services
from chat.models import HandoffReason
from helpdesk import consumers, services
from helpdesk.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def agent_cookie(username: str) -> bytes:
    user = get_user_model().objects.create_user(username, password="pw-agent-123")
    user.user_permissions.add(Permission.objects.get(codename="use_console"))
    client = Client()
    client.login(username=username, password="pw-agent-123")
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def console(username: str) -> WebsocketCommunicator:
    cookie = await agent_cookie(username)
    communicator = WebsocketCommunicator(
        application,
        "/ws/console/",
        headers=[(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1"), (b"cookie", cookie)],
    )
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from())["type"] == "presence"
    return communicator


async def next_of(communicator: WebsocketCommunicator, *types: str) -> dict:
    while True:
        frame = await communicator.receive_json_from(5)
        if frame["type"] in types:
            return frame


@database_sync_to_async
def handed_off(customer: str):
    conversation, _ = chat_services.conversation_start(customer_name=customer)
    chat_services.message_post_customer(conversation_id=conversation.id, content="I need a person")
    chat_services.conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.CUSTOMER_REQUEST)
    return conversation


async def test_each_console_hears_each_change_as_one_entry(settings):
    ann, bob = await console("ann"), await console("bob")
    assert (await next_of(ann, "queue"))["conversations"] == []
    assert (await next_of(bob, "queue"))["conversations"] == []

    conversation = await handed_off("Li Lei")
    for agent in (ann, bob):
        item = (await next_of(agent, "queue_item"))["item"]
        assert (item["id"], item["status"], item["customer"], item["subject"]) == (
            str(conversation.id),
            "queued",
            "Li Lei",
            "I need a person",
        )

    bob_user = await database_sync_to_async(get_user_model().objects.get)(username="bob")
    assert await database_sync_to_async(services.conversation_claim)(conversation_id=conversation.id, agent=bob_user)
    assert (await next_of(ann, "queue_item", "queue_remove")) == {
        "type": "queue_remove",
        "conversation": str(conversation.id),
    }
    mine = (await next_of(bob, "queue_item", "queue_remove"))["item"]
    assert (mine["status"], mine["assignee"]) == ("agent", "bob")

    await database_sync_to_async(chat_services.conversation_hand_back)(conversation_id=conversation.id, agent=bob_user)
    assert (await next_of(bob, "queue_item", "queue_remove"))["type"] == "queue_remove"
    await ann.disconnect()
    await bob.disconnect()


async def test_the_whole_queue_is_sent_again_now_and_then_so_a_lost_announcement_is_made_good(monkeypatch):
    monkeypatch.setattr(consumers, "CONSOLE_QUEUE_REFRESH_S", 0.5)
    ann = await console("ann")
    assert (await next_of(ann, "queue"))["conversations"] == []
    monkeypatch.setattr(services, "_queue_entry_send", lambda conversation_id: None)  # the channel layer lost it
    conversation = await handed_off("Ann's customer")
    frame = await next_of(ann, "queue", "queue_item")
    assert frame["type"] == "queue"  # no entry came; the refresh lists it
    assert [entry["id"] for entry in frame["conversations"]] == [str(conversation.id)]
    await ann.disconnect()
