"""Managers' edits in the admin go through the console's services: the same events reach the customer, the
agents and the webhooks, and the tickets follow. Each change is made once from the console and once in the
admin, on two conversations in the same state, and what each sent is compared."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from chat import broadcast, dispatch
from chat import services as chat_services
from chat.models import Conversation, HandoffReason, Message
from helpdesk import services
from helpdesk.models import Ticket, Webhook, WebhookDelivery

pytestmark = pytest.mark.django_db

NO_MESSAGE_FORMS = {
    "messages-TOTAL_FORMS": "0",
    "messages-INITIAL_FORMS": "0",
    "messages-MIN_NUM_FORMS": "0",
    "messages-MAX_NUM_FORMS": "1000",
}


@pytest.fixture
def agents():
    permission = Permission.objects.get(codename="use_console")
    made = []
    for name in ("ann", "bob"):
        user = get_user_model().objects.create_user(name, password="x")
        user.user_permissions.add(permission)
        made.append(user)
    return made


@pytest.fixture
def sent(monkeypatch):
    """What services broadcast and enqueue, as (what, details) pairs, with the ids that differ left out."""
    record: list[tuple] = []

    def group_send(group: str, event: dict) -> None:
        kind = "agents" if group == services.AGENTS_GROUP else "staff" if group.endswith(".staff") else "customer"
        details = {key: event[key] for key in ("type", "status", "assignee") if key in event}
        if "message" in event:
            details["message"] = (event["message"]["role"], event["message"]["content"])
        if "entry" in event:
            details["entry"] = event["entry"] and (event["entry"]["status"], event["entry"]["assignee"])
        record.append((kind, details))

    monkeypatch.setattr(broadcast, "group_send", group_send)
    monkeypatch.setattr(dispatch, "task_enqueue", lambda task, *args: record.append(("task", task.name)))
    Webhook.objects.create(name="crm", url="https://crm.example.com/hooks")
    return record


def queued(customer: str) -> Conversation:
    conversation, _ = chat_services.conversation_start(customer_name=customer)
    chat_services.message_post_customer(conversation_id=conversation.id, content="My sofa arrived broken")
    chat_services.conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.CUSTOMER_REQUEST)
    return Conversation.objects.get(pk=conversation.id)


def claimed(customer: str, agent) -> Conversation:
    conversation = queued(customer)
    assert services.conversation_claim(conversation_id=conversation.id, agent=agent)
    return conversation


def admin_edit(admin_client, conversation: Conversation, status: str, assignee=None):
    data = {"status": status, "assignee": assignee.pk if assignee else "", "_save": "Save", **NO_MESSAGE_FORMS}
    return admin_client.post(f"/admin/chat/conversation/{conversation.pk}/change/", data)


def state(conversation: Conversation) -> tuple:
    conversation.refresh_from_db()
    ticket = Ticket.objects.get(conversation=conversation)
    system = list(conversation.messages.filter(role="system").values_list("content", flat=True))
    webhooks = sorted(
        WebhookDelivery.objects.filter(payload__data__conversation__id=str(conversation.pk)).values_list(
            "event", flat=True
        )
    )
    return (
        conversation.status,
        conversation.assignee_id,
        (ticket.status, ticket.assignee_id, ticket.priority, ticket.tags),
        system,
        webhooks,
    )


def both_ways(sent, capture, console, admin) -> tuple[list, list]:
    """Run the console's action and the admin's edit, each committed; return what each sent."""
    sent.clear()
    with capture(execute=True):
        console()
    by_console = list(sent)
    sent.clear()
    with capture(execute=True):
        response = admin()
    assert response.status_code == 302, response.content.decode()[:2000]
    return by_console, list(sent)


def test_assigning_in_the_admin_is_a_claim(admin_client, agents, sent, django_capture_on_commit_callbacks):
    ann = agents[0]
    a, b = queued("A"), queued("B")
    by_console, by_admin = both_ways(
        sent,
        django_capture_on_commit_callbacks,
        lambda: services.conversation_claim(conversation_id=a.id, agent=ann),
        lambda: admin_edit(admin_client, b, "agent", ann),
    )
    assert by_admin == by_console
    assert ("customer", {"type": "chat.status", "status": "agent", "assignee": "ann"}) in by_admin
    assert ("agents", {"type": "queue.entry", "entry": ("agent", "ann")}) in by_admin
    assert state(b) == state(a) and state(b)[:2] == ("agent", ann.pk)
    assert "conversation.claimed" in state(b)[4]


def test_a_manager_may_assign_past_an_agents_capacity(admin_client, agents, sent, django_capture_on_commit_callbacks):
    from helpdesk.models import AgentPresence

    ann = agents[0]
    AgentPresence.objects.create(user=ann, capacity=1, status="online", connections=1)
    claimed("first", ann)
    with pytest.raises(chat_services.ActionRefused, match="limit"):
        services.conversation_claim(conversation_id=queued("second").id, agent=ann)
    third = queued("third")
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_edit(admin_client, third, "agent", ann).status_code == 302
    assert state(third)[:2] == ("agent", ann.pk)


def test_changing_the_assignee_in_the_admin_is_a_transfer(
    admin_client, agents, sent, django_capture_on_commit_callbacks
):
    ann, bob = agents
    a, b = claimed("A", ann), claimed("B", ann)
    by_console, by_admin = both_ways(
        sent,
        django_capture_on_commit_callbacks,
        lambda: services.conversation_transfer(conversation_id=a.id, from_agent=ann, to_username="bob"),
        lambda: admin_edit(admin_client, b, "agent", bob),
    )
    assert by_admin == by_console
    assert ("agents", {"type": "queue.entry", "entry": ("agent", "bob")}) in by_admin
    assert state(b) == state(a) and state(b)[:2] == ("agent", bob.pk)
    assert Ticket.objects.get(conversation=b).assignee == bob


def test_setting_the_bot_in_the_admin_is_a_hand_back(admin_client, agents, sent, django_capture_on_commit_callbacks):
    ann = agents[0]
    a, b = claimed("A", ann), claimed("B", ann)
    by_console, by_admin = both_ways(
        sent,
        django_capture_on_commit_callbacks,
        lambda: chat_services.conversation_hand_back(conversation_id=a.id, agent=ann),
        lambda: admin_edit(admin_client, b, "bot"),
    )
    assert by_admin == by_console
    assert ("customer", {"type": "chat.status", "status": "bot"}) in by_admin
    assert ("agents", {"type": "queue.entry", "entry": None}) in by_admin  # it leaves ann's list
    assert state(b) == state(a) and state(b)[0] == "bot"


def test_resolving_in_the_admin_resolves_as_the_console_does(
    admin_client, agents, sent, django_capture_on_commit_callbacks
):
    ann = agents[0]
    a, b = claimed("A", ann), claimed("B", ann)
    by_console, by_admin = both_ways(
        sent,
        django_capture_on_commit_callbacks,
        lambda: chat_services.conversation_resolve(conversation_id=a.id, agent=ann),
        lambda: admin_edit(admin_client, b, "resolved", ann),
    )
    assert by_admin == by_console
    assert ("customer", {"type": "chat.status", "status": "resolved"}) in by_admin
    assert state(b) == state(a) and state(b)[2][0] == Ticket.Status.RESOLVED
    assert "conversation.resolved" in state(b)[4]


def test_ticket_edits_in_the_admin_are_the_consoles(admin_client, agents, sent, django_capture_on_commit_callbacks):
    ann = agents[0]
    a, b = claimed("A", ann), claimed("B", ann)
    ticket_b = Ticket.objects.get(conversation=b)
    by_console, by_admin = both_ways(
        sent,
        django_capture_on_commit_callbacks,
        lambda: services.ticket_update(conversation_id=a.id, agent=ann, status="pending", priority=4, tags="VIP, vip"),
        lambda: admin_client.post(
            f"/admin/helpdesk/ticket/{ticket_b.pk}/change/",
            {"subject": ticket_b.subject, "status": "pending", "priority": "4", "tags": "VIP, vip", "_save": "Save"},
        ),
    )
    assert by_admin == by_console == [("agents", {"type": "queue.entry", "entry": ("agent", "ann")})]
    assert state(b) == state(a) and state(b)[2][1:] == (ann.pk, 4, "vip")


def test_a_change_the_console_cannot_make_is_refused_with_a_reason(
    admin_client, agents, sent, django_capture_on_commit_callbacks
):
    ann = agents[0]
    with_the_bot, _ = chat_services.conversation_start()
    mine = claimed("A", ann)
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        taken = admin_edit(admin_client, with_the_bot, "agent", ann)
        unassigned = admin_edit(admin_client, mine, "agent")
        requeued = admin_edit(admin_client, mine, "queued", ann)
    assert taken.status_code == unassigned.status_code == requeued.status_code == 200
    assert "Only a conversation waiting for an agent" in taken.content.decode()
    assert "Choose the agent" in unassigned.content.decode()
    assert "cannot go from with an agent to waiting for an agent" in requeued.content.decode()
    assert sent == []
    assert Conversation.objects.get(pk=with_the_bot.pk).status == "bot" and state(mine)[:2] == ("agent", ann.pk)


def test_what_customers_and_the_bot_wrote_cannot_be_edited_or_added_in_the_admin(admin_client):
    conversation, _ = chat_services.conversation_start()
    message, _ = chat_services.message_post_customer(conversation_id=conversation.id, content="original words")
    page = admin_client.get(f"/admin/chat/message/{message.pk}/change/").content.decode()
    assert 'name="content"' not in page and "original words" in page
    admin_client.post(f"/admin/chat/message/{message.pk}/change/", {"content": "rewritten", "_save": "Save"})
    assert Message.objects.get(pk=message.pk).content == "original words"
    assert admin_client.get("/admin/chat/message/add/").status_code == 403
    assert admin_client.get("/admin/chat/conversation/add/").status_code == 403
    assert admin_client.get("/admin/helpdesk/ticket/add/").status_code == 403
    conversation_page = admin_client.get(f"/admin/chat/conversation/{conversation.pk}/change/").content.decode()
    assert 'name="status"' in conversation_page and 'name="customer_email"' not in conversation_page


def test_the_assignee_is_chosen_among_the_agents_only(admin_client, agents, django_user_model):
    django_user_model.objects.create_user("customer-service-bot-account")  # no console permission
    page = admin_client.get(f"/admin/chat/conversation/{queued('A').pk}/change/").content.decode()
    assert ">ann<" in page and ">bob<" in page and "customer-service-bot-account" not in page
    assert "add_id_assignee" not in page and "change_id_assignee" not in page  # no user editing from here


def test_the_bulk_resolve_action_resolves_as_the_console_does(
    admin_client, agents, sent, django_capture_on_commit_callbacks
):
    ann = agents[0]
    mine, waiting = claimed("A", ann), queued("B")
    data = {"action": "resolve_selected", "_selected_action": [str(mine.pk), str(waiting.pk)]}
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client.post("/admin/chat/conversation/", data).status_code == 302
    for conversation in (mine, waiting):
        status, _assignee, ticket, system, webhooks = state(conversation)
        assert status == "resolved" and ticket[0] == Ticket.Status.RESOLVED and "conversation.resolved" in webhooks
        assert system[-1] == "This conversation was resolved. How did we do?"
    assert sum(1 for kind, event in sent if kind == "customer" and event.get("status") == "resolved") == 2
