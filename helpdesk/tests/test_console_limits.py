"""The console socket's limits: frames per type and size, pages of a long conversation, a bounded queue, and the exact
origin and Host of the helpdesk's own pages."""

import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from chat import services as chat_services
from chat.frame_limits import CONSOLE_FRAME_LIMITS
from chat.metrics import RATE_LIMITED
from chat.models import Conversation, HandoffReason, Message
from helpdesk import selectors
from helpdesk.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

HOST = (b"host", b"127.0.0.1:8000")
ORIGIN = (b"origin", b"http://127.0.0.1:8000")


@database_sync_to_async
def agent_cookie(username: str = "ann") -> tuple:
    user = get_user_model().objects.create_user(username, password="pw-agent-123")
    user.user_permissions.add(Permission.objects.get(codename="use_console"))
    client = Client()
    client.login(username=username, password="pw-agent-123")
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


async def console(cookie, headers=(ORIGIN, HOST)) -> tuple[WebsocketCommunicator, bool]:
    communicator = WebsocketCommunicator(application, "/ws/console/", headers=[*headers, cookie])
    connected, _ = await communicator.connect()
    return communicator, connected


async def next_of(communicator, *types: str, timeout: float = 5) -> dict:
    while True:
        frame = await communicator.receive_json_from(timeout)
        if frame["type"] in types:
            return frame


@database_sync_to_async
def assigned_conversation(username: str, messages: int, content: str = "") -> Conversation:
    """A conversation assigned to `username` with `messages` stored messages (customer, bot and notes in turn)."""
    conversation, _ = chat_services.conversation_start(customer_name="Li Lei")
    agent = get_user_model().objects.get(username=username)
    Conversation.objects.filter(pk=conversation.pk).update(
        status=Conversation.Status.AGENT, assignee=agent, handed_off_at=timezone.now()
    )
    roles = ["customer", "bot", "note"]
    Message.objects.bulk_create(
        Message(
            conversation=conversation,
            seq=n,
            role=roles[n % 3],
            content=content or f"message {n}",
            state="complete",
            author=agent if roles[n % 3] == "note" else None,
        )
        for n in range(1, messages + 1)
    )
    Conversation.objects.filter(pk=conversation.pk).update(last_seq=messages)
    return conversation


async def test_a_conversation_of_20000_messages_opens_in_pages(settings):
    cookie = await agent_cookie()
    conversation = await assigned_conversation("ann", 20_000)
    communicator, connected = await console(cookie)
    assert connected
    await next_of(communicator, "queue")
    await communicator.send_json_to({"type": "open", "conversation": str(conversation.id)})
    output = await communicator.receive_output(10)
    assert len(output["text"].encode()) < 512 * 1024  # far below the socket's 1 MB
    opened = json.loads(output["text"])["conversation"]
    seqs = [m["seq"] for m in opened["messages"]]
    assert opened["has_more"] is True and seqs == sorted(seqs) and seqs[-1] == 20_000 and len(seqs) > 1
    seen = list(seqs)
    for _ in range(3):  # older pages, each just before the oldest one shown
        await communicator.send_json_to(
            {"type": "history", "conversation": str(conversation.id), "before_seq": seen[0]}
        )
        output = await communicator.receive_output(10)
        assert len(output["text"].encode()) < 512 * 1024
        page = json.loads(output["text"])
        assert page["type"] == "history" and page["has_more"] is True
        older = [m["seq"] for m in page["messages"]]
        assert older and older == sorted(older) and older[-1] == seen[0] - 1
        seen = older + seen
    assert seen == list(range(seen[0], 20_001))  # nothing skipped, nothing twice
    await communicator.send_json_to({"type": "history", "conversation": str(conversation.id), "before_seq": 3})
    last = await next_of(communicator, "history")
    assert [m["seq"] for m in last["messages"]] == [1, 2] and last["has_more"] is False
    await communicator.disconnect()


async def test_a_page_of_long_messages_is_cut_by_its_size():
    cookie = await agent_cookie()
    conversation = await assigned_conversation("ann", 150, content="长" * 4000)  # 12 KB of UTF-8 each
    communicator, _ = await console(cookie)
    await communicator.send_json_to({"type": "open", "conversation": str(conversation.id)})
    while (output := await communicator.receive_output(10)) and '"conversation"' not in output["text"][:30]:
        pass
    assert len(output["text"].encode()) <= selectors.CONSOLE_PAGE_MAX_BYTES + 20_000
    opened = json.loads(output["text"])["conversation"]
    assert opened["has_more"] is True and 10 < len(opened["messages"]) < 100
    await communicator.disconnect()


async def test_a_short_conversation_opens_whole_and_bad_history_frames_are_errors(settings):
    settings.CONSOLE_HISTORY_PAGE = 100
    cookie = await agent_cookie()
    conversation = await assigned_conversation("ann", 30)
    communicator, _ = await console(cookie)
    await communicator.send_json_to({"type": "open", "conversation": str(conversation.id)})
    opened = (await next_of(communicator, "conversation"))["conversation"]
    assert [m["seq"] for m in opened["messages"]] == list(range(1, 31)) and opened["has_more"] is False
    for before_seq in ("10", None, True, -1, 0, 2**40, 1.5):
        await communicator.send_json_to(
            {"type": "history", "conversation": str(conversation.id), "before_seq": before_seq}
        )
        assert (await next_of(communicator, "error"))["code"] == "invalid_frame", before_seq
    await communicator.disconnect()


async def test_console_frames_over_the_size_limit_are_refused_unread(settings):
    cookie = await agent_cookie()
    communicator, _ = await console(cookie)
    await next_of(communicator, "queue")
    await communicator.send_to(text_data=json.dumps({"type": "note", "content": "x" * 200_000}))
    assert (await next_of(communicator, "error"))["code"] == "frame_too_large"
    await communicator.send_to(bytes_data=b"\x00\x01")
    assert (await next_of(communicator, "error"))["code"] == "invalid_frame"
    await communicator.send_json_to({"type": "ping"})
    assert (await next_of(communicator, "pong", "error"))["type"] == "pong"
    await communicator.disconnect()


async def test_console_typing_past_its_limit_is_refused_and_counted():
    cookie = await agent_cookie()
    conversation = await assigned_conversation("ann", 1)
    communicator, _ = await console(cookie)
    await next_of(communicator, "queue")
    before = RATE_LIMITED.labels(channel="console", limit="typing")._value.get()
    for _ in range(CONSOLE_FRAME_LIMITS["typing"].count):
        await communicator.send_json_to({"type": "typing", "conversation": str(conversation.id), "on": True})
    await communicator.send_json_to({"type": "typing", "conversation": str(conversation.id), "on": True})
    refused = await next_of(communicator, "error")
    assert refused["code"] == "rate_limited" and refused["for"] == "typing" and refused["retry_after"] >= 1
    assert RATE_LIMITED.labels(channel="console", limit="typing")._value.get() == before + 1
    await communicator.disconnect()


@database_sync_to_async
def queued_conversations(count: int) -> None:
    for n in range(count):
        conversation, _ = chat_services.conversation_start(customer_name=f"Customer {n}")
        chat_services.conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.CUSTOMER_REQUEST)


async def test_the_queue_frame_is_bounded_but_keeps_the_agents_own(settings, monkeypatch):
    monkeypatch.setattr(selectors, "CONSOLE_QUEUE_MAX", 5)
    cookie = await agent_cookie()
    await queued_conversations(8)
    own = await assigned_conversation("ann", 1)
    communicator, _ = await console(cookie)
    queue = (await next_of(communicator, "queue"))["conversations"]
    assert len(queue) == 5 and str(own.id) in {entry["id"] for entry in queue}
    await communicator.disconnect()


@pytest.mark.parametrize(
    "headers, expected",
    [
        ((ORIGIN, HOST), True),
        (((b"origin", b"https://127.0.0.1:8000"), HOST), False),  # wrong scheme
        (((b"origin", b"http://127.0.0.1:9000"), HOST), False),  # wrong port
        (((b"origin", b"http://127.0.0.1"), HOST), False),
        (((b"origin", b"http://evil.example"), (b"host", b"evil.example")), False),  # forged pair, Host not allowed
        ((ORIGIN,), False),  # no Host
        ((HOST,), False),  # no Origin
        (((b"origin", b"https://console.example.com"), HOST), True),  # CSRF_TRUSTED_ORIGINS
    ],
)
async def test_the_console_accepts_only_the_helpdesks_exact_origin_and_an_allowed_host(settings, headers, expected):
    settings.CSRF_TRUSTED_ORIGINS = ["https://console.example.com"]
    cookie = await agent_cookie()
    communicator, connected = await console(cookie, headers)
    assert connected is expected
    if connected:
        await communicator.disconnect()


async def test_behind_a_trusted_proxy_that_says_https_the_console_origin_is_https(settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1/32"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    cookie = await agent_cookie()
    proto = (b"x-forwarded-proto", b"https")
    for origin, client, expected in [
        (b"https://127.0.0.1:8000", ("127.0.0.1", 5000), True),
        (b"http://127.0.0.1:8000", ("127.0.0.1", 5000), False),
        (b"https://127.0.0.1:8000", ("203.0.113.7", 5000), False),  # anyone can send the header
    ]:
        communicator = WebsocketCommunicator(
            application, "/ws/console/", headers=[(b"origin", origin), HOST, proto, cookie]
        )
        communicator.scope["client"] = client
        connected, _ = await communicator.connect()
        assert connected is expected, (origin, client)
        if connected:
            await communicator.disconnect()
