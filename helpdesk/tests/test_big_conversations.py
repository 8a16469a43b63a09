"""A conversation of 20,000 messages over HTTP: the API export streams it in small parts, and the staff transcript
shows it a page at a time. (The console's socket pages it too: helpdesk/tests/test_console_limits.py.)"""

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import AsyncClient, Client

from chat.api.keys import api_key_create
from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = 20_000
PART_MAX = 256 * 1024  # no single piece of the answer may be larger than this


@pytest.fixture
def big_conversation():
    conversation = Conversation.objects.create(customer_name="Bo", status="resolved", last_seq=MESSAGES)
    filler = "I am still waiting for my parcel, could you check the courier again please? " * 3
    Message.objects.bulk_create(
        [
            Message(conversation=conversation, seq=n, role="customer" if n % 2 else "bot", content=f"{n} {filler}")
            for n in range(1, MESSAGES + 1)
        ],
        batch_size=2000,
    )
    return conversation


@pytest.fixture
def reader_headers(settings):
    settings.API_RATE_LIMIT_PER_IP = 10_000
    _key, raw = api_key_create(name="archive", scopes=["read"])
    return {"Authorization": f"Bearer {raw}"}


async def test_the_export_of_20000_messages_streams_in_small_parts(big_conversation, reader_headers):
    response = await AsyncClient().get(f"/api/v1/conversations/{big_conversation.id}/export", headers=reader_headers)
    assert response.status_code == 200
    assert response.streaming, "the export must be sent as it is read, not built as one body"
    parts = [part if isinstance(part, bytes) else part.encode() async for part in response.streaming_content]
    assert len(parts) > 10 and max(len(part) for part in parts) <= PART_MAX
    document = json.loads(b"".join(parts))
    assert len(b"".join(parts)) > 4_000_000  # the 5 MB document of the issue, whole
    assert [m["seq"] for m in document["messages"]] == list(range(1, MESSAGES + 1))
    assert document["conversation"]["id"] == str(big_conversation.id)


def test_the_staff_transcript_of_20000_messages_is_shown_a_page_at_a_time(big_conversation):
    manager = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-boss-123")
    client = Client()
    client.force_login(manager)
    first = client.get(f"/reports/conversations/{big_conversation.id}/")
    assert first.status_code == 200
    html = first.content.decode()
    assert html.count('data-role="customer"') + html.count('data-role="bot"') == 200
    assert len(first.content) < 500_000
    assert "Messages 1–200 of 20000" in html and "messages=2" in html

    last = client.get(f"/reports/conversations/{big_conversation.id}/", {"messages": 100}).content.decode()
    assert f">{MESSAGES} I am still waiting" in last and "Messages 19801–20000 of 20000" in last
