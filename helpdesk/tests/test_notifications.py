"""Agents' notification emails, through a real SMTP server: only to agents who opted in (with the console and an
address), once per conversation; and the console page where they opt in."""

import datetime

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from chat import dispatch, services
from chat.models import Conversation, HandoffReason, Site
from helpdesk import notifications
from helpdesk.models import AgentNotification, AgentPresence
from tests.smtp_server import body_text, smtp_settings, smtp_start

pytestmark = pytest.mark.django_db
PASSWORD = "pw-notify-123"


@pytest.fixture
def smtp(settings):
    controller, inbox = smtp_start()
    smtp_settings(settings, controller.port)
    settings.HELPDESK_PUBLIC_URL = "https://help.acme.test"
    yield inbox
    controller.stop()


@pytest.fixture
def enqueued(monkeypatch):
    calls = []
    monkeypatch.setattr(dispatch, "task_enqueue", lambda task, *args: calls.append((task.name, args)))
    monkeypatch.setattr(dispatch, "task_enqueue_later", lambda task, delay, *args: calls.append((task.name, args)))
    return calls


def agent(django_user_model, name, *, email=True, console=True, left=False, waiting=False):
    user = django_user_model.objects.create_user(
        name, password=PASSWORD, email=f"{name}@acme.test" if email else "", first_name=name.title()
    )
    if console:
        user.user_permissions.add(Permission.objects.get(codename="use_console"))
    AgentPresence.objects.create(user=user, notify_left_messages=left, notify_waiting=waiting)
    return user


def test_a_left_message_is_emailed_to_opted_in_agents_only_and_once(smtp, enqueued, django_user_model):
    agent(django_user_model, "ann", left=True)
    agent(django_user_model, "bob")  # not opted in
    agent(django_user_model, "cat", left=True, console=False)  # no console
    agent(django_user_model, "dan", left=True, email=False)  # no address
    site = Site.objects.create(name="Shop")
    conversation, _ = services.message_leave(
        site=site, content="Can I return a sofa?", customer_name="Ola", customer_email="ola@example.no"
    )
    assert notifications.left_message_notify(conversation_id=conversation.id) == 1
    assert notifications.left_message_notify(conversation_id=conversation.id) == 0
    [email] = smtp.wait_for(1)
    assert email["To"] == "ann@acme.test" and email["Subject"] == "New message from Ola"
    text = body_text(email)
    assert "Can I return a sofa?" in text and "https://help.acme.test/console/notifications/" in text


def test_a_left_message_queues_the_agents_notification_after_commit(
    enqueued, django_user_model, django_capture_on_commit_callbacks
):
    site = Site.objects.create(name="Shop")
    with django_capture_on_commit_callbacks(execute=True):
        conversation, _ = services.message_leave(
            site=site, content="Hello?", customer_name="", customer_email="ola@example.no"
        )
    assert ("helpdesk.tasks.left_message_notify_task", (str(conversation.id),)) in enqueued
    enqueued.clear()
    other, _ = services.conversation_start(language="en")
    with django_capture_on_commit_callbacks(execute=True):
        services.conversation_hand_off(conversation_id=other.id, reason=HandoffReason.CUSTOMER_REQUEST)
    assert [c for c in enqueued if c[0] == "helpdesk.tasks.left_message_notify_task"] == []


def test_conversations_waiting_past_the_threshold_are_emailed_once_each(
    smtp, enqueued, settings, django_user_model, monkeypatch
):
    settings.NOTIFY_WAITING_AFTER = 600
    agent(django_user_model, "ann", waiting=True)
    agent(django_user_model, "bob", left=True)

    def queued(name, minutes_ago):
        conversation, _ = services.conversation_start(language="en", customer_name=name)
        services.message_post_customer(conversation_id=conversation.id, content=f"{name} needs help")
        services.conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.CUSTOMER_REQUEST)
        at = timezone.now() - datetime.timedelta(minutes=minutes_ago)
        Conversation.objects.filter(pk=conversation.id).update(handed_off_at=at)
        return conversation

    monkeypatch.setattr("chat.services.replies.reply_enqueue", lambda **kw: None)
    queued("Old", 30)
    queued("New", 2)
    assert notifications.waiting_notify_run() == 1
    assert notifications.waiting_notify_run() == 0
    [email] = smtp.wait_for(1)
    assert email["To"] == "ann@acme.test" and "Old needs help" in body_text(email)
    assert "New needs help" not in body_text(email)
    queued("Later", 11)
    assert notifications.waiting_notify_run() == 1
    second = smtp.wait_for(2)[1]
    assert "Later needs help" in body_text(second) and "Old needs help" not in body_text(second)
    assert AgentNotification.objects.filter(kind="waiting").count() == 2


def test_the_notifications_page_needs_the_console_and_a_csrf_token_and_saves_the_choices(django_user_model):
    ann = agent(django_user_model, "ann")
    agent(django_user_model, "bob", console=False)
    assert Client().get("/console/notifications/").status_code == 302  # to the sign-in
    outsider = Client()
    outsider.login(username="bob", password=PASSWORD)
    assert outsider.get("/console/notifications/").status_code == 403

    client = Client(enforce_csrf_checks=True)
    client.login(username="ann", password=PASSWORD)
    page = client.get("/console/notifications/")
    assert page.status_code == 200 and "ann@acme.test" in page.content.decode()
    assert client.post("/console/notifications/", {"left_messages": "on"}).status_code == 403  # no CSRF token
    token = page.cookies["csrftoken"].value
    response = client.post("/console/notifications/", {"left_messages": "on", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    presence = AgentPresence.objects.get(user=ann)
    assert (presence.notify_left_messages, presence.notify_waiting) == (True, False)
    assert 'href="/console/notifications/"' in client.get("/console/").content.decode()  # linked from the console
