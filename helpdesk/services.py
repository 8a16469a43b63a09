"""Writes of the staff side: tickets, agents taking conversations, presence, and the agents' live queue."""

import datetime
import uuid
from functools import partial

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from chat import broadcast
from chat import services as chat_services
from chat.models import Conversation, HandoffReason
from helpdesk import roles, selectors
from helpdesk.models import AgentPresence, Ticket, Webhook
from helpdesk.webhooks import webhook_conversation_event_emit

AGENTS_GROUP = "agents"
CONSOLE_PERMISSION = "helpdesk.use_console"


def _queue_entry_send(conversation_id) -> None:
    entry = selectors.queue_entry(conversation_id=conversation_id)
    broadcast.group_send(AGENTS_GROUP, {"type": "queue.entry", "conversation": str(conversation_id), "entry": entry})


def queue_announce(*, conversation_id) -> None:
    """After commit, tell every console how the conversation now stands in the queue (one query, for all agents).

    Each console adds, updates or removes it in its list; a lost announcement is made good by the console's
    periodic refresh (the database is the truth, the channel layer only carries news).
    """
    transaction.on_commit(partial(_queue_entry_send, str(conversation_id)))


@transaction.atomic
def ticket_open_for_handoff(*, conversation: Conversation, reason: str) -> Ticket:
    """Open (or reopen) the ticket of a handed-off conversation and tell the online agents."""
    first_question = conversation.messages.filter(role="customer").order_by("seq").values_list("content", flat=True)
    subject = (first_question.first() or "Chat")[:200]
    ticket, created = Ticket.objects.select_for_update().get_or_create(
        conversation=conversation, defaults={"subject": subject, "status": Ticket.Status.NEW}
    )
    if not created:
        # The customer is back in the queue (after a resolution, or after the bot had the conversation again): the
        # priority staff gave the earlier handoff was for that one, so it starts over at the default; otherwise a
        # customer once marked urgent could jump the line at will.
        if ticket.status in (Ticket.Status.RESOLVED, Ticket.Status.CLOSED):
            ticket.status = Ticket.Status.OPEN
        ticket.priority = Ticket._meta.get_field("priority").default
        ticket.save(update_fields=["status", "priority", "updated_at"])
    # The customer is asked for an email when nobody will answer soon: no agent online, or outside business hours.
    # A left message already has one.
    nobody_now = not agents_available() or (conversation.site_id and not conversation.site.is_open(timezone.now()))
    if nobody_now and reason != HandoffReason.OFFLINE_MESSAGE:
        chat_services.conversation_contact_request(conversation_id=conversation.id)
    queue_announce(conversation_id=conversation.id)
    return ticket


@transaction.atomic
def conversation_claim(*, conversation_id, agent, enforce_capacity: bool = True) -> bool:
    """Take a queued conversation. Exactly one agent wins a race; the others get False and see it leave the queue.

    An agent at their capacity (AgentPresence.capacity conversations at once) is refused, unless a manager assigns
    the conversation to them (`enforce_capacity=False`).
    """
    # Locking the agent's presence row serializes their own claims, so two at once cannot pass the limit together.
    presence = AgentPresence.objects.select_for_update().filter(user=agent).first()
    if enforce_capacity:
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
    queue_announce(conversation_id=conversation_id)
    conversation = Conversation.objects.select_related("site", "assignee").get(pk=conversation_id)
    webhook_conversation_event_emit(event=Webhook.Event.CLAIMED, conversation=conversation, agent=agent)
    return True


def conversation_resolve_by_staff(*, conversation_id, agent) -> None:
    """Resolve from the console: the assignee (or anyone, while no one holds it) may, and a supervisor (a manager,
    an admin) may resolve any conversation, as they can in the admin."""
    supervising = agent.has_perm(roles.SUPERVISOR_PERMISSION)
    chat_services.conversation_resolve(conversation_id=conversation_id, agent=None if supervising else agent)


def _console_user(username: str):
    """The active user of that name who may use the console; ActionRefused otherwise."""
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None or not user.has_perm(CONSOLE_PERMISSION):
        raise chat_services.ActionRefused("unknown_agent", "No agent with that name can take conversations.")
    return user


@transaction.atomic
def conversation_transfer(*, conversation_id, from_agent, to_username: str) -> None:
    """Pass a conversation the agent holds to another agent, with a system note in the history."""
    to_agent = _console_user(to_username)
    chat_services.conversation_reassign(conversation_id=conversation_id, from_agent=from_agent, to_agent=to_agent)
    Ticket.objects.filter(conversation_id=conversation_id).update(assignee=to_agent, updated_at=timezone.now())
    queue_announce(conversation_id=conversation_id)


@transaction.atomic
def conversation_take_over(*, conversation_id, agent) -> None:
    """Take a conversation another agent holds (the console's "Take over"), with a system message in the history.

    Any console user may, and their capacity is not enforced: taking over is a deliberate act, seen by everyone
    viewing the conversation. Only a conversation with an agent can be taken over (a waiting one is claimed).
    """
    agent = _console_user(agent.get_username())
    conversation = Conversation.objects.select_related("assignee").get(pk=conversation_id)
    if conversation.status != Conversation.Status.AGENT or conversation.assignee_id is None:
        raise chat_services.ActionRefused("not_assigned", "Only a conversation an agent holds can be taken over.")
    if conversation.assignee_id == agent.pk:
        raise chat_services.ActionRefused("already_yours", "This conversation is already yours.")
    # conversation_reassign locks the row and checks the assignee again: a race with another change is refused.
    chat_services.conversation_reassign(
        conversation_id=conversation_id, from_agent=conversation.assignee, to_agent=agent
    )
    Ticket.objects.filter(conversation_id=conversation_id).update(assignee=agent, updated_at=timezone.now())
    queue_announce(conversation_id=conversation_id)


def conversation_viewer_announce(*, conversation_id, username: str, on: bool, channel: str, answer: bool = False):
    """Tell the consoles viewing a conversation that an agent started (or stopped) viewing it.

    `channel` is the announcing console's channel name, so it ignores its own news; the consoles already viewing
    answer a newcomer's announcement with one of their own (`answer=True`, never answered again), so the newcomer
    learns who is there. Nothing is stored: a console's socket closing says it stopped.
    """
    conversation = Conversation(id=uuid.UUID(str(conversation_id)))
    event = {
        "type": "staff.viewer",
        "conversation": str(conversation.id),
        "username": username,
        "on": on,
        "channel": channel,
        "answer": answer,
    }
    broadcast.group_send(conversation.staff_group_name, event)


def agent_typing_signal(*, conversation_id, username: str, on: bool) -> None:
    """Tell the customer that an agent is (or stopped) typing, and the staff viewing the conversation who it is."""
    chat_services.typing_signal(conversation_id=conversation_id, role="agent", on=on)
    conversation = Conversation(id=uuid.UUID(str(conversation_id)))
    event = {"type": "staff.typing", "conversation": str(conversation.id), "username": username, "on": on}
    broadcast.group_send(conversation.staff_group_name, event)


def conversation_staff_action(conversation: Conversation, *, status: str, assignee) -> str | None:
    """What a manager's edit of status and assignee means: None (no change), "resolve", "hand_back", "transfer" or
    "assign"; ActionRefused saying why for a change the console cannot make either."""
    current = conversation.status
    if status == current and getattr(assignee, "pk", None) == conversation.assignee_id:
        return None
    if status == Conversation.Status.RESOLVED and current != Conversation.Status.RESOLVED:
        return "resolve"
    if status == Conversation.Status.BOT and current == Conversation.Status.AGENT:
        return "hand_back"
    if assignee is not None and status in (Conversation.Status.AGENT, current):
        if current == Conversation.Status.AGENT:
            return "transfer"
        if current == Conversation.Status.QUEUED:
            return "assign"
        raise chat_services.ActionRefused(
            "not_queued", "Only a conversation waiting for an agent, or with one, can be assigned."
        )
    if status == Conversation.Status.AGENT:
        raise chat_services.ActionRefused("assignee_required", "Choose the agent who takes the conversation.")
    raise chat_services.ActionRefused(
        "unsupported_change",
        f"A conversation cannot go from {Conversation.Status(current).label.lower()} to "
        f"{Conversation.Status(status).label.lower()}; it can be assigned, handed back to the bot or resolved.",
    )


@transaction.atomic
def conversation_staff_update(*, conversation_id, status: str, assignee) -> None:
    """A manager's edit of a conversation's status and assignee (the admin), made through the console's services,
    so it sends the same events, ticket changes and webhooks as the console does."""
    conversation = Conversation.objects.select_related("assignee").get(pk=conversation_id)
    action = conversation_staff_action(conversation, status=status, assignee=assignee)
    if action == "resolve":
        chat_services.conversation_resolve(conversation_id=conversation_id)
    elif action == "hand_back":
        chat_services.conversation_hand_back(conversation_id=conversation_id, agent=conversation.assignee)
    elif action == "transfer":
        conversation_transfer(
            conversation_id=conversation_id, from_agent=conversation.assignee, to_username=assignee.get_username()
        )
    elif action == "assign":
        agent = _console_user(assignee.get_username())
        if not conversation_claim(conversation_id=conversation_id, agent=agent, enforce_capacity=False):
            raise chat_services.ActionRefused("already_claimed", "Another agent took this conversation meanwhile.")


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
    """Whether any agent is online with a console open and room for another conversation (one query)."""
    held = Count("user__conversations", filter=Q(user__conversations__status=Conversation.Status.AGENT))
    return (
        AgentPresence.objects.filter(status=AgentPresence.Status.ONLINE, connections__gt=0)
        .annotate(held=held)
        .filter(held__lt=F("capacity"))
        .exists()
    )


@transaction.atomic
def ticket_update(
    *, agent, conversation_id=None, ticket_id=None, status=None, priority=None, tags=None, subject=None
) -> Ticket:
    """Change a ticket (found by its conversation, or by its id): status, priority (1-4), tags and subject."""
    tickets = Ticket.objects.select_for_update()
    ticket = tickets.get(pk=ticket_id) if ticket_id is not None else tickets.get(conversation_id=conversation_id)
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
    if subject is not None:
        if not isinstance(subject, str) or not subject.strip():
            raise chat_services.ActionRefused("invalid_ticket", "The subject cannot be empty.")
        ticket.subject = subject.strip()[:200]
    ticket.save()
    if ticket.conversation_id:
        queue_announce(conversation_id=ticket.conversation_id)
    return ticket


@transaction.atomic
def ticket_resolve_for_conversation(*, conversation) -> None:
    """A resolved conversation resolves its ticket."""
    Ticket.objects.filter(conversation=conversation).exclude(status=Ticket.Status.CLOSED).update(
        status=Ticket.Status.RESOLVED, updated_at=timezone.now()
    )


def agent_can_take_back(agent, *, presence_required: bool) -> bool:
    """Whether `agent` can take back a conversation that returns to the team: still active with the console
    permission; and, with `presence_required`, online with a console open and under their capacity."""
    if agent is None or not agent.is_active or not agent.has_perm(CONSOLE_PERMISSION):
        return False
    if not presence_required:
        return True
    presence = AgentPresence.objects.filter(user=agent).first()
    if presence is None or presence.status != AgentPresence.Status.ONLINE or presence.connections <= 0:
        return False
    return Conversation.objects.filter(status=Conversation.Status.AGENT, assignee=agent).count() < presence.capacity


@transaction.atomic
def conversation_route_reopened(*, conversation: Conversation, agent, snoozed: bool) -> None:
    """A conversation came back to the team (chat's conversation_reopened; it is queued now). Its last agent takes
    it back if they can (a snoozed one unless they are gone, a resolved one only if they are online with room);
    otherwise it waits in the queue (still credited to them until someone claims it), and the customer hears when
    nobody is there. Its ticket is open again."""
    taken = agent_can_take_back(agent, presence_required=not snoozed) and chat_services.conversation_assign(
        conversation_id=conversation.id, agent=agent, expected_status=Conversation.Status.QUEUED
    )
    # The priority staff gave the earlier round was for that one (see ticket_open_for_handoff): it starts over.
    Ticket.objects.filter(conversation_id=conversation.id).update(
        status=Ticket.Status.OPEN, priority=Ticket._meta.get_field("priority").default, updated_at=timezone.now()
    )
    if not taken and not agents_available():
        chat_services.conversation_contact_request(conversation_id=conversation.id)
    queue_announce(conversation_id=conversation.id)


@transaction.atomic
def conversation_reopen_by_staff(*, conversation_id, agent) -> None:
    """Reopen a resolved conversation from the console: the agent takes it (its last agent, anyone if it had none, a
    supervisor any), and its ticket is open again."""
    supervising = agent.has_perm(roles.SUPERVISOR_PERMISSION)
    chat_services.conversation_reopen(conversation_id=conversation_id, agent=agent, supervising=supervising)
    Ticket.objects.filter(conversation_id=conversation_id).update(
        status=Ticket.Status.OPEN, assignee=agent, updated_at=timezone.now()
    )
    queue_announce(conversation_id=conversation_id)


def snooze_until_parse(value) -> datetime.datetime | None:
    """The `until` of a snooze frame: None (until the customer writes) or an ISO 8601 date and time (without a
    zone, the server's); ActionRefused("invalid_until") for anything else."""
    if value is None:
        return None
    try:
        moment = parse_datetime(value) if isinstance(value, str) and len(value) <= 64 else None
    except ValueError:  # well formed, but no such date (a 13th month, say)
        moment = None
    if moment is None:
        raise chat_services.ActionRefused("invalid_until", "until must be an ISO 8601 date and time, or null.")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


@transaction.atomic
def conversation_snooze_by_staff(*, conversation_id, agent, until) -> None:
    """Snooze from the console until a time (`until`, ISO 8601) or, with None, until the customer writes: its
    assignee, or a supervisor."""
    supervising = agent.has_perm(roles.SUPERVISOR_PERMISSION)
    chat_services.conversation_snooze(
        conversation_id=conversation_id, agent=agent, until=snooze_until_parse(until), supervising=supervising
    )
    queue_announce(conversation_id=conversation_id)
