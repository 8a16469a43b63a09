"""Writes of the staff side: tickets, and agents taking conversations."""

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from chat import broadcast
from chat import services as chat_services
from chat.models import Conversation, HandoffReason
from helpdesk.models import AgentPresence, Ticket, Webhook
from helpdesk.webhooks import webhook_conversation_event_emit

AGENTS_GROUP = "agents"


def _notify_agents(event: dict) -> None:
    transaction.on_commit(lambda: broadcast.group_send(AGENTS_GROUP, event))


@transaction.atomic
def ticket_open_for_handoff(*, conversation: Conversation, reason: str) -> Ticket:
    """Open (or reopen) the ticket of a handed-off conversation and tell the online agents."""
    first_question = conversation.messages.filter(role="customer").order_by("seq").values_list("content", flat=True)
    subject = (first_question.first() or "Chat")[:200]
    ticket, created = Ticket.objects.select_for_update().get_or_create(
        conversation=conversation, defaults={"subject": subject, "status": Ticket.Status.NEW}
    )
    if not created and ticket.status in (Ticket.Status.RESOLVED, Ticket.Status.CLOSED):
        ticket.status = Ticket.Status.OPEN
        ticket.save(update_fields=["status", "updated_at"])
    # The customer is asked for an email when nobody will answer soon: no agent online, or outside business hours.
    # A left message already has one.
    nobody_now = not agents_available() or (conversation.site_id and not conversation.site.is_open(timezone.now()))
    if nobody_now and reason != HandoffReason.OFFLINE_MESSAGE:
        chat_services.conversation_contact_request(conversation_id=conversation.id)
    _notify_agents(
        {
            "type": "queue.added",
            "conversation": str(conversation.id),
            "ticket": ticket.pk,
            "reason": reason,
            "at": timezone.now().isoformat(),
        }
    )
    return ticket


@transaction.atomic
def conversation_claim(*, conversation_id, agent) -> bool:
    """Take a queued conversation. Exactly one agent wins a race; the others get False and see it leave the queue.

    An agent at their capacity (AgentPresence.capacity conversations at once) is refused.
    """
    # Locking the agent's presence row serializes their own claims, so two at once cannot pass the limit together.
    presence = AgentPresence.objects.select_for_update().filter(user=agent).first()
    capacity = presence.capacity if presence else AgentPresence._meta.get_field("capacity").default
    held = Conversation.objects.filter(status=Conversation.Status.AGENT, assignee=agent).count()
    if held >= capacity:
        raise chat_services.ActionRefused("at_capacity", f"You already have {held} conversations (your limit).")
    if not chat_services.conversation_assign(
        conversation_id=conversation_id, agent=agent, expected_status=Conversation.Status.QUEUED
    ):
        return False
    Ticket.objects.filter(conversation_id=conversation_id).update(
        assignee=agent, status=Ticket.Status.OPEN, updated_at=timezone.now()
    )
    _notify_agents({"type": "queue.claimed", "conversation": str(conversation_id), "agent": agent.get_username()})
    conversation = Conversation.objects.select_related("site", "assignee").get(pk=conversation_id)
    webhook_conversation_event_emit(event=Webhook.Event.CLAIMED, conversation=conversation, agent=agent)
    return True


@transaction.atomic
def conversation_transfer(*, conversation_id, from_agent, to_username: str) -> None:
    """Pass a conversation the agent holds to another agent, with a system note in the history."""
    from django.contrib.auth import get_user_model

    to_agent = get_user_model().objects.filter(username=to_username, is_active=True).first()
    if to_agent is None or not to_agent.has_perm("helpdesk.use_console"):
        raise chat_services.ActionRefused("unknown_agent", "No agent with that name can take conversations.")
    chat_services.conversation_reassign(conversation_id=conversation_id, from_agent=from_agent, to_agent=to_agent)
    Ticket.objects.filter(conversation_id=conversation_id).update(assignee=to_agent, updated_at=timezone.now())
    _notify_agents({"type": "queue.changed", "conversation": str(conversation_id)})


@transaction.atomic
def presence_connect(*, agent) -> AgentPresence:
    """A console socket opened: the agent is reachable (online unless they chose away)."""
    presence, _ = AgentPresence.objects.select_for_update().get_or_create(user=agent)
    presence.connections = F("connections") + 1
    if presence.status == AgentPresence.Status.OFFLINE:
        presence.status = AgentPresence.Status.ONLINE
    presence.last_seen = timezone.now()
    presence.save()
    presence.refresh_from_db()
    return presence


@transaction.atomic
def presence_disconnect(*, agent) -> None:
    """A console socket closed; with the last one the agent goes offline."""
    presence = AgentPresence.objects.select_for_update().filter(user=agent).first()
    if presence is None:
        return
    presence.connections = max(0, presence.connections - 1)
    if presence.connections == 0:
        presence.status = AgentPresence.Status.OFFLINE
    presence.last_seen = timezone.now()
    presence.save()


@transaction.atomic
def presence_set(*, agent, status: str) -> AgentPresence:
    """The agent chooses online or away."""
    if status not in (AgentPresence.Status.ONLINE, AgentPresence.Status.AWAY):
        raise chat_services.ActionRefused("invalid_status", "Choose online or away.")
    presence, _ = AgentPresence.objects.select_for_update().get_or_create(user=agent)
    presence.status = status
    presence.save(update_fields=["status"])
    return presence


def agents_available() -> bool:
    """Whether any agent is online with a console open and room for another conversation."""
    for presence in AgentPresence.objects.filter(status=AgentPresence.Status.ONLINE, connections__gt=0):
        busy = Conversation.objects.filter(status=Conversation.Status.AGENT, assignee_id=presence.user_id).count()
        if busy < presence.capacity:
            return True
    return False


@transaction.atomic
def ticket_update(*, conversation_id, agent, status=None, priority=None, tags=None) -> Ticket:
    """Change a conversation's ticket from the console: status, priority (1-4) and tags."""
    ticket = Ticket.objects.select_for_update().get(conversation_id=conversation_id)
    if status is not None:
        if status not in Ticket.Status.values:
            raise chat_services.ActionRefused(
                "invalid_ticket", f"Status must be one of {', '.join(Ticket.Status.values)}."
            )
        ticket.status = status
    if priority is not None:
        if priority not in Ticket.Priority.values:
            raise chat_services.ActionRefused("invalid_ticket", "Priority must be 1 (low) to 4 (urgent).")
        ticket.priority = priority
    if tags is not None:
        if not isinstance(tags, str):
            raise chat_services.ActionRefused("invalid_ticket", "Tags are comma-separated text.")
        ticket.tags = ", ".join(dict.fromkeys(t.strip().lower() for t in tags.split(",") if t.strip()))[:255]
    ticket.save()
    _notify_agents({"type": "queue.changed", "conversation": str(conversation_id)})
    return ticket


@transaction.atomic
def ticket_resolve_for_conversation(*, conversation) -> None:
    """A resolved conversation resolves its ticket."""
    Ticket.objects.filter(conversation=conversation).exclude(status=Ticket.Status.CLOSED).update(
        status=Ticket.Status.RESOLVED, updated_at=timezone.now()
    )
