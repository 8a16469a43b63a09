"""A conversation's life after an agent had it: reopened (by its customer writing again, or by an agent), snoozed
until a time or until the customer writes, woken up, and resolved when idle for too long.

Which agent takes a conversation back is the staff side's to decide (presence and capacity are theirs): chat puts
the conversation in the queue and sends `conversation_reopened`; helpdesk's receiver gives it to its last agent, in
the same transaction, when they can take it.
"""

import datetime
import logging
import uuid

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.db.models.functions import Coalesce
from django.utils import timezone

from chat import signals
from chat.models import Conversation, Message
from chat.services.base import broadcast_on_commit, conversation_lock, system_message
from chat.services.conversations import resolve_locked
from chat.services.errors import ActionRefused

logger = logging.getLogger(__name__)

# Conversations each periodic run resolves (idle) or wakes (snoozed) at most: a backlog is worked off over a few
# runs instead of in one long transaction-heavy pass.
LIFECYCLE_BATCH = 200


def team_return(conversation: Conversation, *, snoozed: bool) -> None:
    """Give a conversation (its row locked by the caller: resolved, or snoozed) back to the team.

    It is queued, and the staff side may hand it at once to its last agent (conversation_reopened). Queued, it keeps
    that agent as its assignee until someone claims it: the reports still credit them with what they did (a rating
    of their work, say). A customer whose resolved conversation reopens is told so first; a snooze ending is news to
    the staff only.
    """
    last_agent = conversation.assignee
    if conversation.status == Conversation.Status.RESOLVED:
        system_message(conversation, "reopened")
    conversation.status = Conversation.Status.QUEUED
    conversation.snoozed_until = None
    conversation.resolved_at = None
    conversation.handed_off_at = timezone.now()
    conversation.save(update_fields=["status", "snoozed_until", "resolved_at", "handed_off_at", "updated_at"])
    signals.conversation_reopened.send(
        sender=Conversation, conversation=conversation, agent=last_agent, snoozed=snoozed
    )
    conversation.refresh_from_db(fields=["status", "assignee"])
    if conversation.status == Conversation.Status.QUEUED:  # a receiver that assigned it sent the status itself
        broadcast_on_commit(conversation, {"type": "chat.status", "status": conversation.status})


def customer_returns(conversation: Conversation) -> None:
    """The customer wrote to a resolved or snoozed conversation (its row locked by the caller, the message stored).

    One an agent had goes back to the team (team_return); one only the bot had goes back to the bot.
    """
    if conversation.status == Conversation.Status.SNOOZED or conversation.assignee_id is not None:
        team_return(conversation, snoozed=conversation.status == Conversation.Status.SNOOZED)
        return
    conversation.status = Conversation.Status.BOT
    conversation.resolved_at = None
    conversation.save(update_fields=["status", "resolved_at", "updated_at"])
    broadcast_on_commit(conversation, {"type": "chat.status", "status": conversation.status})


@transaction.atomic
def conversation_reopen(*, conversation_id: uuid.UUID, agent, supervising: bool = False) -> None:
    """An agent reopens a resolved conversation and takes it. Its last agent may, and so may anyone if it had none;
    a supervisor may reopen any."""
    conversation = conversation_lock(conversation_id)
    if not supervising and conversation.assignee_id not in (None, agent.pk):
        raise ActionRefused("forbidden", "Another agent had this conversation; ask them or a supervisor.")
    if conversation.status != Conversation.Status.RESOLVED:
        raise ActionRefused("not_resolved", "Only a resolved conversation can be reopened.")
    conversation.status = Conversation.Status.AGENT
    conversation.assignee = agent
    conversation.resolved_at = None
    conversation.resolution_s = conversation.resolution_business_s = None
    conversation.save(
        update_fields=["status", "assignee", "resolved_at", "resolution_s", "resolution_business_s", "updated_at"]
    )
    system_message(conversation, "reopened_by_agent")
    broadcast_on_commit(
        conversation, {"type": "chat.status", "status": conversation.status, "assignee": agent.get_username()}
    )


@transaction.atomic
def conversation_snooze(
    *, conversation_id: uuid.UUID, agent, until: datetime.datetime | None, supervising: bool = False
) -> None:
    """Put a conversation with an agent aside until `until` (aware, in the future) or, with None, until the customer
    writes. The bot stays silent meanwhile; the conversation keeps its agent. Its assignee (or a supervisor) may."""
    if until is not None and until <= timezone.now():
        raise ActionRefused("invalid_until", "Snooze until a time in the future.")
    conversation = conversation_lock(conversation_id)
    if not supervising and conversation.assignee_id != agent.pk:
        raise ActionRefused("not_assigned", "Only the assigned agent can snooze the conversation.")
    if conversation.status not in (Conversation.Status.AGENT, Conversation.Status.SNOOZED):
        raise ActionRefused("not_assigned", "Only a conversation with an agent can be snoozed.")
    conversation.status = Conversation.Status.SNOOZED
    conversation.snoozed_until = until
    conversation.save(update_fields=["status", "snoozed_until", "updated_at"])
    assignee = conversation.assignee.get_username() if conversation.assignee_id else None
    broadcast_on_commit(
        conversation,
        {
            "type": "chat.status",
            "status": conversation.status,
            "assignee": assignee,
            "until": until.isoformat() if until else None,
        },
    )


@transaction.atomic
def conversation_wake(*, conversation_id: uuid.UUID) -> bool:
    """Wake a snoozed conversation whose time came (back to its agent, or the queue); False if it was not due."""
    conversation = conversation_lock(conversation_id)
    due = conversation.snoozed_until is not None and conversation.snoozed_until <= timezone.now()
    if conversation.status != Conversation.Status.SNOOZED or not due:
        return False
    team_return(conversation, snoozed=True)
    return True


def _bot_wrote_since(moment: datetime.datetime) -> Exists:
    return Exists(Message.objects.filter(conversation=OuterRef("pk"), role=Message.Role.BOT, created_at__gte=moment))


def _idle_rows(idle_before: datetime.datetime):
    """Conversations with the bot or an agent and no customer, agent or bot message since `idle_before` (nor, if
    none was ever written, opened since). Queued ones are never idle (a customer waits); snoozed ones wake on
    their own time."""
    return (
        Conversation.objects.filter(status__in=[Conversation.Status.BOT, Conversation.Status.AGENT])
        .annotate(active_at=Coalesce("last_message_at", "created_at"))
        .filter(active_at__lt=idle_before)
        .exclude(_bot_wrote_since(idle_before))
    )


@transaction.atomic
def conversation_resolve_idle(*, conversation_id: uuid.UUID, idle_before: datetime.datetime) -> bool:
    """Resolve the conversation if it is still idle since `idle_before` (checked again under its row lock, so a
    message that just arrived keeps it open); False if it is not."""
    conversation = conversation_lock(conversation_id)
    if not _idle_rows(idle_before).filter(pk=conversation.pk).exists():
        return False
    # A customer who opened the widget and never wrote is not asked to rate anything.
    resolve_locked(conversation, key="resolved_idle", may_ask=conversation.first_customer_message_at is not None)
    return True


def conversations_lifecycle_run(*, batch: int = LIFECYCLE_BATCH) -> dict:
    """The periodic pass: wake the snoozed conversations whose time came and resolve the idle ones
    (CONVERSATION_IDLE_RESOLVE_AFTER seconds; 0: never), at most `batch` of each. Each goes through its own service
    and transaction; one that fails is logged and left for the next run. Returns how many of each were done."""
    now = timezone.now()
    due = Conversation.objects.filter(status=Conversation.Status.SNOOZED, snoozed_until__lte=now)
    woken = _each(due.order_by("snoozed_until").values_list("pk", flat=True)[:batch], conversation_wake)
    resolved = 0
    idle_after = settings.CONVERSATION_IDLE_RESOLVE_AFTER
    if idle_after > 0:
        idle_before = now - datetime.timedelta(seconds=idle_after)
        ids = _idle_rows(idle_before).order_by("active_at").values_list("pk", flat=True)[:batch]
        resolved = _each(ids, conversation_resolve_idle, idle_before=idle_before)
    return {"woken": woken, "resolved": resolved}


def _each(ids, service, **kwargs) -> int:
    done = 0
    for conversation_id in list(ids):
        try:
            done += bool(service(conversation_id=conversation_id, **kwargs))
        except Exception:
            logger.exception("%s failed for conversation %s", service.__name__, conversation_id)
    return done
