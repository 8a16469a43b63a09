"""Celery tasks of the staff side. They take ids and call the domain; retries live here, logic does not."""

import random

from celery import shared_task
from django.conf import settings

from helpdesk.webhooks import webhook_attempt, webhook_delivery_fail


def webhook_backoff(attempts: int) -> float:
    """Seconds to wait after `attempts` failed attempts: min(BASE * 2**(attempts-1), MAX), less up to half of it.

    The random part (jitter) keeps the deliveries of one outage from all retrying at the same moment.
    """
    ceiling = min(settings.WEBHOOK_BACKOFF_BASE * 2 ** (attempts - 1), settings.WEBHOOK_BACKOFF_MAX)
    return ceiling * random.uniform(0.5, 1.0)


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=None)
def webhook_deliver_task(self, delivery_id: str, attempt: int | None = None) -> None:
    """Deliver a webhook event, retrying with backoff; after WEBHOOK_MAX_ATTEMPTS attempts it is marked failed.

    On Celery each retry is a new message (self.retry with a countdown) whose retry count names the attempt it
    makes, so a copy the broker delivers twice (acks_late, Redis's visibility timeout) finds that attempt made and
    stops. Run in-process (embedded mode) the next attempt is scheduled on a timer with its number (`attempt`), so
    no reply thread sleeps through the backoff.
    """
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
    from chat.dispatch import task_enqueue_later

    task_enqueue_later(webhook_deliver_task, delay, delivery_id, attempt)
