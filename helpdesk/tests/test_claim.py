import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from chat import services as chat_services
from chat.models import Conversation, HandoffReason
from helpdesk import services
from helpdesk.models import Ticket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def agents():
    User = get_user_model()
    return User.objects.create_user("ann", password="x"), User.objects.create_user("bob", password="x")


def test_two_agents_claiming_at_once_get_exactly_one_owner_50_times(agents):
    for _ in range(50):
        conversation, _ = chat_services.conversation_start()
        chat_services.conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.CUSTOMER_REQUEST)
        barrier = threading.Barrier(2)
        results = {}

        def claim(agent, barrier=barrier, results=results, conversation=conversation):
            try:
                barrier.wait()
                results[agent.username] = services.conversation_claim(conversation_id=conversation.id, agent=agent)
            finally:
                connection.close()

        threads = [threading.Thread(target=claim, args=(agent,)) for agent in agents]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [name for name, won in results.items() if won]
        assert len(winners) == 1, results
        row = Conversation.objects.select_related("assignee").get(pk=conversation.id)
        assert row.status == Conversation.Status.AGENT and row.assignee.username == winners[0]
        ticket = Ticket.objects.select_related("assignee").get(conversation_id=conversation.id)
        assert ticket.assignee.username == winners[0] and ticket.status == Ticket.Status.OPEN
        chat_services.conversation_resolve(conversation_id=conversation.id)  # frees the winner's capacity


def test_a_conversation_still_with_the_bot_cannot_be_claimed(agents):
    conversation, _ = chat_services.conversation_start()
    assert not services.conversation_claim(conversation_id=conversation.id, agent=agents[0])
    assert Conversation.objects.get(pk=conversation.id).status == Conversation.Status.BOT


def test_an_agent_transfers_a_conversation_to_another(agents):
    from chat.models import Message

    ann, bob = agents
    from django.contrib.auth.models import Permission

    bob.user_permissions.add(Permission.objects.get(codename="use_console"))
    conversation, _ = chat_services.conversation_start()
    chat_services.conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.CUSTOMER_REQUEST)
    assert services.conversation_claim(conversation_id=conversation.id, agent=ann)
    with pytest.raises(chat_services.ActionRefused):
        services.conversation_transfer(conversation_id=conversation.id, from_agent=bob, to_username="ann")
    with pytest.raises(chat_services.ActionRefused, match="No agent"):
        services.conversation_transfer(conversation_id=conversation.id, from_agent=ann, to_username="nobody")
    services.conversation_transfer(conversation_id=conversation.id, from_agent=ann, to_username="bob")
    assert Conversation.objects.get(pk=conversation.id).assignee == bob
    assert Ticket.objects.get(conversation_id=conversation.id).assignee == bob
    assert Message.objects.filter(conversation_id=conversation.id, content__contains="another member").exists()


def test_canned_responses_are_filled_for_the_conversation(agents):
    from helpdesk.models import CannedResponse
    from helpdesk.selectors import canned_responses_for

    CannedResponse.objects.create(title="Greeting", body="Hi {{customer_name}}, {{agent_name}} of {{ company_name }}.")
    conversation, _ = chat_services.conversation_start(customer_name="Li Lei")
    ann = agents[0]
    ann.first_name = "Ann"
    ann.save()
    [canned] = canned_responses_for(conversation_id=conversation.id, agent=ann)
    assert canned["text"] == "Hi Li Lei, Ann of Example Inc.."


def test_an_agent_at_capacity_cannot_claim_more(agents):
    from helpdesk.models import AgentPresence

    ann = agents[0]
    AgentPresence.objects.create(user=ann, capacity=1, status="online", connections=1)
    conversations = []
    for _ in range(2):
        conversation, _ = chat_services.conversation_start()
        chat_services.conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.CUSTOMER_REQUEST)
        conversations.append(conversation)
    assert services.conversation_claim(conversation_id=conversations[0].id, agent=ann)
    with pytest.raises(chat_services.ActionRefused, match="limit"):
        services.conversation_claim(conversation_id=conversations[1].id, agent=ann)
    assert Conversation.objects.get(pk=conversations[1].id).status == Conversation.Status.QUEUED


def test_presence_follows_console_sockets_and_choice(agents):
    from helpdesk.models import AgentPresence

    ann = agents[0]
    assert not services.agents_available()
    services.presence_connect(agent=ann)
    services.presence_connect(agent=ann)  # a second tab
    assert services.agents_available()
    services.presence_set(agent=ann, status="away")
    assert not services.agents_available()
    services.presence_set(agent=ann, status="online")
    services.presence_disconnect(agent=ann)
    assert services.agents_available()  # one tab still open
    services.presence_disconnect(agent=ann)
    assert AgentPresence.objects.get(user=ann).status == "offline" and not services.agents_available()


def test_tickets_are_edited_from_the_console_and_resolved_with_the_conversation(agents):
    ann = agents[0]
    conversation, _ = chat_services.conversation_start()
    chat_services.conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.CUSTOMER_REQUEST)
    ticket = services.ticket_update(
        conversation_id=conversation.id, agent=ann, status="pending", priority=4, tags=" VIP, billing,vip "
    )
    assert (ticket.status, ticket.priority, ticket.tags) == ("pending", 4, "vip, billing")
    for bad in ({"status": "lost"}, {"priority": 9}, {"tags": ["x"]}):
        with pytest.raises(chat_services.ActionRefused):
            services.ticket_update(conversation_id=conversation.id, agent=ann, **bad)
    chat_services.conversation_resolve(conversation_id=conversation.id)
    assert Ticket.objects.get(pk=ticket.pk).status == Ticket.Status.RESOLVED
