"""Outgoing webhooks: events recorded as deliveries in the emitting transaction, then POSTed, signed, by a task.

Each request carries `X-Helpdesk-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body>` (Stripe's
scheme) keyed with the webhook's secret; `webhook_signature_verify` is what a receiver runs to check it.
"""

import hashlib
import hmac
import json
import logging
import time
import uuid
from functools import partial
from http import HTTPStatus

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from chat import dispatch
from chat.models import Conversation, Rating
from helpdesk import tasks
from helpdesk.metrics import WEBHOOK_DELIVERIES
from helpdesk.models import Ticket, Webhook, WebhookDelivery
from helpdesk.webhook_destinations import DestinationRefused, destination_addresses

logger = logging.getLogger(__name__)

USER_AGENT = "helpdesk-webhooks/1"


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Helpdesk-Signature header of `body` sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def webhook_signature_verify(secret: str, header: str, body: bytes, tolerance_s: int = 300) -> bool:
    """Whether `header` signs the exact raw `body` with `secret`, made within `tolerance_s` of now.

    Receivers copy this (it needs only the standard library). The timestamp is signed too, so an old request
    cannot be replayed with a fresh time; several v1 values are accepted, for rotating secrets.
    """
    try:
        pairs = [item.split("=", 1) for item in header.split(",")]
        timestamp = int(next(value for key, value in pairs if key.strip() == "t"))
    except (ValueError, StopIteration):
        return False
    if abs(time.time() - timestamp) > tolerance_s:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return any(key.strip() == "v1" and hmac.compare_digest(expected, value.strip()) for key, value in pairs)


def webhook_conversation_data(conversation: Conversation) -> dict:
    """The conversation as webhook payloads describe it."""
    ticket_id = Ticket.objects.filter(conversation_id=conversation.pk).values_list("pk", flat=True).first()
    site = conversation.site if conversation.site_id else None
    return {
        "id": str(conversation.pk),
        "status": conversation.status,
        "site": {"name": site.name, "key": site.key} if site else None,
        "language": conversation.language,
        "customer_name": conversation.customer_name,
        "customer_email": conversation.customer_email,
        "handoff_reason": conversation.handoff_reason,
        "assignee": conversation.assignee.get_username() if conversation.assignee_id else None,
        "created_at": conversation.created_at.isoformat(),
        "resolved_at": conversation.resolved_at.isoformat() if conversation.resolved_at else None,
        "ticket_id": ticket_id,
    }


def webhook_conversation_event_emit(
    *, event: str, conversation: Conversation, agent=None, rating: Rating | None = None
) -> list[WebhookDelivery]:
    """Emit a conversation event: the data is the conversation, with the agent (claimed) or rating (rated)."""
    data = {"conversation": webhook_conversation_data(conversation)}
    if agent is not None:
        data["agent"] = {"username": agent.get_username(), "name": agent.get_full_name()}
    if rating is not None:
        data["rating"] = {"score": rating.score, "comment": rating.comment}
    return webhook_event_emit(event=event, data=data)


@transaction.atomic
def webhook_event_emit(*, event: str, data: dict) -> list[WebhookDelivery]:
    """Record `event` for every active webhook subscribed to it, and send each once the transaction commits.

    Call it inside the transaction that makes the event happen: a rolled-back event is never sent. If the task
    cannot be enqueued (broker down), that is logged and the delivery stays pending, to be sent with the admin's
    "Send again" action.
    """
    event = Webhook.Event(event).value  # ValueError for an unknown event
    deliveries = []
    for webhook in Webhook.objects.filter(is_active=True):
        if webhook.subscribes_to(event):
            delivery = WebhookDelivery(webhook=webhook, event=event)
            delivery.payload = {
                "id": str(delivery.id),
                "event": event,
                "created_at": delivery.created_at.isoformat(),
                "data": data,
            }
            deliveries.append(delivery)
    WebhookDelivery.objects.bulk_create(deliveries)
    for delivery in deliveries:
        transaction.on_commit(partial(_delivery_enqueue, delivery.id))
    return deliveries


def _delivery_enqueue(delivery_id: uuid.UUID) -> None:
    try:
        dispatch.task_enqueue(tasks.webhook_deliver_task, str(delivery_id))
    except Exception:  # kombu/redis raise assorted errors when the broker is down
        logger.exception("could not enqueue webhook delivery %s; it stays pending", delivery_id)


def webhook_attempt(delivery_id, *, attempt: int | None = None) -> bool:
    """POST a pending delivery once and record the outcome. Returns whether the delivery is settled.

    True: delivered now (a 2xx answer), or nothing to do (already delivered or given up, deleted, its webhook
    turned off, or `attempt`, the number of attempts the caller expects before this one, is behind the row, so
    another copy of the task made this attempt). False: this attempt failed (any other status, a redirect, a
    timeout, a connection error) and the delivery waits for another.
    """
    delivery = WebhookDelivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != WebhookDelivery.Status.PENDING:
        return True
    if attempt is not None and delivery.attempts != attempt:
        return True
    if not delivery.webhook.is_active:  # turned off by staff: stop sending to it
        if WebhookDelivery.objects.filter(pk=delivery.pk, status=WebhookDelivery.Status.PENDING).update(
            status=WebhookDelivery.Status.FAILED, last_error="The webhook was turned off."
        ):
            WEBHOOK_DELIVERIES.labels(outcome="given_up").inc()
        return True
    body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Helpdesk-Event": delivery.event,
        "X-Helpdesk-Delivery": str(delivery.id),
        "X-Helpdesk-Signature": webhook_signature(delivery.webhook.secret, int(time.time()), body),
    }
    status_code, error = _post(delivery, body, headers)
    fields = {"attempts": F("attempts") + 1, "last_status_code": status_code, "last_error": error[:255]}
    if not error:
        fields.update(status=WebhookDelivery.Status.SUCCEEDED, delivered_at=timezone.now())
    # Conditional on the attempt count read above: of two copies of one task, only one records (and retries).
    recorded = WebhookDelivery.objects.filter(
        pk=delivery.pk, status=WebhookDelivery.Status.PENDING, attempts=delivery.attempts
    ).update(**fields)
    if recorded:  # counted by the copy of the task that made the attempt
        WEBHOOK_DELIVERIES.labels(outcome="failed" if error else "delivered").inc()
    return not error or not recorded


def _post(delivery: WebhookDelivery, body: bytes, headers: dict) -> tuple[int | None, str]:
    """POST to the webhook's checked address; returns the status code (None without an answer) and the error.

    The error is what staff read in the admin: the status code and a generic outcome. Never the receiver's answer
    or the network's error text, which would turn the admin into a probe of whatever the URL points at; the detail
    goes to the log.
    """
    url = httpx.URL(delivery.webhook.url)
    try:
        addresses = destination_addresses(url.host, url.port or (443 if url.scheme == "https" else 80))
    except DestinationRefused as exc:
        logger.warning("webhook delivery %s refused: %s", delivery.pk, exc)
        return None, str(exc)
    # The connection goes to the address just checked, not to a second DNS answer; the name still goes in Host
    # and, for HTTPS, in SNI, where the certificate is verified against it.
    headers = {**headers, "Host": url.netloc.decode("ascii")}
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    try:
        # trust_env off: an HTTP(S)_PROXY from the environment would connect elsewhere than the checked address.
        with httpx.Client(timeout=settings.WEBHOOK_TIMEOUT, follow_redirects=False, trust_env=False) as client:
            response = client.post(
                url.copy_with(host=addresses[0]), content=body, headers=headers, extensions=extensions
            )
    except httpx.TimeoutException as exc:
        logger.info("webhook delivery %s timed out: %r", delivery.pk, exc)
        return None, f"The receiver did not answer within {settings.WEBHOOK_TIMEOUT:g} s."
    except httpx.ConnectError as exc:
        logger.info("webhook delivery %s could not connect: %r", delivery.pk, exc)
        return None, "Could not connect to the receiver."
    except httpx.HTTPError as exc:
        logger.info("webhook delivery %s failed: %r", delivery.pk, exc)
        return None, "The request to the receiver failed."
    if response.is_success:
        return response.status_code, ""
    try:
        phrase = HTTPStatus(response.status_code).phrase
    except ValueError:
        phrase = "unknown status"
    return response.status_code, f"HTTP {response.status_code} {phrase}"


def webhook_delivery_fail(delivery_id) -> None:
    """Give up on a pending delivery (its attempts are spent)."""
    if WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING).update(
        status=WebhookDelivery.Status.FAILED
    ):
        WEBHOOK_DELIVERIES.labels(outcome="given_up").inc()


@transaction.atomic
def webhook_deliveries_resend(*, delivery_ids) -> int:
    """Send deliveries again with a fresh round of attempts, the same id and the same payload; returns how many.

    For failed deliveries, and pending ones that were never enqueued (broker down). Delivered ones are left alone.
    Resetting the attempt count also retires any retry still scheduled for a pending one (see webhook_attempt).
    """
    ids = list(
        WebhookDelivery.objects.select_for_update()
        .filter(pk__in=delivery_ids)
        .exclude(status=WebhookDelivery.Status.SUCCEEDED)
        .values_list("pk", flat=True)
    )
    WebhookDelivery.objects.filter(pk__in=ids).update(status=WebhookDelivery.Status.PENDING, attempts=0)
    for delivery_id in ids:
        transaction.on_commit(partial(_delivery_enqueue, delivery_id))
    return len(ids)
