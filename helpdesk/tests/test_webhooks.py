"""Outgoing webhooks: signing, which events reach which webhooks, and delivery to a real HTTP server with retries."""

import json
import logging
import time

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from chat import dispatch
from chat import services as chat_services
from chat.models import HandoffReason, Site
from helpdesk import services
from helpdesk.models import Ticket, Webhook, WebhookDelivery
from helpdesk.tasks import webhook_backoff, webhook_deliver_task
from helpdesk.webhooks import (
    webhook_attempt,
    webhook_event_emit,
    webhook_signature,
    webhook_signature_verify,
)
from tests.stack import free_port
from tests.webhook_receiver import WebhookReceiver

SECRET = "whsec_test"
BODY = b'{"id":"1","event":"conversation.rated"}'


@pytest.fixture
def receivers():
    """Make real receiving servers; all are shut down after the test."""
    made = []

    def make(*args, **kwargs) -> WebhookReceiver:
        made.append(WebhookReceiver(*args, **kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture
def fast_retries(in_process_generation):
    """Deliveries run in this process's threads, retrying after tens of milliseconds."""
    settings = in_process_generation
    settings.WEBHOOK_BACKOFF_BASE = 0.1
    settings.WEBHOOK_BACKOFF_MAX = 1.0
    settings.WEBHOOK_TIMEOUT = 2.0
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True  # the receivers listen on 127.0.0.1
    return settings


def emit_and_deliver(webhook: Webhook) -> WebhookDelivery:
    """Emit one event for `webhook` (committed, so its delivery is enqueued) and wait until delivery is over."""
    (delivery,) = webhook_event_emit(event=Webhook.Event.RATED, data={"rating": {"score": 5, "comment": "Great"}})
    assert dispatch.in_process_wait(timeout=20)
    delivery.refresh_from_db()
    return delivery


# --- Signature ---------------------------------------------------------------------------------------------------


def test_a_signature_verifies_the_exact_body_with_the_secret_within_five_minutes():
    now = int(time.time())
    header = webhook_signature(SECRET, now, BODY)
    assert header.startswith(f"t={now},v1=") and len(header.split("v1=")[1]) == 64
    assert webhook_signature_verify(SECRET, header, BODY)
    assert webhook_signature_verify(SECRET, webhook_signature(SECRET, now - 290, BODY), BODY)


def test_a_tampered_body_a_wrong_secret_or_an_old_timestamp_fails_verification():
    now = int(time.time())
    header = webhook_signature(SECRET, now, BODY)
    assert not webhook_signature_verify(SECRET, header, BODY.replace(b"5", b"1").replace(b"rated", b"rateD"))
    assert not webhook_signature_verify("whsec_other", header, BODY)
    assert not webhook_signature_verify(SECRET, webhook_signature(SECRET, now - 301, BODY), BODY)
    assert not webhook_signature_verify(SECRET, webhook_signature(SECRET, now + 301, BODY), BODY)
    # A fresh timestamp pasted onto an old signature does not verify: the timestamp is signed too.
    old_mac = webhook_signature(SECRET, now - 3600, BODY).split(",")[1]
    assert not webhook_signature_verify(SECRET, f"t={now},{old_mac}", BODY)
    for garbage in ("", "t=abc,v1=00", "v1=00", f"t={now}"):
        assert not webhook_signature_verify(SECRET, garbage, BODY)


def test_any_of_several_signatures_verifies_so_secrets_can_be_rotated():
    now = int(time.time())
    new = webhook_signature(SECRET, now, BODY).split(",")[1]
    old = webhook_signature("whsec_old", now, BODY).split(",")[1]
    assert webhook_signature_verify(SECRET, f"t={now},{old},{new}", BODY)
    assert webhook_signature_verify("whsec_old", f"t={now},{old},{new}", BODY)


# --- Webhooks and emitting ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_each_webhook_gets_its_own_secret_and_only_known_events_are_accepted():
    first = Webhook.objects.create(name="CRM", url="https://crm.example.com/hook")
    second = Webhook.objects.create(name="Slack", url="https://hooks.example.com/x")
    assert first.secret.startswith("whsec_") and len(first.secret) > 40 and first.secret != second.secret
    first.events = ["conversation.rated", "conversation.claimed"]
    first.full_clean()
    first.events = ["conversation.deleted"]
    with pytest.raises(ValidationError):
        first.full_clean()


@pytest.mark.django_db
def test_an_event_makes_a_delivery_for_each_active_subscribed_webhook_enqueued_only_on_commit(
    monkeypatch, django_capture_on_commit_callbacks
):
    enqueued = []
    monkeypatch.setattr(dispatch, "task_enqueue", lambda task, *args: enqueued.append((task, args)))
    every = Webhook.objects.create(name="all", url="https://a.example.com/")
    rated = Webhook.objects.create(name="rated", url="https://b.example.com/", events=["conversation.rated"])
    Webhook.objects.create(name="handoffs", url="https://c.example.com/", events=["conversation.handed_off"])
    Webhook.objects.create(name="off", url="https://d.example.com/", is_active=False)

    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            deliveries = webhook_event_emit(event="conversation.rated", data={"rating": {"score": 4}})
            assert enqueued == []  # nothing may leave before the event is committed
            assert {d.webhook for d in WebhookDelivery.objects.all()} == {every, rated}

    assert [(task, args) for task, args in enqueued] == [(webhook_deliver_task, (str(d.id),)) for d in deliveries]
    for delivery in deliveries:
        delivery.refresh_from_db()
        assert delivery.status == "pending" and delivery.attempts == 0 and delivery.event == "conversation.rated"
        assert delivery.payload == {
            "id": str(delivery.id),
            "event": "conversation.rated",
            "created_at": delivery.created_at.isoformat(),
            "data": {"rating": {"score": 4}},
        }


@pytest.mark.django_db
def test_a_rolled_back_event_leaves_no_delivery_and_sends_nothing(monkeypatch, django_capture_on_commit_callbacks):
    enqueued = []
    monkeypatch.setattr(dispatch, "task_enqueue", lambda task, *args: enqueued.append(args))
    Webhook.objects.create(name="all", url="https://a.example.com/")
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            webhook_event_emit(event="conversation.resolved", data={})
            raise RuntimeError("the resolve failed")
    assert enqueued == [] and not WebhookDelivery.objects.exists()


@pytest.mark.django_db
def test_a_broker_that_is_down_is_logged_and_the_delivery_stays_pending(
    monkeypatch, django_capture_on_commit_callbacks, caplog
):
    def broker_down(task, *args):
        raise ConnectionError("Error 111 connecting to redis")

    monkeypatch.setattr(dispatch, "task_enqueue", broker_down)
    Webhook.objects.create(name="all", url="https://a.example.com/")
    with caplog.at_level(logging.ERROR), django_capture_on_commit_callbacks(execute=True):
        (delivery,) = webhook_event_emit(event="conversation.resolved", data={})
    assert f"could not enqueue webhook delivery {delivery.id}" in caplog.text
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.PENDING and delivery.attempts == 0


@pytest.mark.django_db
def test_handoff_claim_resolve_and_rating_each_send_their_event_with_the_conversation(
    django_capture_on_commit_callbacks,
):
    webhook = Webhook.objects.create(name="CRM", url="https://crm.example.com/hook")
    site = Site.objects.create(name="Acme shop")
    agent = get_user_model().objects.create_user("ann", password="x", first_name="Ann", last_name="Lee")
    conversation, _ = chat_services.conversation_start(
        site=site, language="zh", customer_name="Wei", customer_email="wei@example.com"
    )

    def sent(event: str) -> dict:
        (delivery,) = WebhookDelivery.objects.filter(webhook=webhook, event=event)
        assert delivery.payload["id"] == str(delivery.id) and delivery.payload["event"] == event
        return delivery.payload["data"]

    with django_capture_on_commit_callbacks():  # the deliveries are not sent here
        assert not services.conversation_claim(conversation_id=conversation.id, agent=agent)  # still with the bot
        chat_services.conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.CUSTOMER_REQUEST)
        ticket = Ticket.objects.get(conversation_id=conversation.id)
        handed_off = sent("conversation.handed_off")["conversation"]
        assert handed_off == {
            "id": str(conversation.id),
            "status": "queued",
            "site": {"name": "Acme shop", "key": site.key},
            "language": "zh",
            "customer_name": "Wei",
            "customer_email": "wei@example.com",
            "handoff_reason": "customer_request",
            "assignee": None,
            "created_at": conversation.created_at.isoformat(),
            "resolved_at": None,
            "ticket_id": ticket.pk,
        }

        assert services.conversation_claim(conversation_id=conversation.id, agent=agent)
        claimed = sent("conversation.claimed")
        assert claimed["agent"] == {"username": "ann", "name": "Ann Lee"}
        assert claimed["conversation"]["status"] == "agent" and claimed["conversation"]["assignee"] == "ann"

        chat_services.conversation_resolve(conversation_id=conversation.id, agent=agent)
        resolved = sent("conversation.resolved")["conversation"]
        assert resolved["status"] == "resolved" and resolved["resolved_at"] is not None
        assert resolved["ticket_id"] == ticket.pk

        chat_services.rating_create(conversation_id=conversation.id, score=4, comment="Quick, thanks")
        rated = sent("conversation.rated")
        assert rated["rating"] == {"score": 4, "comment": "Quick, thanks"}
        assert rated["conversation"]["id"] == str(conversation.id)

    assert WebhookDelivery.objects.count() == 4  # the refused claim sent nothing


@pytest.mark.django_db
def test_a_conversation_without_a_site_or_ticket_sends_nulls(django_capture_on_commit_callbacks):
    Webhook.objects.create(name="CRM", url="https://crm.example.com/hook")
    conversation, _ = chat_services.conversation_start()
    with django_capture_on_commit_callbacks():
        chat_services.conversation_resolve(conversation_id=conversation.id)
    data = WebhookDelivery.objects.get().payload["data"]["conversation"]
    assert data["site"] is None and data["ticket_id"] is None and data["customer_email"] == ""


# --- Delivery to a real receiver -----------------------------------------------------------------------------------


def test_the_backoff_doubles_from_the_base_up_to_the_cap_with_jitter(settings):
    settings.WEBHOOK_BACKOFF_BASE = 10
    settings.WEBHOOK_BACKOFF_MAX = 3600
    for attempts in range(1, 12):
        ceiling = min(10 * 2 ** (attempts - 1), 3600)
        delays = {webhook_backoff(attempts) for _ in range(50)}
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(delays) > 1  # jittered
    assert 1800 <= webhook_backoff(12) <= 3600


@pytest.mark.django_db(transaction=True)
def test_a_receiver_failing_twice_gets_the_same_signed_delivery_three_times(fast_retries, receivers):
    receiver = receivers([500, 500], then=200)
    webhook = Webhook.objects.create(name="CRM", url=receiver.url)

    delivery = emit_and_deliver(webhook)

    requests = receiver.received
    assert len(requests) == 3
    for request in requests:
        assert request.method == "POST" and request.path == "/hook"
        assert request.headers["X-Helpdesk-Delivery"] == str(delivery.id)
        assert request.headers["X-Helpdesk-Event"] == "conversation.rated"
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["User-Agent"] == "helpdesk-webhooks/1"
        assert webhook_signature_verify(webhook.secret, request.headers["X-Helpdesk-Signature"], request.body)
        assert json.loads(request.body) == delivery.payload
    # Backoff: retry n waits between half and all of 0.1 * 2**(n-1) seconds.
    assert requests[1].at - requests[0].at >= 0.05 and requests[2].at - requests[1].at >= 0.1
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED and delivery.attempts == 3
    assert delivery.last_status_code == 200 and delivery.last_error == "" and delivery.delivered_at is not None


@pytest.mark.django_db(transaction=True)
def test_a_receiver_that_always_fails_ends_failed_after_the_last_attempt(fast_retries, receivers):
    fast_retries.WEBHOOK_MAX_ATTEMPTS = 4
    receiver = receivers(then=503)
    delivery = emit_and_deliver(Webhook.objects.create(name="CRM", url=receiver.url))
    assert len(receiver.received) == 4
    assert delivery.status == WebhookDelivery.Status.FAILED and delivery.attempts == 4
    assert delivery.last_status_code == 503 and delivery.last_error == "HTTP 503 Service Unavailable"
    assert delivery.delivered_at is None


@pytest.mark.django_db(transaction=True)
def test_a_redirect_is_not_followed_and_counts_as_a_failure(fast_retries, receivers):
    fast_retries.WEBHOOK_MAX_ATTEMPTS = 2
    receiver = receivers(then=302)
    delivery = emit_and_deliver(Webhook.objects.create(name="CRM", url=receiver.url))
    assert [r.path for r in receiver.received] == ["/hook", "/hook"]  # never /elsewhere
    assert delivery.status == WebhookDelivery.Status.FAILED and delivery.last_status_code == 302


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_url_records_the_connection_error(fast_retries):
    fast_retries.WEBHOOK_MAX_ATTEMPTS = 2
    delivery = emit_and_deliver(Webhook.objects.create(name="CRM", url=f"http://127.0.0.1:{free_port()}/hook"))
    assert delivery.status == WebhookDelivery.Status.FAILED and delivery.attempts == 2
    assert delivery.last_status_code is None and delivery.last_error == "Could not connect to the receiver."


@pytest.mark.django_db(transaction=True)
def test_a_receiver_slower_than_the_timeout_fails_the_attempt(fast_retries, receivers):
    fast_retries.WEBHOOK_MAX_ATTEMPTS = 1
    fast_retries.WEBHOOK_TIMEOUT = 0.3
    receiver = receivers(then=200)
    receiver.gate.clear()  # holds its answer
    started = time.monotonic()
    delivery = emit_and_deliver(Webhook.objects.create(name="CRM", url=receiver.url))
    assert time.monotonic() - started < 5
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.last_error == "The receiver did not answer within 0.3 s."


@pytest.mark.django_db(transaction=True)
def test_a_redelivered_task_or_a_duplicate_attempt_sends_nothing_more(fast_retries, receivers):
    receiver = receivers([500], then=200)
    delivery = emit_and_deliver(Webhook.objects.create(name="CRM", url=receiver.url))
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED and len(receiver.received) == 2

    webhook_deliver_task(str(delivery.id))  # the broker delivers the task again
    assert webhook_attempt(delivery.id) is True
    assert len(receiver.received) == 2

    # A copy of the first attempt arriving after it was made (attempt 0, the row has 1) is dropped unsent.
    pending = WebhookDelivery.objects.create(
        webhook=delivery.webhook, event="conversation.rated", payload={}, attempts=1
    )
    assert webhook_attempt(pending.id, attempt=0) is True
    assert len(receiver.received) == 2
    pending.refresh_from_db()
    assert pending.attempts == 1 and pending.status == WebhookDelivery.Status.PENDING


@pytest.mark.django_db(transaction=True)
def test_a_webhook_turned_off_while_its_delivery_waits_gets_no_more_attempts(fast_retries, receivers):
    receiver = receivers([500], then=200)
    webhook = Webhook.objects.create(name="CRM", url=receiver.url)
    receiver.gate.clear()
    (delivery,) = webhook_event_emit(event=Webhook.Event.RESOLVED, data={})
    receiver.wait_for(1)
    Webhook.objects.filter(pk=webhook.pk).update(is_active=False)  # while the first attempt waits for its answer
    receiver.gate.set()
    assert dispatch.in_process_wait(timeout=20)
    delivery.refresh_from_db()
    assert len(receiver.received) == 1
    assert delivery.status == WebhookDelivery.Status.FAILED and delivery.last_error == "The webhook was turned off."


@pytest.mark.django_db(transaction=True)
def test_staff_send_a_failed_delivery_again_from_the_admin_with_the_same_id(fast_retries, receivers, admin_client):
    fast_retries.WEBHOOK_MAX_ATTEMPTS = 1
    receiver = receivers([500], then=200)
    failed = emit_and_deliver(Webhook.objects.create(name="CRM", url=receiver.url))
    delivered = emit_and_deliver(failed.webhook)
    assert failed.status == "failed" and delivered.status == "succeeded" and len(receiver.received) == 2

    response = admin_client.post(
        "/admin/helpdesk/webhookdelivery/",
        {"action": "send_again", "_selected_action": [str(failed.id), str(delivered.id)]},
        follow=True,
    )
    assert "1 of 2 sent again" in response.content.decode()
    assert dispatch.in_process_wait(timeout=20)
    failed.refresh_from_db()
    assert failed.status == WebhookDelivery.Status.SUCCEEDED and failed.attempts == 1
    assert [r.headers["X-Helpdesk-Delivery"] for r in receiver.received] == [
        str(failed.id),
        str(delivered.id),
        str(failed.id),
    ]


@pytest.mark.django_db
def test_the_admin_shows_the_secret_the_events_and_the_last_delivery_status(admin_client):
    webhook = Webhook.objects.create(name="CRM", url="https://crm.example.com/hook", events=["conversation.rated"])
    WebhookDelivery.objects.create(webhook=webhook, event="conversation.rated", payload={"id": "x"}, status="failed")

    listing = admin_client.get("/admin/helpdesk/webhook/").content.decode()
    assert "conversation.rated" in listing and "failed" in listing
    page = admin_client.get(f"/admin/helpdesk/webhook/{webhook.pk}/change/").content.decode()
    assert webhook.secret in page and 'name="secret"' not in page  # shown, not editable
    response = admin_client.post(
        f"/admin/helpdesk/webhook/{webhook.pk}/change/",
        {"name": "CRM", "url": "https://crm.example.com/v2", "events": ["conversation.claimed"], "is_active": "on"},
    )
    assert response.status_code == 302
    webhook.refresh_from_db()
    assert webhook.events == ["conversation.claimed"] and webhook.url.endswith("/v2")

    deliveries = admin_client.get(
        "/admin/helpdesk/webhookdelivery/?status__exact=failed&event__exact=conversation.rated"
    )
    assert deliveries.status_code == 200 and "CRM" in deliveries.content.decode()
    assert admin_client.get("/admin/helpdesk/webhookdelivery/add/").status_code == 403


def test_the_verification_snippet_in_the_readme_accepts_real_signatures_and_rejects_tampering():
    from django.conf import settings

    readme = (settings.BASE_DIR / "README.md").read_text()
    snippet = readme.split("## Webhooks", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace = {}
    exec(snippet, namespace)
    verify = namespace["verify"]
    header = webhook_signature(SECRET, int(time.time()), BODY)
    assert verify(SECRET, header, BODY)
    assert not verify(SECRET, header, BODY + b" ") and not verify("whsec_other", header, BODY)
    assert not verify(SECRET, webhook_signature(SECRET, int(time.time()) - 600, BODY), BODY)
