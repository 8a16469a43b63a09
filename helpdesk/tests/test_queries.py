"""Queries of the agents' side: the queue and the availability check cost one query whatever their size."""

import pytest

from chat import services
from chat.models import HandoffReason
from chat.tests.test_queries import queries_exactly

pytestmark = pytest.mark.django_db


def test_the_agents_queue_is_one_query_however_long(django_user_model):
    from helpdesk.selectors import queue_entry, queue_for_agent

    ann = django_user_model.objects.create_user("ann")
    for n in range(6):
        conversation, _ = services.conversation_start(customer_name=f"customer {n}")
        services.message_post_customer(conversation_id=conversation.id, content="a person please")
        services.conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.CUSTOMER_REQUEST)
    services.conversation_assign(conversation_id=conversation.id, agent=ann, expected_status="queued")
    with queries_exactly(1):
        queue = queue_for_agent(agent=ann)
    assert len(queue) == 6 and queue[-1]["assignee"] == "ann" and all(entry["subject"] for entry in queue)
    with queries_exactly(1):
        entry = queue_entry(conversation_id=conversation.id)
    assert {**entry, "waiting_s": 0} == {**queue[-1], "waiting_s": 0}


def test_whether_an_agent_can_answer_is_one_query_however_many_agents(django_user_model):
    from helpdesk.models import AgentPresence
    from helpdesk.services import agents_available

    for n in range(8):
        user = django_user_model.objects.create_user(f"agent{n}")
        AgentPresence.objects.create(user=user, status="online", connections=1, capacity=1)
        conversation, _ = services.conversation_start()
        services.conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.CUSTOMER_REQUEST)
        services.conversation_assign(conversation_id=conversation.id, agent=user, expected_status="queued")
    with queries_exactly(1):
        assert agents_available() is False  # all eight are full
    AgentPresence.objects.filter(user__username="agent3").update(capacity=2)
    with queries_exactly(1):
        assert agents_available() is True
