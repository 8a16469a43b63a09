"""The conversation's lifecycle on the staff side: a customer writing after an agent's resolve goes back to that
agent (online with room) or the queue, with the ticket reopened; snoozes wake back to the agent unless they are gone;
the console's reopen and snooze frames; the idle auto-resolve resolving tickets; the schedules that run it."""

import datetime

import pytest
from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from django.utils import timezone

from chat import broadcast, dispatch
from chat import services as chat_services
from chat.models import Conversation, Message
from helpdesk import services
from helpdesk.models import AgentPresence, Ticket
from helpdesk.tests.test_authorization import console_of, queued, staff

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sent(monkeypatch):
    """The events services broadcast, as (group kind, event) pairs; reply jobs as ("reply", message id)."""
    record: list[tuple] = []

    def group_send(group: str, event: dict) -> None:
        kind = "agents" if group == services.AGENTS_GROUP else "staff" if group.endswith(".staff") else "conversation"
        record.append((kind, event))

    monkeypatch.setattr(broadcast, "group_send", group_send)
    monkeypatch.setattr("chat.services.replies.reply_enqueue", lambda **kw: record.append(("reply", kw["message_id"])))
    return record


def online(agent, *, capacity: int = 3) -> None:
    AgentPresence.objects.update_or_create(
        user=agent, defaults={"status": AgentPresence.Status.ONLINE, "connections": 1, "capacity": capacity}
    )


def resolved_by(agent, customer_email: str = "") -> Conversation:
    conversation = queued()
    if customer_email:
        Conversation.objects.filter(pk=conversation.pk).update(customer_email=customer_email)
    assert services.conversation_claim(conversation_id=conversation.id, agent=agent, enforce_capacity=False)
    chat_services.message_post_agent(conversation_id=conversation.id, agent=agent, content="Done: refunded.")
    services.conversation_resolve_by_staff(conversation_id=conversation.id, agent=agent)
    return Conversation.objects.get(pk=conversation.pk)


def test_a_customer_writing_after_an_agents_resolve_goes_back_to_that_agent_when_online(sent):
    ann = staff("ann", groups=["agent"])
    online(ann)
    conversation = resolved_by(ann)
    assert Ticket.objects.get(conversation=conversation).status == Ticket.Status.RESOLVED
    sent.clear()
    chat_services.message_post_customer(conversation_id=conversation.id, content="It did not arrive after all")
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee_id) == (Conversation.Status.AGENT, ann.pk)
    ticket = Ticket.objects.get(conversation=conversation)
    assert (ticket.status, ticket.assignee_id) == (Ticket.Status.OPEN, ann.pk)
    assert not [item for item in sent if item[0] == "reply"]  # the agent answers, not the bot
    to_widget = [e for kind, e in sent if kind == "conversation" and e["type"] == "chat.status"]
    assert [(e["status"], e.get("assignee")) for e in to_widget] == [("agent", "ann")]
    to_consoles = [e["entry"] for kind, e in sent if kind == "agents"]
    assert to_consoles and to_consoles[-1]["status"] == "agent" and to_consoles[-1]["assignee"] == "ann"
    system = conversation.messages.filter(role=Message.Role.SYSTEM).order_by("seq").last()
    assert system.content == "The conversation was reopened; a member of our team will reply here."


@pytest.mark.parametrize("why", ["offline", "at capacity", "no longer an agent"])
def test_it_goes_to_the_queue_when_the_last_agent_cannot_take_it(sent, why):
    ann = staff("ann", groups=["agent"])
    bob = staff("bob", groups=["agent"])
    online(bob)  # someone else is there: the customer is not asked for an email
    conversation = resolved_by(ann)
    if why == "at capacity":
        online(ann, capacity=1)
        services.conversation_claim(conversation_id=queued("Other").id, agent=ann)
    elif why == "no longer an agent":
        online(ann)
        ann.groups.clear()
    chat_services.message_post_customer(conversation_id=conversation.id, content="Hello again")
    conversation.refresh_from_db()
    # Waiting for anyone to claim it; credited to ann (reports) until someone does.
    assert (conversation.status, conversation.assignee_id) == (Conversation.Status.QUEUED, ann.pk)
    assert Ticket.objects.get(conversation=conversation).status == Ticket.Status.OPEN
    to_widget = [e["status"] for kind, e in sent if kind == "conversation" and e["type"] == "chat.status"]
    assert to_widget[-1] == "queued"
    assert [e["entry"]["status"] for kind, e in sent if kind == "agents"][-1] == "queued"
    assert not [item for item in sent if item[0] == "reply"]
    assert services.conversation_claim(conversation_id=conversation.id, agent=bob)  # anyone may claim it


def test_with_nobody_online_a_known_email_is_told_not_asked_again(sent):
    ann = staff("ann", groups=["agent"])
    conversation = resolved_by(ann, customer_email="li@example.com")
    sent.clear()
    chat_services.message_post_customer(conversation_id=conversation.id, content="Hello again")
    texts = list(conversation.messages.filter(role="system").order_by("seq").values_list("content", flat=True))
    assert texts[-1].endswith("we will reply to li@example.com.")
    assert not [e for kind, e in sent if e["type"] == "chat.contact_request"]


def test_a_snoozed_conversation_comes_back_to_its_agent_even_offline_or_to_the_queue_if_they_are_gone(sent):
    ann = staff("ann", groups=["agent"])
    kept, lost = queued("Kept"), queued("Lost")
    for conversation in (kept, lost):
        services.conversation_claim(conversation_id=conversation.id, agent=ann)
        services.conversation_snooze_by_staff(conversation_id=conversation.id, agent=ann, until=None)
    assert Conversation.objects.get(pk=kept.pk).status == Conversation.Status.SNOOZED
    chat_services.message_post_customer(conversation_id=kept.id, content="Any news?")
    kept.refresh_from_db()
    assert (kept.status, kept.assignee_id, kept.snoozed_until) == (Conversation.Status.AGENT, ann.pk, None)
    ann.is_active = False
    ann.save()
    chat_services.message_post_customer(conversation_id=lost.id, content="Any news?")
    lost.refresh_from_db()
    assert lost.status == Conversation.Status.QUEUED
    assert not [item for item in sent if item[0] == "reply"]


def test_a_snooze_until_a_time_wakes_in_the_periodic_pass(sent):
    ann = staff("ann", groups=["agent"])
    conversation = queued()
    services.conversation_claim(conversation_id=conversation.id, agent=ann)
    soon = (timezone.now() + datetime.timedelta(minutes=1)).isoformat()
    services.conversation_snooze_by_staff(conversation_id=conversation.id, agent=ann, until=soon)
    assert chat_services.conversations_lifecycle_run()["woken"] == 0
    Conversation.objects.filter(pk=conversation.pk).update(snoozed_until=timezone.now() - datetime.timedelta(seconds=1))
    sent.clear()
    assert chat_services.conversations_lifecycle_run()["woken"] == 1
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee_id) == (Conversation.Status.AGENT, ann.pk)
    assert [e["entry"]["status"] for kind, e in sent if kind == "agents"][-1] == "agent"
    # No message for the customer: the snooze was the agent's business.
    assert not conversation.messages.filter(role="system", content__icontains="reopened").exists()


def test_auto_resolve_resolves_the_ticket_and_tells_the_consoles(settings, sent):
    settings.CONVERSATION_IDLE_RESOLVE_AFTER = 60
    ann = staff("ann", groups=["agent"])
    conversation = queued()
    services.conversation_claim(conversation_id=conversation.id, agent=ann)
    then = timezone.now() - datetime.timedelta(seconds=61)
    Conversation.objects.filter(pk=conversation.pk).update(last_message_at=then)
    Message.objects.filter(conversation=conversation).update(created_at=then)
    sent.clear()
    assert chat_services.conversations_lifecycle_run()["resolved"] == 1
    assert Ticket.objects.get(conversation=conversation).status == Ticket.Status.RESOLVED
    assert [e["entry"]["status"] for kind, e in sent if kind == "agents"][-1] == "resolved"  # the consoles hear it


async def test_the_console_reopens_a_resolved_conversation_for_its_agent_and_refuses_others():
    ann = await database_sync_to_async(staff)("ann", groups=["agent"])
    bob = await database_sync_to_async(staff)("bob", groups=["agent"])
    conversation = await database_sync_to_async(resolved_by)(ann)
    console = await console_of(bob)
    await console.send(type="reopen", conversation=str(conversation.id))
    refused = await console.next("status")
    assert (refused["type"], refused["code"]) == ("error", "forbidden")
    await console.socket.disconnect()
    console = await console_of(ann)
    await console.send(type="reopen", conversation=str(conversation.id))
    item = await console.next("queue_item")
    assert (item["item"]["status"], item["item"]["assignee"]) == ("agent", "ann")
    await console.send(type="reopen", conversation=str(conversation.id))
    assert (await console.next("queue_item"))["code"] == "not_resolved"
    await console.socket.disconnect()
    conversation = await database_sync_to_async(Conversation.objects.get)(pk=conversation.pk)
    ticket = await database_sync_to_async(Ticket.objects.get)(conversation=conversation)
    assert (conversation.status, conversation.assignee_id) == (Conversation.Status.AGENT, ann.pk)
    assert (ticket.status, ticket.assignee_id) == (Ticket.Status.OPEN, ann.pk)
    texts = await database_sync_to_async(list)(
        conversation.messages.filter(role="system").values_list("content", flat=True)
    )
    assert texts[-1] == "A member of our team reopened this conversation."


async def test_the_console_snoozes_for_the_assignee_or_a_supervisor_only():
    ann = await database_sync_to_async(staff)("ann", groups=["agent"])
    bob = await database_sync_to_async(staff)("bob", groups=["agent"])
    boss = await database_sync_to_async(staff)("boss", groups=["manager"])
    conversation = await database_sync_to_async(queued)()
    await database_sync_to_async(services.conversation_claim)(conversation_id=conversation.id, agent=ann)
    until = (timezone.now() + datetime.timedelta(hours=2)).replace(microsecond=0)
    console = await console_of(bob)
    await console.send(type="snooze", conversation=str(conversation.id), until=None)
    assert (await console.next("queue_item"))["code"] == "forbidden"
    await console.socket.disconnect()
    console = await console_of(ann)
    for bad in ("tomorrow", "2020-01-01T09:00:00Z", "2026-13-01T09:00:00", 5):
        await console.send(type="snooze", conversation=str(conversation.id), until=bad)
        assert (await console.next("queue_item"))["code"] == "invalid_until", bad
    await console.send(type="snooze", conversation=str(conversation.id), until=until.isoformat())
    news = await console.next("queue_item", "queue_remove")  # the consoles hear it (a list showing it, or not)
    assert news["type"] == "queue_remove" or news["item"]["status"] == "snoozed", news
    await console.socket.disconnect()
    conversation = await database_sync_to_async(Conversation.objects.get)(pk=conversation.pk)
    assert (conversation.status, conversation.snoozed_until) == (Conversation.Status.SNOOZED, until)
    console = await console_of(boss)
    await console.send(type="snooze", conversation=str(conversation.id), until=None)
    await console.send(type="ping")
    assert (await console.next("pong"))["type"] == "pong"
    await console.socket.disconnect()
    conversation = await database_sync_to_async(Conversation.objects.get)(pk=conversation.pk)
    assert (conversation.status, conversation.snoozed_until, conversation.assignee_id) == ("snoozed", None, ann.pk)


def test_celery_beat_runs_the_lifecycle_pass_every_minute():
    from helpdesk.celery import app

    entry = django_settings.CELERY_BEAT_SCHEDULE["conversations-lifecycle"]
    assert entry["schedule"] == 60.0
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks


def test_the_embedded_scheduler_starts_once_only_in_process_and_enqueues_the_task_each_interval(settings, monkeypatch):
    started, ran, sleeps = [], [], []

    class Task:
        name = "chat.tasks.conversations_lifecycle_task"

        def __call__(self):
            ran.append(True)

    monkeypatch.setattr(dispatch, "_periodic_started", False)
    monkeypatch.setattr(
        dispatch.threading, "Thread", lambda **kw: type("T", (), {"start": lambda _: started.append(kw)})()
    )
    settings.GENERATION_BACKEND = "celery"
    assert dispatch.periodic_start(Task(), 60) is False
    settings.GENERATION_BACKEND = "inprocess"
    assert dispatch.periodic_start(Task(), 60) is True
    assert dispatch.periodic_start(Task(), 60) is False
    assert [(kw["target"], kw["name"], kw["daemon"]) for kw in started] == [
        (dispatch.periodic_loop, "periodic-chat.tasks.conversations_lifecycle_task", True)
    ]
    monkeypatch.undo()  # the real threads again, for the pool the loop hands the task to

    def sleep(seconds):  # two intervals, then the loop is stopped
        sleeps.append(seconds)
        if len(sleeps) > 2:
            raise StopIteration

    settings.GENERATION_BACKEND = "inprocess"
    with pytest.raises(StopIteration):
        dispatch.periodic_loop(Task(), 60, sleep=sleep)
    assert dispatch.in_process_wait(timeout=10)
    assert sleeps == [60, 60, 60] and ran == [True, True]
