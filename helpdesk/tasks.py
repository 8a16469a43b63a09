"""Celery tasks of the staff side. They take ids and call the domain; retries live here, logic does not.

As in chat.tasks, services import this module to enqueue and the task bodies import the logic they run: the one
import cycle the project allows.
"""

import random

from celery import shared_task
from django.conf import settings

from chat.dispatch import task_enqueue_later
from chat.tasks import EMAIL_RETRY


def webhook_time_limits() -> dict:
    """One attempt: connecting, sending and reading the answer, each within WEBHOOK_TIMEOUT, plus recording it."""
    hard = 3 * settings.WEBHOOK_TIMEOUT + 15
    return {"soft_time_limit": hard - 5, "time_limit": hard}


def webhook_backoff(attempts: int) -> float:
    """Seconds to wait after `attempts` failed attempts: min(BASE * 2**(attempts-1), MAX), less up to half of it.

    The random part (jitter) keeps the deliveries of one outage from all retrying at the same moment.
    """
    ceiling = min(settings.WEBHOOK_BACKOFF_BASE * 2 ** (attempts - 1), settings.WEBHOOK_BACKOFF_MAX)
    return ceiling * random.uniform(0.5, 1.0)


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=None, **webhook_time_limits())
def webhook_deliver_task(self, delivery_id: str, attempt: int | None = None) -> None:
    """Deliver a webhook event, retrying with backoff; after WEBHOOK_MAX_ATTEMPTS attempts it is marked failed.

    On Celery each retry is a new message (self.retry with a countdown) whose retry count names the attempt it
    makes, so a copy the broker delivers twice (acks_late, Redis's visibility timeout) finds that attempt made and
    stops. Run in-process (embedded mode) the next attempt is scheduled on a timer with its number (`attempt`), so
    no reply thread sleeps through the backoff.
    """
    from helpdesk.webhooks import webhook_attempt, webhook_delivery_fail

    in_process = self.request.called_directly or settings.GENERATION_BACKEND == "inprocess"
    if attempt is None:
        attempt = self.request.retries or 0
    if webhook_attempt(delivery_id, attempt=attempt):
        return
    attempt += 1
    if attempt >= settings.WEBHOOK_MAX_ATTEMPTS:
        webhook_delivery_fail(delivery_id)
        return
    delay = webhook_backoff(attempt)
    if not in_process:
        raise self.retry(countdown=delay)
    task_enqueue_later(webhook_deliver_task, delay, delivery_id, attempt)


# Agent notification emails (helpdesk.notifications): retried like the customer emails (chat.tasks.EMAIL_RETRY).
NOTIFY_TIME_LIMIT_S = 120


@shared_task(
    acks_late=True,
    ignore_result=True,
    soft_time_limit=NOTIFY_TIME_LIMIT_S - 10,
    time_limit=NOTIFY_TIME_LIMIT_S,
    **EMAIL_RETRY,
)
def left_message_notify_task(conversation_id: str) -> None:
    """Email the agents who opted in that a customer left a message. Idempotent (AgentNotification)."""
    from helpdesk.notifications import left_message_notify

    left_message_notify(conversation_id=conversation_id)


@shared_task(ignore_result=True, soft_time_limit=NOTIFY_TIME_LIMIT_S - 10, time_limit=NOTIFY_TIME_LIMIT_S)
def waiting_notify_task() -> None:
    """Email the agents who opted in about conversations waiting past NOTIFY_WAITING_AFTER (Celery beat, or the
    embedded scheduler). Not retried: the next pass comes a minute later; each conversation is told once."""
    from helpdesk.notifications import waiting_notify_run

    waiting_notify_run()
