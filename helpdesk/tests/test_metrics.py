"""The staff side's Prometheus series: handoffs and ratings counted from chat's signals once committed, the state
gauges read from the database through the real /metrics view, webhook deliveries, and the worker's own metrics
endpoint (a real HTTP server) with its access rule."""

import datetime
import urllib.error
import urllib.request

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, Counter

from chat import services as chat_services
from chat.models import Conversation, HandoffReason, Site, SiteHours
from helpdesk.metrics import helpdesk_state, web_collectors_register
from helpdesk.models import AgentPresence, Webhook, WebhookDelivery
from helpdesk.webhooks import webhook_attempt
from helpdesk.worker_metrics import metrics_request_allowed, worker_metrics_serve
from tests.stack import free_port
from tests.webhook_receiver import WebhookReceiver


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def handoffs(reason: str) -> float:
    return sample("helpdesk_handoffs_total", reason=reason)


@pytest.fixture
def bot_conversation(transactional_db, fake_engine, in_process_generation):
    """A conversation with the bot; anything it enqueues (the handoff summary) runs here on the fake engine."""
    conversation, _secret = chat_services.conversation_start(language="en")
    return conversation


def test_a_handoff_is_counted_by_reason_once_committed_and_a_rolled_back_one_never(bot_conversation):
    before = handoffs("customer_request")

    class RolledBack(Exception):
        pass

    with pytest.raises(RolledBack), transaction.atomic():
        chat_services.conversation_hand_off(conversation_id=bot_conversation.id, reason=HandoffReason.CUSTOMER_REQUEST)
        raise RolledBack
    assert handoffs("customer_request") == before

    with transaction.atomic():
        chat_services.conversation_hand_off(conversation_id=bot_conversation.id, reason=HandoffReason.CUSTOMER_REQUEST)
        assert handoffs("customer_request") == before  # not before the commit
    assert handoffs("customer_request") == before + 1
    # Every reason exists at 0 from the start, so a dashboard shows them before the first one happens.
    assert REGISTRY.get_sample_value("helpdesk_handoffs_total", {"reason": "offline_message"}) is not None


def test_a_rating_is_counted_by_score(bot_conversation):
    before = sample("helpdesk_ratings_total", score="4")
    chat_services.conversation_resolve(conversation_id=bot_conversation.id, by_customer=True)
    chat_services.rating_create(conversation_id=bot_conversation.id, score=4, comment="Good")
    assert sample("helpdesk_ratings_total", score="4") == before + 1
    assert REGISTRY.get_sample_value("helpdesk_ratings_total", {"score": "1"}) is not None


@pytest.mark.django_db
def test_the_state_gauges_read_the_queue_the_agents_and_the_business_hours(client):
    now = timezone.now()
    for waited in (30, 300):
        Conversation.objects.create(
            secret_hash=f"h{waited}",
            status=Conversation.Status.QUEUED,
            handed_off_at=now - datetime.timedelta(seconds=waited),
        )
    Conversation.objects.create(secret_hash="bot", status=Conversation.Status.BOT)
    Conversation.objects.create(
        secret_hash="agent", status=Conversation.Status.AGENT, handed_off_at=now - datetime.timedelta(hours=5)
    )
    users = get_user_model().objects
    AgentPresence.objects.create(user=users.create_user("ann"), status="online", connections=1)
    AgentPresence.objects.create(user=users.create_user("bob"), status="online", connections=0)  # console closed
    AgentPresence.objects.create(user=users.create_user("cat"), status="away", connections=2)
    today = now.weekday()
    open_site, closed_site = Site.objects.create(name="Open"), Site.objects.create(name="Closed")
    inactive = Site.objects.create(name="Off", is_active=False)
    Site.objects.create(name="No hours")  # always open, but has no business hours to be in
    for site, weekday in ((open_site, today), (closed_site, (today + 1) % 7), (inactive, today)):
        SiteHours.objects.create(site=site, weekday=weekday, opens=datetime.time(0), closes=datetime.time(23, 59, 59))

    state = helpdesk_state()
    assert state["helpdesk_conversations_waiting"] == 2
    assert 300 <= state["helpdesk_conversations_waiting_oldest_seconds"] < 330
    assert state["helpdesk_agents_online"] == 1
    assert state["helpdesk_sites_in_business_hours"] == 1

    web_collectors_register()  # as helpdesk.asgi does in every web process
    web_collectors_register()  # idempotent: registering twice would raise
    body = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert "helpdesk_conversations_waiting 2.0" in body
    assert "helpdesk_agents_online 1.0" in body
    assert "helpdesk_sites_in_business_hours 1.0" in body


@pytest.mark.django_db
def test_the_state_gauges_are_zero_when_nobody_waits():
    state = helpdesk_state()
    assert state["helpdesk_conversations_waiting"] == 0 and state["helpdesk_conversations_waiting_oldest_seconds"] == 0


@pytest.mark.django_db
def test_webhook_attempts_are_counted_by_outcome(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True  # the receiver listens on 127.0.0.1
    receiver = WebhookReceiver([500], then=200)  # fails the first request, accepts the next
    try:
        webhook = Webhook.objects.create(name="CRM", url=receiver.url)
        delivery = WebhookDelivery.objects.create(webhook=webhook, event=Webhook.Event.RATED, payload={"id": "1"})
        failed = sample("helpdesk_webhook_deliveries_total", outcome="failed")
        delivered = sample("helpdesk_webhook_deliveries_total", outcome="delivered")
        assert webhook_attempt(delivery.id, attempt=0) is False
        assert sample("helpdesk_webhook_deliveries_total", outcome="failed") == failed + 1
        assert webhook_attempt(delivery.id, attempt=0) is True  # a copy of the first attempt's task: not made again
        assert sample("helpdesk_webhook_deliveries_total", outcome="failed") == failed + 1
        assert webhook_attempt(delivery.id, attempt=1) is True
        assert sample("helpdesk_webhook_deliveries_total", outcome="delivered") == delivered + 1
        assert len(receiver.received) == 2
    finally:
        receiver.close()

    given_up = sample("helpdesk_webhook_deliveries_total", outcome="given_up")
    webhook.is_active = False
    webhook.save()
    stale = WebhookDelivery.objects.create(webhook=webhook, event=Webhook.Event.RATED, payload={"id": "2"})
    assert webhook_attempt(stale.id) is True
    assert webhook_attempt(stale.id) is True  # already given up: counted once
    assert sample("helpdesk_webhook_deliveries_total", outcome="given_up") == given_up + 1


def test_the_worker_metrics_rule_is_the_web_one():
    assert metrics_request_allowed(authorization="", client="127.0.0.1", token="")
    assert metrics_request_allowed(authorization="", client="::ffff:127.0.0.1", token="")
    assert not metrics_request_allowed(authorization="", client="203.0.113.9", token="")
    assert not metrics_request_allowed(authorization="", client="", token="")
    assert not metrics_request_allowed(authorization="", client="127.0.0.1", token="s3cret")  # the token, then
    assert not metrics_request_allowed(authorization="Bearer wrong", client="127.0.0.1", token="s3cret")
    assert metrics_request_allowed(authorization="Bearer s3cret", client="203.0.113.9", token="s3cret")


def get(url: str, token: str = "") -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_worker_serves_its_registry_to_the_bearer_of_the_token_only():
    registry = CollectorRegistry()
    Counter("helpdesk_test_events_total", "Events in this test", registry=registry).inc(3)
    port = free_port()
    server = worker_metrics_serve(port=port, addr="127.0.0.1", token="s3cret", registry=registry)
    try:
        assert get(f"http://127.0.0.1:{port}/metrics")[0] == 403
        assert get(f"http://127.0.0.1:{port}/metrics", token="wrong")[0] == 403
        status, body = get(f"http://127.0.0.1:{port}/metrics", token="s3cret")
        assert status == 200 and "helpdesk_test_events_total 3.0" in body
        # A second worker on the same port: logged, and the worker goes on without metrics.
        assert worker_metrics_serve(port=port, addr="127.0.0.1", token="", registry=registry) is None
    finally:
        server.shutdown()
        server.server_close()
