"""The sample history (`manage.py history_seed`): what the demo's reports and the reports bench stand on. Its
conversations must look like those chat's services make: messages in sequence, figures that agree with them."""

import io

import pytest
from django.core.management import call_command
from django.db.models import Count

from chat.models import Conversation, Message, Rating

pytestmark = pytest.mark.django_db


def test_history_seed_writes_conversations_whose_figures_agree_with_their_messages():
    out = io.StringIO()
    call_command("history_seed", count=300, days=20, stdout=out)
    assert "Wrote 300 past conversations" in out.getvalue()
    assert Conversation.objects.count() == 300
    counts = dict(Conversation.objects.values_list("pk").annotate(n=Count("messages")))
    for conversation in Conversation.objects.prefetch_related("messages"):
        messages = sorted(conversation.messages.all(), key=lambda m: m.seq)
        assert (
            [m.seq for m in messages]
            == list(range(1, conversation.last_seq + 1))
            == list(range(1, counts[conversation.pk] + 1))
        )
        assert messages[0].role == Message.Role.CUSTOMER
        assert conversation.first_customer_message_at == messages[0].created_at == conversation.created_at
        assert [m.created_at for m in messages] == sorted(m.created_at for m in messages)
        bots = [m for m in messages if m.role == Message.Role.BOT]
        if conversation.bot_first_response_s is not None:
            delay = (bots[0].completed_at - conversation.first_customer_message_at).total_seconds()
            assert delay == pytest.approx(conversation.bot_first_response_s)
        else:
            assert not bots
        if conversation.resolved_at:
            assert conversation.status == Conversation.Status.RESOLVED
            assert conversation.resolution_s == pytest.approx(
                (conversation.resolved_at - conversation.created_at).total_seconds()
            )
            assert 0 <= conversation.resolution_business_s <= conversation.resolution_s + 1e-6
        if conversation.claimed_at:
            assert conversation.assignee_id and conversation.first_handoff_at <= conversation.claimed_at
            assert conversation.queue_wait_s == pytest.approx(
                (conversation.claimed_at - conversation.first_handoff_at).total_seconds()
            )
        if conversation.handoff_reason:
            assert conversation.first_handoff_at is not None
    # A mix, as a report needs: handoffs and bot-only ones, ratings, agents, both channels and languages.
    assert 60 < Conversation.objects.filter(first_handoff_at__isnull=False).count() < 200
    assert Rating.objects.count() > 20 and Conversation.objects.filter(claimed_at__isnull=False).exists()
    assert set(Conversation.objects.values_list("language", flat=True)) == {"en", "zh"}
    assert Conversation.objects.filter(site__isnull=True).exists() and Conversation.objects.filter(site__isnull=False)
    # The past is over: nothing waits in the agents' live queue or sits with an agent.
    assert not Conversation.objects.filter(status__in=[Conversation.Status.QUEUED, Conversation.Status.AGENT]).exists()


def test_history_seed_if_empty_leaves_a_database_with_conversations_alone():
    call_command("history_seed", count=5, stdout=io.StringIO())
    out = io.StringIO()
    call_command("history_seed", count=5, if_empty=True, stdout=out)
    assert "no sample history written" in out.getvalue() and Conversation.objects.count() == 5
