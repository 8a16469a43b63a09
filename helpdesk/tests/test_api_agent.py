"""The agent API (scope `agent`): each action is the console's, taken as the key's staff member with their own rights.

Each action is made once as the console makes it (the services its frames call) and once through the API, on two
conversations in the same state; what each broadcast, the tickets and the webhook deliveries are compared. Then the
refusals: the key's member (missing, deactivated, without the console), the console's rules (not theirs, not
queued, already resolved) and bad requests, each with its status and code.
"""

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client

from chat import broadcast, dispatch
from chat import services as chat_services
from chat.api.keys import api_key_create
from chat.models import Conversation, HandoffReason, Message
from helpdesk import services
from helpdesk.models import AgentPresence, Ticket, Webhook, WebhookDelivery
from helpdesk.tests.test_authorization import console_of, staff

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def generous_ip_limit(settings):
    settings.API_RATE_LIMIT_PER_IP = 100_000


def member(username: str, role: str = "agent"):
    user = get_user_model().objects.create_user(username, password="x")
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def ann():
    return member("ann")


@pytest.fixture
def bob():
    return member("bob")


def api_as(user, scopes=("agent",)) -> Client:
    _key, raw = api_key_create(name=f"as {user}", scopes=list(scopes), acts_as=user)
    return Client(headers={"Authorization": f"Bearer {raw}"})


@pytest.fixture
def sent(monkeypatch):
    """What services broadcast and enqueue, as (group kind, details) pairs, with the ids that differ left out."""
    record: list[tuple] = []

    def group_send(group: str, event: dict) -> None:
        kind = "agents" if group == services.AGENTS_GROUP else "staff" if group.endswith(".staff") else "customer"
        details = {key: event[key] for key in ("type", "status", "assignee", "rate") if key in event}
        if "message" in event:
            details["message"] = (event["message"]["role"], event["message"]["content"])
        if "entry" in event:
            details["entry"] = event["entry"] and (event["entry"]["status"], event["entry"]["assignee"])
        record.append((kind, details))

    monkeypatch.setattr(broadcast, "group_send", group_send)
    monkeypatch.setattr(dispatch, "task_enqueue", lambda task, *args: record.append(("task", task.name)))
    Webhook.objects.create(name="crm", url="https://crm.example.com/hooks")
    return record


def queued(customer: str = "Li Lei") -> Conversation:
    conversation, _ = chat_services.conversation_start(customer_name=customer)
    chat_services.message_post_customer(conversation_id=conversation.id, content="My sofa arrived broken")
    chat_services.conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.CUSTOMER_REQUEST)
    return Conversation.objects.get(pk=conversation.id)


def claimed(agent, customer: str = "Li Lei") -> Conversation:
    conversation = queued(customer)
    assert services.conversation_claim(conversation_id=conversation.id, agent=agent, enforce_capacity=False)
    return conversation


def state(conversation: Conversation) -> tuple:
    """The conversation, its ticket, its history (without ids) and its webhook deliveries."""
    conversation.refresh_from_db()
    ticket = Ticket.objects.get(conversation=conversation)
    history = list(conversation.messages.order_by("seq").values_list("role", "content", "author__username"))
    webhooks = sorted(
        WebhookDelivery.objects.filter(payload__data__conversation__id=str(conversation.pk)).values_list(
            "event", flat=True
        )
    )
    return (
        conversation.status,
        conversation.assignee_id,
        (ticket.status, ticket.assignee_id, ticket.priority, ticket.tags, ticket.subject),
        history,
        webhooks,
    )


def both_ways(sent, capture, console, api) -> tuple[list, list]:
    """Run the console's action and the API's request, each committed; return what each sent."""
    sent.clear()
    with capture(execute=True):
        console()
    by_console = list(sent)
    sent.clear()
    with capture(execute=True):
        response = api()
    assert response.status_code in (200, 201), response.content
    return by_console, list(sent)


def error_of(response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


# --- Each action, as the console does it --------------------------------------------------------------------------


def test_a_reply_through_the_api_reaches_the_customer_and_the_consoles_as_one_from_the_console(
    ann, sent, django_capture_on_commit_callbacks
):
    a, b = claimed(ann, "A"), claimed(ann, "B")
    by_console, by_api = both_ways(
        sent,
        django_capture_on_commit_callbacks,
        lambda: chat_services.message_post_agent(conversation_id=a.id, agent=ann, content="A new one is on its way."),
        lambda: api_as(ann).post(
            f"/api/v1/conversations/{b.id}/messages",
            {"content": "A new one is on its way."},
            content_type="application/json",
        ),
    )
    assert by_api == by_console
    assert ("customer", {"type": "chat.message", "message": ("agent", "A new one is on its way.")}) in by_api
    assert state(b) == state(a)


def test_a_reply_answers_with_the_message_and_a_resend_with_its_client_id_is_not_a_duplicate(ann):
    conversation = claimed(ann)
    api = api_as(ann)
    body = {"content": "Checking with the courier.", "client_id": "crm-42"}
    first = api.post(f"/api/v1/conversations/{conversation.id}/messages", body, content_type="application/json")
    again = api.post(f"/api/v1/conversations/{conversation.id}/messages", body, content_type="application/json")
    assert first.status_code == again.status_code == 201
    message = first.json()
    assert (message["role"], message["content"], message["author"]) == ("agent", "Checking with the courier.", "ann")
    assert again.json()["seq"] == message["seq"]
    assert conversation.messages.filter(role="agent").count() == 1


def test_a_private_note_reaches_only_the_staff(ann, sent, django_capture_on_commit_callbacks):
    a, b = claimed(ann, "A"), claimed(ann, "B")
    by_console, by_api = both_ways(
        sent,
        django_capture_on_commit_callbacks,
        lambda: chat_services.note_post(conversation_id=a.id, agent=ann, content="Courier lost it"),
        lambda: api_as(ann).post(
            f"/api/v1/conversations/{b.id}/messages",
            {"content": "Courier lost it", "private": True, "client_id": "n-1"},
            content_type="application/json",
        ),
    )
    assert by_api == by_console == [("staff", {"type": "staff.note", "message": ("note", "Courier lost it")})]
    # A resend of the note is the same note.
    api_as(ann).post(
        f"/api/v1/conversations/{b.id}/messages",
        {"content": "Courier lost it", "private": True, "client_id": "n-1"},
        content_type="application/json",
    )
    assert b.messages.filter(role=Message.Role.NOTE).count() == 1


def test_a_claim_through_the_api_is_the_consoles_claim(ann, sent, django_capture_on_commit_callbacks):
    a, b = queued("A"), queued("B")
    by_console, by_api = both_ways(
        sent,
        django_capture_on_commit_callbacks,
        lambda: services.conversation_claim(conversation_id=a.id, agent=ann),
        lambda: api_as(ann).post(f"/api/v1/conversations/{b.id}/assign", {}, content_type="application/json"),
    )
    assert by_api == by_console
    assert ("customer", {"type": "chat.status", "status": "agent", "assignee": "ann"}) in by_api
    assert ("agents", {"type": "queue.entry", "entry": ("agent", "ann")}) in by_api
    assert state(b) == state(a) and state(b)[:2] == ("agent", ann.pk)
    assert state(b)[4] == ["conversation.claimed", "conversation.handed_off"]


def test_the_claim_answers_with_the_conversation_and_refuses_what_the_console_refuses(ann, bob):
    api = api_as(ann)
    conversation = queued()
    response = api.post(
        f"/api/v1/conversations/{conversation.id}/assign", {"agent": None}, content_type="application/json"
    )
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["assignee"]) == ("agent", "ann")
    assert error_of(api.post(f"/api/v1/conversations/{conversation.id}/assign", content_type="application/json")) == (
        409,
        "already_yours",
    )
    # Another agent's conversation: claimed already, unless taken over (the console's "Take over").
    theirs = claimed(bob)
    assert error_of(api.post(f"/api/v1/conversations/{theirs.id}/assign", content_type="application/json")) == (
        409,
        "already_claimed",
    )
    taken = api.post(f"/api/v1/conversations/{theirs.id}/assign", {"take_over": True}, content_type="application/json")
    assert taken.status_code == 200 and taken.json()["assignee"] == "ann"
    # A conversation the bot has is not waiting for anyone.
    bot, _ = chat_services.conversation_start(customer_name="Bot's")
    assert error_of(api.post(f"/api/v1/conversations/{bot.id}/assign", content_type="application/json")) == (
        409,
        "not_queued",
    )
    # The agent's capacity, as in the console.
    AgentPresence.objects.create(user=ann, capacity=2)
    assert error_of(api.post(f"/api/v1/conversations/{queued('C').id}/assign", content_type="application/json")) == (
        409,
        "at_capacity",
    )


def test_assigning_to_someone_else_is_a_supervisors_and_goes_past_capacity(ann, bob):
    manager = member("mia", role="manager")
    conversation = queued()
    body = {"agent": "bob"}
    refused = api_as(ann).post(f"/api/v1/conversations/{conversation.id}/assign", body, content_type="application/json")
    assert error_of(refused) == (403, "forbidden")
    AgentPresence.objects.create(user=bob, capacity=0)
    assigned = api_as(manager).post(
        f"/api/v1/conversations/{conversation.id}/assign", body, content_type="application/json"
    )
    assert assigned.status_code == 200 and assigned.json()["assignee"] == "bob"
    assert Ticket.objects.get(conversation=conversation).assignee == bob
    # To an agent who holds it already: nothing to change; to someone else: a transfer.
    again = api_as(manager).post(
        f"/api/v1/conversations/{conversation.id}/assign", body, content_type="application/json"
    )
    assert again.status_code == 200
    moved = api_as(manager).post(
        f"/api/v1/conversations/{conversation.id}/assign", {"agent": "ann"}, content_type="application/json"
    )
    assert moved.status_code == 200 and moved.json()["assignee"] == "ann"
    nobody = api_as(manager).post(
        f"/api/v1/conversations/{conversation.id}/assign", {"agent": "nobody"}, content_type="application/json"
    )
    assert error_of(nobody) == (404, "unknown_agent")


def test_a_transfer_through_the_api_is_the_consoles(ann, bob, sent, django_capture_on_commit_callbacks):
    a, b = claimed(ann, "A"), claimed(ann, "B")
    by_console, by_api = both_ways(
        sent,
        django_capture_on_commit_callbacks,
        lambda: services.conversation_transfer(conversation_id=a.id, from_agent=ann, to_username="bob"),
        lambda: api_as(ann).post(
            f"/api/v1/conversations/{b.id}/transfer", {"agent": "bob"}, content_type="application/json"
        ),
    )
    assert by_api == by_console
    assert state(b) == state(a) and state(b)[:2] == ("agent", bob.pk) and state(b)[2][1] == bob.pk
    # Now it is bob's: ann can transfer it no more; nor to someone who cannot take conversations.
    again = api_as(ann).post(
        f"/api/v1/conversations/{b.id}/transfer", {"agent": "ann"}, content_type="application/json"
    )
    assert error_of(again) == (409, "not_assigned")
    get_user_model().objects.create_user("carl")
    to_carl = api_as(bob).post(
        f"/api/v1/conversations/{b.id}/transfer", {"agent": "carl"}, content_type="application/json"
    )
    assert error_of(to_carl) == (404, "unknown_agent")
    assert error_of(api_as(bob).post(f"/api/v1/conversations/{b.id}/transfer")) == (400, "invalid_request")


def test_a_hand_back_through_the_api_is_the_consoles(ann, sent, django_capture_on_commit_callbacks):
    a, b = claimed(ann, "A"), claimed(ann, "B")
    by_console, by_api = both_ways(
        sent,
        django_capture_on_commit_callbacks,
        lambda: chat_services.conversation_hand_back(conversation_id=a.id, agent=ann),
        lambda: api_as(ann).post(f"/api/v1/conversations/{b.id}/hand_back"),
    )
    assert by_api == by_console
    assert state(b) == state(a) and state(b)[:2] == ("bot", None)
    assert error_of(api_as(ann).post(f"/api/v1/conversations/{b.id}/hand_back")) == (409, "not_assigned")


def test_a_resolve_through_the_api_makes_the_same_ticket_change_and_webhook_as_the_console(
    ann, sent, django_capture_on_commit_callbacks
):
    a, b = claimed(ann, "A"), claimed(ann, "B")
    by_console, by_api = both_ways(
        sent,
        django_capture_on_commit_callbacks,
        lambda: services.conversation_resolve_by_staff(conversation_id=a.id, agent=ann),
        lambda: api_as(ann).post(f"/api/v1/conversations/{b.id}/resolve"),
    )
    assert by_api == by_console
    assert ("customer", {"type": "chat.status", "status": "resolved", "rate": True}) in by_api
    assert state(b) == state(a)
    assert state(b)[2][0] == Ticket.Status.RESOLVED and "conversation.resolved" in state(b)[4]
    assert WebhookDelivery.objects.filter(event="conversation.resolved").count() == 2
    again = api_as(ann).post(f"/api/v1/conversations/{b.id}/resolve")
    assert error_of(again) == (409, "already_resolved")
    assert WebhookDelivery.objects.filter(event="conversation.resolved").count() == 2


def test_a_reopen_through_the_api_is_the_consoles(ann, bob, sent, django_capture_on_commit_callbacks):
    a, b = claimed(ann, "A"), claimed(ann, "B")
    for conversation in (a, b):
        services.conversation_resolve_by_staff(conversation_id=conversation.id, agent=ann)
    by_console, by_api = both_ways(
        sent,
        django_capture_on_commit_callbacks,
        lambda: services.conversation_reopen_by_staff(conversation_id=a.id, agent=ann),
        lambda: api_as(ann).post(f"/api/v1/conversations/{b.id}/reopen"),
    )
    assert by_api == by_console
    assert state(b) == state(a) and state(b)[:2] == ("agent", ann.pk) and state(b)[2][0] == Ticket.Status.OPEN
    assert error_of(api_as(ann).post(f"/api/v1/conversations/{b.id}/reopen")) == (409, "not_resolved")
    # Another agent's resolved conversation is theirs (or a supervisor's) to reopen.
    services.conversation_resolve_by_staff(conversation_id=b.id, agent=ann)
    assert error_of(api_as(bob).post(f"/api/v1/conversations/{b.id}/reopen")) == (403, "forbidden")


def test_acting_on_a_conversation_that_is_not_the_agents_is_refused_as_in_the_console(ann, bob):
    theirs = claimed(bob)
    api = api_as(ann)
    for action in ("hand_back", "resolve"):
        assert error_of(api.post(f"/api/v1/conversations/{theirs.id}/{action}")) == (409, "not_assigned"), action
    reply = api.post(f"/api/v1/conversations/{theirs.id}/messages", {"content": "Hi"}, content_type="application/json")
    assert error_of(reply) == (409, "not_assigned")
    assert theirs.messages.filter(role="agent").count() == 0
    # A private note is for colleagues, as in the console: on any conversation.
    note = api.post(
        f"/api/v1/conversations/{theirs.id}/messages",
        {"content": "Called the courier", "private": True},
        content_type="application/json",
    )
    assert note.status_code == 201
    assert list(theirs.messages.filter(role="note").values_list("content", "author__username")) == [
        ("Called the courier", "ann")
    ]
    # A supervisor resolves any conversation, as in the console.
    manager = member("mia", role="manager")
    assert api_as(manager).post(f"/api/v1/conversations/{theirs.id}/resolve").json()["status"] == "resolved"


def test_unknown_conversations_and_bad_bodies_answer_404_and_400_in_the_apis_format(ann):
    api = api_as(ann)
    conversation = claimed(ann)
    for path in ("11111111-2222-3333-4444-555555555555", "not-a-uuid"):
        for action in ("assign", "hand_back", "resolve", "reopen"):
            response = api.post(f"/api/v1/conversations/{path}/{action}", content_type="application/json")
            assert error_of(response) == (404, "not_found")
        response = api.post(
            f"/api/v1/conversations/{path}/messages", {"content": "Hi"}, content_type="application/json"
        )
        assert error_of(response) == (404, "not_found")
    for body in ({}, {"content": ""}, {"content": "   "}, {"content": 5}, {"content": "Hi", "private": "yes"}):
        response = api.post(f"/api/v1/conversations/{conversation.id}/messages", body, content_type="application/json")
        assert error_of(response) == (400, "invalid_request"), body
    response = api.post(f"/api/v1/conversations/{conversation.id}/messages", "{", content_type="application/json")
    assert response.status_code == 400


# --- Tickets ------------------------------------------------------------------------------------------------------


def test_a_ticket_edit_through_the_api_is_the_consoles(ann, sent, django_capture_on_commit_callbacks):
    a, b = claimed(ann, "A"), claimed(ann, "B")
    ticket_b = Ticket.objects.get(conversation=b)
    by_console, by_api = both_ways(
        sent,
        django_capture_on_commit_callbacks,
        lambda: services.ticket_update(conversation_id=a.id, agent=ann, status="pending", priority=4, tags="VIP, bug"),
        lambda: api_as(ann).patch(
            f"/api/v1/tickets/{ticket_b.pk}",
            {"status": "pending", "priority": "urgent", "tags": ["VIP", "bug"]},
            content_type="application/json",
        ),
    )
    assert by_api == by_console
    assert state(b) == state(a)
    edited = api_as(ann).patch(
        f"/api/v1/tickets/{ticket_b.pk}", {"subject": "  Broken sofa  "}, content_type="application/json"
    )
    assert edited.status_code == 200
    assert {k: edited.json()[k] for k in ("subject", "status", "priority", "tags", "assignee")} == {
        "subject": "Broken sofa",
        "status": "pending",
        "priority": "urgent",
        "tags": ["vip", "bug"],
        "assignee": "ann",
    }


def test_a_tickets_assignee_is_its_conversations(ann, bob):
    manager = member("mia", role="manager")
    conversation = claimed(ann)
    ticket = Ticket.objects.get(conversation=conversation)
    response = api_as(manager).patch(
        f"/api/v1/tickets/{ticket.pk}", {"assignee": "bob"}, content_type="application/json"
    )
    assert response.status_code == 200 and response.json()["assignee"] == "bob"
    conversation.refresh_from_db()
    assert conversation.assignee == bob and conversation.messages.filter(role="system").exists()
    # Its own agent naming themselves changes nothing; another agent's ticket is not theirs to edit.
    same = api_as(bob).patch(f"/api/v1/tickets/{ticket.pk}", {"assignee": "bob"}, content_type="application/json")
    assert same.status_code == 200
    theirs = api_as(ann).patch(f"/api/v1/tickets/{ticket.pk}", {"priority": "low"}, content_type="application/json")
    assert error_of(theirs) == (409, "not_assigned")
    orphan = Ticket.objects.create(subject="No chat")
    no_chat = api_as(manager).patch(
        f"/api/v1/tickets/{orphan.pk}", {"assignee": "bob"}, content_type="application/json"
    )
    assert error_of(no_chat) == (409, "no_conversation")


def test_ticket_edits_need_the_ticket_permission_and_a_valid_body(ann):
    conversation = claimed(ann)
    ticket = Ticket.objects.get(conversation=conversation)
    api = api_as(ann)
    for body in ({"priority": 4}, {"status": "lost"}, {"subject": "   "}, {"tags": ["a,b"]}, {"tags": "vip"}):
        response = api.patch(f"/api/v1/tickets/{ticket.pk}", body, content_type="application/json")
        assert error_of(response) == (400, "invalid_request"), body
    assert error_of(api.patch("/api/v1/tickets/999999", {}, content_type="application/json")) == (404, "not_found")
    Group.objects.get(name="agent").permissions.remove(Permission.objects.get(codename="change_ticket"))
    refused = api.patch(f"/api/v1/tickets/{ticket.pk}", {"priority": "high"}, content_type="application/json")
    assert error_of(refused) == (403, "forbidden")
    assert Ticket.objects.get(pk=ticket.pk).priority == Ticket.Priority.NORMAL


# --- Whom the key acts as -----------------------------------------------------------------------------------------


def test_the_keys_member_is_checked_on_every_request(ann):
    conversation = claimed(ann)
    api = api_as(ann)
    path = f"/api/v1/conversations/{conversation.id}/messages"

    def reply():
        return api.post(path, {"content": "Hello"}, content_type="application/json")

    assert reply().status_code == 201
    ann.groups.clear()  # taken out of the agents: no console, no agent API
    assert error_of(reply()) == (403, "acting_agent_forbidden")
    ann.groups.add(Group.objects.get(name="agent"))
    assert reply().status_code == 201
    get_user_model().objects.filter(pk=ann.pk).update(is_active=False)
    assert error_of(reply()) == (403, "acting_agent_inactive")
    get_user_model().objects.filter(pk=ann.pk).delete()  # acts_as is set to null
    assert error_of(reply()) == (403, "acting_agent_missing")


def test_keys_without_the_agent_scope_or_a_member_are_refused(ann):
    conversation = claimed(ann)
    path = f"/api/v1/conversations/{conversation.id}/resolve"
    assert error_of(Client().post(path)) == (401, "missing_api_key")
    for scopes in (["read"], ["chat"], ["contacts"]):
        assert error_of(api_as(ann, scopes).post(path)) == (403, "insufficient_scope"), scopes
    _key, raw = api_key_create(name="admin without a member", scopes=["admin"])
    assert error_of(Client(headers={"Authorization": f"Bearer {raw}"}).post(path)) == (403, "acting_agent_missing")
    # An admin key acting as a member does what the member may.
    assert api_as(ann, ["admin"]).post(path).json()["status"] == "resolved"


def test_a_key_with_the_agent_scope_must_act_as_someone():
    with pytest.raises(ValueError, match="acts as"):
        api_key_create(name="nobody", scopes=["agent"])


# --- A real console socket ----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_console_viewing_the_conversation_sees_what_the_api_does(settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1", "testserver"]
    settings.API_RATE_LIMIT_PER_IP = 100_000
    ann = await database_sync_to_async(staff)("ann", groups=["agent"])
    mia = await database_sync_to_async(staff)("mia", groups=["manager"])
    conversation = await database_sync_to_async(claimed)(ann)
    console = await console_of(mia)
    await console.send(type="open", conversation=str(conversation.id))
    assert (await console.next("conversation"))["type"] == "conversation"
    api = await database_sync_to_async(api_as)(ann)
    path = f"/api/v1/conversations/{conversation.id}"

    reply = await database_sync_to_async(api.post)(
        f"{path}/messages", {"content": "On its way"}, content_type="application/json"
    )
    assert reply.status_code == 201
    frame = await console.next("message")
    assert (frame["message"]["role"], frame["message"]["content"]) == ("agent", "On its way")
    note = await database_sync_to_async(api.post)(
        f"{path}/messages", {"content": "VIP", "private": True}, content_type="application/json"
    )
    assert note.status_code == 201 and (await console.next("note"))["message"]["content"] == "VIP"
    assert (await database_sync_to_async(api.post)(f"{path}/resolve")).status_code == 200
    assert (await console.next("status"))["status"] == "resolved"
    await console.socket.disconnect()
