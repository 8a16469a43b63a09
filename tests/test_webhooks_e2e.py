"""Outgoing webhooks on the whole stack: daphne records the event, a real Celery worker delivers and retries it."""

import asyncio
import json
import re
import time

import pytest
from channels.db import database_sync_to_async
from websockets.asyncio.client import connect

from helpdesk.models import Webhook, WebhookDelivery
from helpdesk.webhooks import webhook_signature_verify
from tests.client import conversation_open
from tests.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def receiver():
    """A real receiver that fails the first request (HTTP 500) and accepts the next."""
    receiver = WebhookReceiver([500], then=200)
    yield receiver
    receiver.close()


@pytest.fixture
def webhook(transactional_db, receiver) -> Webhook:
    return Webhook.objects.create(name="CRM", url=receiver.url, events=["conversation.handed_off"])


async def hand_off(base_url: str, conversation: dict) -> list[dict]:
    """Ask for a person through the customer socket; returns the frames up to the move to the queue."""
    async with connect(base_url.replace("http", "ws", 1) + conversation["websocket"], origin=base_url) as ws:
        await ws.send(json.dumps({"type": "hello", "secret": conversation["secret"]}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "ready"
        await ws.send(json.dumps({"type": "message", "content": "I want to talk to a human agent"}))
        frames = []
        while not frames or frames[-1] != {"type": "status", "status": "queued"}:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        return frames


async def test_a_handoff_is_posted_by_the_worker_and_retried_after_a_failure_without_blocking_the_customer(
    production_server, celery_worker_process, site, webhook, receiver
):
    # The receiver holds every answer until the gate opens: had the handoff waited for the webhook, the customer
    # would never see it below.
    receiver.gate.clear()
    conversation = conversation_open(production_server, site.key, name="Ann", language="en")
    frames = await hand_off(production_server, conversation)
    assert any(f["type"] == "message" and f["message"]["role"] == "system" for f in frames)

    first = (await asyncio.to_thread(receiver.wait_for, 1))[0]  # sent by the worker, still waiting for its answer
    receiver.gate.set()  # answered 500: the worker retries after 0.25-0.5 s (WEBHOOK_BACKOFF_BASE=0.5)
    requests = await asyncio.to_thread(receiver.wait_for, 2, 15)
    assert len(requests) == 2 and requests[0] is first
    assert requests[1].at - first.at >= 0.25

    delivery_ids = {r.headers["X-Helpdesk-Delivery"] for r in requests}
    assert len(delivery_ids) == 1
    for request in requests:
        assert request.headers["X-Helpdesk-Event"] == "conversation.handed_off"
        assert webhook_signature_verify(webhook.secret, request.headers["X-Helpdesk-Signature"], request.body)
        payload = json.loads(request.body)
        assert payload["id"] in delivery_ids and payload["event"] == "conversation.handed_off"
        sent = payload["data"]["conversation"]
        assert sent["id"] == conversation["id"] and sent["status"] == "queued"
        assert sent["handoff_reason"] == "customer_request" and sent["customer_name"] == "Ann"
        assert sent["site"] == {"name": site.name, "key": site.key} and sent["ticket_id"] is not None

    delivery = await poll_delivery(delivery_ids.pop(), until=WebhookDelivery.Status.SUCCEEDED)
    assert delivery.attempts == 2 and delivery.last_status_code == 200
    # The worker delivered it, not daphne, and its retry was a Celery retry.
    assert re.search(r"webhook_deliver_task\[[\w-]+\] retry: Retry in", celery_worker_process.output())
    assert len(receiver.received) == 2


async def poll_delivery(delivery_id: str, until: str, timeout: float = 10) -> WebhookDelivery:
    """The delivery once the worker has recorded it as `until` (it writes just after the receiver answers)."""
    deadline = time.monotonic() + timeout
    while True:
        delivery = await database_sync_to_async(WebhookDelivery.objects.get)(pk=delivery_id)
        if delivery.status == until or time.monotonic() > deadline:
            assert delivery.status == until, (delivery.status, delivery.attempts, delivery.last_error)
            return delivery
        await asyncio.sleep(0.1)
