"""GET /api/v1/tickets and /api/v1/tickets/{id}, and the conversation export, through the real views and keys."""

import datetime
import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from chat.api.keys import api_key_create
from chat.models import Conversation, Message, Rating
from helpdesk.models import Ticket

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def generous_ip_limit(settings):
    settings.API_RATE_LIMIT_PER_IP = 100_000


def client_for(scopes: list[str]) -> Client:
    return Client(headers={"Authorization": f"Bearer {api_key_create(name='integration', scopes=scopes)[1]}"})


@pytest.fixture
def reader() -> Client:
    return client_for(["read"])


@pytest.fixture
def agent():
    return get_user_model().objects.create_user("ana", password="x")


def ticket_at(when: datetime.datetime, **fields) -> Ticket:
    ticket = Ticket.objects.create(**fields)
    Ticket.objects.filter(pk=ticket.pk).update(created_at=when)
    ticket.refresh_from_db()
    return ticket


def subjects(client: Client, query: str = "") -> list[str]:
    response = client.get(f"/api/v1/tickets?{query}")
    assert response.status_code == 200, response.content
    return [item["subject"] for item in response.json()["items"]]


def test_tickets_are_listed_newest_first_and_filtered(reader, agent):
    now = timezone.now()
    ticket_at(now - datetime.timedelta(days=3), subject="Refund", status="resolved", tags="billing, vip")
    ticket_at(now - datetime.timedelta(days=1), subject="Broken", priority=4, assignee=agent, tags="bug")
    ticket_at(now, subject="Invoice", status="open", tags="Billing")

    assert subjects(reader) == ["Invoice", "Broken", "Refund"]
    assert subjects(reader, "status=resolved") == ["Refund"]
    assert subjects(reader, "priority=urgent") == ["Broken"]
    assert subjects(reader, "assignee=ana") == ["Broken"]
    assert subjects(reader, "tag=billing") == ["Invoice", "Refund"]
    assert subjects(reader, "tag=vip") == ["Refund"] and subjects(reader, "tag=bil") == []
    assert subjects(reader, "tag=.*") == [] and subjects(reader, "tag=%20") == []  # text, not a pattern
    since = (now - datetime.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert subjects(reader, f"created_after={since}") == ["Invoice", "Broken"]
    assert subjects(reader, f"created_before={since}") == ["Refund"]
    for bad in ("status=lost", "priority=4", "tag=a,b", "created_before=0001-01-01T00:00:00%2B01:00"):
        response = reader.get(f"/api/v1/tickets?{bad}")
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request", bad


def test_tags_with_punctuation_and_other_scripts_are_matched_whole(reader):
    ticket_at(timezone.now(), subject="Odd", tags="c++, vip_2, a.b (x), 账单")
    ticket_at(timezone.now(), subject="Plain", tags="c, vip2, ab")
    for tag in ("c%2B%2B", "vip_2", "a.b%20(x)", "账单", "VIP_2"):
        assert subjects(reader, f"tag={tag}") == ["Odd"], tag
    assert subjects(reader, "tag=c") == ["Plain"]


def test_tickets_are_paginated(reader):
    for i in range(3):
        ticket_at(timezone.now() - datetime.timedelta(minutes=i), subject=f"T{i}")
    body = reader.get("/api/v1/tickets?page_size=2").json()
    assert body["count"] == 3 and [t["subject"] for t in body["items"]] == ["T0", "T1"]
    assert body["next"].endswith("/api/v1/tickets?page_size=2&page=2")
    assert reader.get(body["next"]).json()["items"][0]["subject"] == "T2"


def test_a_ticket_is_read_by_id_with_its_conversation_and_tags(reader, agent):
    conversation = Conversation.objects.create()
    ticket = Ticket.objects.create(
        subject="Help", conversation=conversation, assignee=agent, priority=3, tags="billing, vip ,"
    )
    body = reader.get(f"/api/v1/tickets/{ticket.pk}").json()
    assert body["id"] == ticket.pk and body["conversation_id"] == str(conversation.id)
    assert body["priority"] == "high" and body["status"] == "new" and body["assignee"] == "ana"
    assert body["tags"] == ["billing", "vip"]


def test_an_unknown_or_malformed_ticket_id_is_answered_in_the_error_format(reader):
    for path, status in (
        ("/api/v1/tickets/999999", 404),
        ("/api/v1/tickets/99999999999999999999999", 400),
        ("/api/v1/tickets/abc", 400),
    ):
        response = reader.get(path)
        assert response.status_code == status, path
        assert response.json()["error"]["code"] == ("not_found" if status == 404 else "invalid_request")


def test_a_chat_only_key_may_not_read_tickets():
    response = client_for(["chat"]).get("/api/v1/tickets")
    assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_scope"


def streamed_json(response):
    assert response.streaming  # the export is sent as it is read, never built whole
    return json.loads(b"".join(response.streaming_content))


def test_a_conversation_is_exported_as_one_json_attachment_with_its_messages_ticket_and_rating(reader, agent):
    conversation = Conversation.objects.create(customer_name="Bo", status="resolved", assignee=agent, last_seq=3)
    Message.objects.create(conversation=conversation, seq=1, role="customer", content="My parcel is lost")
    Message.objects.create(
        conversation=conversation, seq=2, role="bot", content="Sorry!", engine="llamacpp", completion_tokens=2
    )
    Message.objects.create(conversation=conversation, seq=3, role="note", content="check courier", author=agent)
    Rating.objects.create(conversation=conversation, score=2, comment="slow")
    ticket = Ticket.objects.create(subject="Lost parcel", conversation=conversation, assignee=agent)

    response = reader.get(f"/api/v1/conversations/{conversation.id}/export")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="conversation-{conversation.id}.json"'
    document = streamed_json(response)
    assert document["conversation"]["id"] == str(conversation.id) and document["conversation"]["customer_name"] == "Bo"
    assert document["conversation"]["rating"]["score"] == 2 and document["conversation"]["rating"]["comment"] == "slow"
    assert [(m["seq"], m["role"]) for m in document["messages"]] == [(1, "customer"), (2, "bot")]
    assert document["messages"][1]["stats"]["engine"] == "llamacpp"
    assert document["ticket"]["id"] == ticket.pk and document["ticket"]["subject"] == "Lost parcel"

    with_notes = streamed_json(client_for(["read", "admin"]).get(f"/api/v1/conversations/{conversation.id}/export"))
    assert [m["role"] for m in with_notes["messages"]] == ["customer", "bot", "note"]
    assert with_notes["messages"][2]["author"] == "ana"


def test_a_conversation_without_ticket_or_rating_exports_them_as_null(reader):
    conversation = Conversation.objects.create()
    document = streamed_json(reader.get(f"/api/v1/conversations/{conversation.id}/export"))
    assert document["ticket"] is None and document["conversation"]["rating"] is None and document["messages"] == []


def test_exporting_an_unknown_or_malformed_conversation_is_a_json_404(reader):
    for conversation_id in ("6f1c1b1e-0000-4000-8000-000000000000", "nope"):
        response = reader.get(f"/api/v1/conversations/{conversation_id}/export")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
        assert "Content-Disposition" not in response
