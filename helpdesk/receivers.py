"""The staff side's answers to chat's domain signals (connected in HelpdeskConfig.ready).

Receivers run in the order they are connected: the ticket receivers come first, so webhook payloads carry the
ticket.
"""

from functools import partial

from django.db import transaction
from django.dispatch import receiver

from chat.models import HandoffReason
from chat.services.base import enqueue_quietly
from chat.signals import (
    conversation_handed_back,
    conversation_handed_off,
    conversation_rated,
    conversation_reopened,
    conversation_resolved,
)
from helpdesk import services, tasks
from helpdesk.metrics import HANDOFFS, RATINGS
from helpdesk.models import Webhook
from helpdesk.webhooks import webhook_conversation_event_emit


@receiver(conversation_handed_off, dispatch_uid="helpdesk.ticket_open_for_handoff")
def open_ticket_on_handoff(sender, *, conversation, reason, **kwargs) -> None:
    services.ticket_open_for_handoff(conversation=conversation, reason=reason)


@receiver(conversation_resolved, dispatch_uid="helpdesk.ticket_resolve")
def resolve_ticket_with_conversation(sender, *, conversation, **kwargs) -> None:
    services.ticket_resolve_for_conversation(conversation=conversation)


@receiver(conversation_reopened, dispatch_uid="helpdesk.route_reopened")
def route_reopened_conversation(sender, *, conversation, agent, snoozed, **kwargs) -> None:
    services.conversation_route_reopened(conversation=conversation, agent=agent, snoozed=snoozed)


@receiver(conversation_handed_back, dispatch_uid="helpdesk.queue_on_hand_back")
@receiver(conversation_resolved, dispatch_uid="helpdesk.queue_on_resolve")
def queue_update_when_it_leaves(sender, *, conversation, **kwargs) -> None:
    if conversation.handed_off_at is not None:  # a conversation only the bot ever had was never in the queue
        services.queue_announce(conversation_id=conversation.id)


@receiver(conversation_handed_off, dispatch_uid="helpdesk.notify_left_message")
def notify_agents_of_left_message(sender, *, conversation, reason, **kwargs) -> None:
    """Agents who opted in are emailed about a left message (helpdesk.notifications), once it is committed."""
    if reason == HandoffReason.OFFLINE_MESSAGE:
        transaction.on_commit(partial(enqueue_quietly, tasks.left_message_notify_task, str(conversation.id)))


@receiver(conversation_handed_off, dispatch_uid="helpdesk.webhook_handed_off")
def webhook_on_handoff(sender, *, conversation, **kwargs) -> None:
    webhook_conversation_event_emit(event=Webhook.Event.HANDED_OFF, conversation=conversation)


@receiver(conversation_resolved, dispatch_uid="helpdesk.webhook_resolved")
def webhook_on_resolve(sender, *, conversation, **kwargs) -> None:
    webhook_conversation_event_emit(event=Webhook.Event.RESOLVED, conversation=conversation)


@receiver(conversation_rated, dispatch_uid="helpdesk.webhook_rated")
def webhook_on_rating(sender, *, conversation, rating, **kwargs) -> None:
    webhook_conversation_event_emit(event=Webhook.Event.RATED, conversation=conversation, rating=rating)


# Counted once the service's transaction commits: a rolled-back handoff or rating never happened.
@receiver(conversation_handed_off, dispatch_uid="helpdesk.metrics_handoff")
def count_handoff(sender, *, reason, **kwargs) -> None:
    transaction.on_commit(HANDOFFS.labels(reason=reason).inc)


@receiver(conversation_rated, dispatch_uid="helpdesk.metrics_rating")
def count_rating(sender, *, rating, **kwargs) -> None:
    transaction.on_commit(RATINGS.labels(score=str(rating.score)).inc)
