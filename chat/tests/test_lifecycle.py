"""The conversation's lifecycle on chat's side: back to the bot after a bot-only resolution (with a status frame),
the rating asked once, the idle auto-resolve, snooze rules, and no second request for a known email.

The staff side's part (back to the last agent, tickets, the console's frames) is helpdesk/tests/test_lifecycle.py.
"""

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from chat import broadcast, services
from chat.models import Conversation, HandoffReason, Message
from chat.serializers import conversation_to_dict

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    """The events services broadcast (after commit), as (group kind, event) pairs."""
    record: list[tuple[str, dict]] = []

    def group_send(group: str, event: dict) -> None:
        kind = "agents" if group == "agents" else "staff" if group.endswith(".staff") else "conversation"
        record.append((kind, event))

    monkeypatch.setattr(broadcast, "group_send", group_send)
    return record


@pytest.fixture
def replies(monkeypatch):
    """Reply jobs asked for (none is generated: these tests are about who answers)."""
    calls = []
    monkeypatch.setattr("chat.services.replies.reply_enqueue", lambda **kw: calls.append(kw))
    return calls


def statuses(sent) -> list[dict]:
    return [event for kind, event in sent if kind == "conversation" and event["type"] == "chat.status"]


def system_texts(conversation) -> list[str]:
    return list(
        conversation.messages.filter(role=Message.Role.SYSTEM).order_by("seq").values_list("content", flat=True)
    )


def written(content="Where is my order?", **kwargs) -> Conversation:
    conversation, _ = services.conversation_start(**kwargs)
    services.message_post_customer(conversation_id=conversation.id, content=content)
    return Conversation.objects.get(pk=conversation.pk)


def test_a_customer_writing_after_a_bot_only_resolution_goes_back_to_the_bot_and_the_widget_hears_it(
    django_capture_on_commit_callbacks, sent, replies
):
    conversation = written()
    services.conversation_resolve(conversation_id=conversation.id, by_customer=True)
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        message, _ = services.message_post_customer(conversation_id=conversation.id, content="One more question")
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.BOT and conversation.resolved_at is None
    assert [event["status"] for event in statuses(sent)] == ["bot"]
    assert [call["message_id"] for call in replies] == [message.id]


def test_the_rating_is_asked_on_the_first_resolution_only(django_capture_on_commit_callbacks, sent, replies):
    conversation = written()
    with django_capture_on_commit_callbacks(execute=True):
        services.conversation_resolve(conversation_id=conversation.id, by_customer=True)
    conversation.refresh_from_db()
    assert conversation.rating_requested_at == conversation.resolved_at
    assert statuses(sent)[-1] == {
        "type": "chat.status",
        "status": "resolved",
        "rate": True,
        "conversation": str(conversation.id),
    }
    assert conversation_to_dict(conversation)["rate"] is True  # a reconnecting widget shows the form again
    assert system_texts(conversation)[-1] == "You ended the chat. How did we do?"

    services.message_post_customer(conversation_id=conversation.id, content="Actually, one more thing")
    conversation.refresh_from_db()
    assert conversation_to_dict(conversation)["rate"] is False  # no longer resolved
    with django_capture_on_commit_callbacks(execute=True):
        services.conversation_resolve(conversation_id=conversation.id, by_customer=True)
    conversation.refresh_from_db()
    assert statuses(sent)[-1]["rate"] is False
    assert conversation_to_dict(conversation)["rate"] is False
    assert system_texts(conversation)[-1] == "You ended the chat."


def test_a_rated_conversation_is_not_asked_again_and_the_form_goes_once_rated():
    conversation = written(language="zh-CN")
    services.conversation_resolve(conversation_id=conversation.id)
    services.rating_create(conversation_id=conversation.id, score=5)
    conversation = Conversation.objects.get(pk=conversation.pk)
    assert conversation_to_dict(conversation) | {"id": "", "last_seq": 0} == {
        "id": "",
        "status": "resolved",
        "language": "zh-CN",
        "last_seq": 0,
        "rated": True,
        "rate": False,
    }
    assert system_texts(conversation)[-1] == "本次对话已结束。请为我们的服务评分。"


def test_an_idle_conversation_the_customer_never_wrote_in_asks_for_no_rating(settings):
    settings.CONVERSATION_IDLE_RESOLVE_AFTER = 60
    conversation, _ = services.conversation_start()
    make_idle(conversation, 61)
    assert services.conversations_lifecycle_run()["resolved"] == 1
    conversation.refresh_from_db()
    assert conversation.rating_requested_at is None and not conversation_to_dict(conversation)["rate"]
    assert system_texts(conversation) == [
        "This conversation was closed after a period of inactivity. Write again any time."
    ]


def make_idle(conversation: Conversation, seconds: float) -> None:
    """The conversation's messages (and its opening) `seconds` ago."""
    then = timezone.now() - datetime.timedelta(seconds=seconds)
    Conversation.objects.filter(pk=conversation.pk).update(last_message_at=then, created_at=then)
    Message.objects.filter(conversation=conversation).update(created_at=then)


def test_idle_conversations_with_the_bot_or_an_agent_are_resolved_and_asked_for_a_rating_once(
    settings, django_capture_on_commit_callbacks, sent, replies
):
    settings.CONVERSATION_IDLE_RESOLVE_AFTER = 600
    agent = get_user_model().objects.create_user("ann")
    with_bot, with_agent, waiting, recent = written(), written(), written(), written()
    for conversation in (with_agent, waiting):
        services.conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.CUSTOMER_REQUEST)
    services.conversation_assign(conversation_id=with_agent.id, agent=agent, expected_status="queued")
    for conversation in (with_bot, with_agent, waiting):
        make_idle(conversation, 601)
    make_idle(recent, 599)

    with django_capture_on_commit_callbacks(execute=True):
        assert services.conversations_lifecycle_run() == {"woken": 0, "resolved": 2}
    rows = {c.pk: c for c in Conversation.objects.all()}
    assert rows[with_bot.pk].status == rows[with_agent.pk].status == Conversation.Status.RESOLVED
    assert rows[with_agent.pk].assignee_id == agent.pk  # kept: the last agent gets it back if the customer writes
    assert rows[waiting.pk].status == Conversation.Status.QUEUED  # a customer is waiting: never closed
    assert rows[recent.pk].status == Conversation.Status.BOT
    assert system_texts(rows[with_bot.pk])[-1] == (
        "This conversation was closed after a period of inactivity. How did we do?"
    )
    resolved = [event for event in statuses(sent) if event["status"] == "resolved"]
    assert len(resolved) == 2 and all(event["rate"] for event in resolved)
    assert services.conversations_lifecycle_run() == {"woken": 0, "resolved": 0}  # idempotent


def test_a_recent_bot_reply_keeps_a_conversation_open_and_zero_turns_the_auto_resolve_off(settings, replies):
    settings.CONVERSATION_IDLE_RESOLVE_AFTER = 600
    conversation = written()
    make_idle(conversation, 3600)
    Message.objects.create(conversation=conversation, seq=99, role=Message.Role.BOT, content="Here it is.")
    assert services.conversations_lifecycle_run()["resolved"] == 0
    Message.objects.filter(seq=99).update(created_at=timezone.now() - datetime.timedelta(seconds=601))
    settings.CONVERSATION_IDLE_RESOLVE_AFTER = 0
    assert services.conversations_lifecycle_run()["resolved"] == 0
    settings.CONVERSATION_IDLE_RESOLVE_AFTER = 600
    assert services.conversations_lifecycle_run()["resolved"] == 1


def test_the_idle_pass_is_bounded_per_run(settings, replies):
    settings.CONVERSATION_IDLE_RESOLVE_AFTER = 60
    for _ in range(3):
        make_idle(written(), 120)
    assert services.conversations_lifecycle_run(batch=2)["resolved"] == 2
    assert services.conversations_lifecycle_run(batch=2)["resolved"] == 1


def test_a_message_arriving_just_before_the_idle_resolve_keeps_the_conversation_open(settings, replies):
    conversation = written()
    make_idle(conversation, 120)
    idle_before = timezone.now() - datetime.timedelta(seconds=60)
    services.message_post_customer(conversation_id=conversation.id, content="Still there?")
    assert services.conversation_resolve_idle(conversation_id=conversation.id, idle_before=idle_before) is False
    assert Conversation.objects.get(pk=conversation.pk).status == Conversation.Status.BOT


def assigned(agent) -> Conversation:
    conversation = written()
    services.conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.CUSTOMER_REQUEST)
    services.conversation_assign(conversation_id=conversation.id, agent=agent, expected_status="queued")
    return Conversation.objects.get(pk=conversation.pk)


def test_only_the_assignee_snoozes_and_only_until_a_future_time(django_capture_on_commit_callbacks, sent):
    ann, bob = (get_user_model().objects.create_user(name) for name in ("ann", "bob"))
    conversation = assigned(ann)
    with pytest.raises(services.ActionRefused) as refused:
        services.conversation_snooze(conversation_id=conversation.id, agent=bob, until=None)
    assert refused.value.code == "not_assigned"
    past = timezone.now() - datetime.timedelta(minutes=1)
    with pytest.raises(services.ActionRefused) as refused:
        services.conversation_snooze(conversation_id=conversation.id, agent=ann, until=past)
    assert refused.value.code == "invalid_until"
    until = timezone.now() + datetime.timedelta(hours=1)
    with django_capture_on_commit_callbacks(execute=True):
        services.conversation_snooze(conversation_id=conversation.id, agent=ann, until=until)
    conversation.refresh_from_db()
    assert (conversation.status, conversation.snoozed_until, conversation.assignee_id) == ("snoozed", until, ann.pk)
    assert statuses(sent)[-1]["status"] == "snoozed" and statuses(sent)[-1]["assignee"] == "ann"
    services.conversation_resolve(conversation_id=conversation.id, agent=ann)
    with pytest.raises(services.ActionRefused):  # only a conversation with an agent
        services.conversation_snooze(conversation_id=conversation.id, agent=ann, until=None)


def test_the_bot_stays_silent_while_snoozed(replies):
    ann = get_user_model().objects.create_user("ann")
    conversation = assigned(ann)
    services.conversation_snooze(conversation_id=conversation.id, agent=ann, until=None)
    services.message_post_customer(conversation_id=conversation.id, content="Any news?")
    assert replies == [] and Conversation.objects.get(pk=conversation.pk).status != Conversation.Status.BOT


def test_a_snooze_is_not_woken_before_its_time():
    ann = get_user_model().objects.create_user("ann")
    conversation = assigned(ann)
    services.conversation_snooze(
        conversation_id=conversation.id, agent=ann, until=timezone.now() + datetime.timedelta(minutes=5)
    )
    assert services.conversation_wake(conversation_id=conversation.id) is False
    assert services.conversations_lifecycle_run()["woken"] == 0


def test_a_known_email_is_not_asked_for_again_when_nobody_can_answer(django_capture_on_commit_callbacks, sent):
    known = written(customer_email="li@example.com", language="zh")
    unknown = written()
    with django_capture_on_commit_callbacks(execute=True):
        for conversation in (known, unknown):
            services.conversation_contact_request(conversation_id=conversation.id)
    assert system_texts(known) == ["目前没有客服在线。您的消息已保存为工单,我们会回复到 li@example.com。"]
    asked = [event["conversation"] for kind, event in sent if event["type"] == "chat.contact_request"]
    assert asked == [str(unknown.id)]
