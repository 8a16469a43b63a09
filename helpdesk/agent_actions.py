"""The agent API's actions: what the console does, done through an API key on behalf of the staff member it acts as.

Each action checks what the console checks for the same frame (helpdesk.selectors.CONSOLE_FRAME_ACCESS: acting needs
the conversation to be the agent's own, supervisors act on any; editing a ticket needs the ticket permission) and
then calls the console's own service, so the same events, ticket changes and webhooks follow. The staff member is
read afresh on every request (`acting_agent`): a deactivation or a removal from the agents stops the key at once.

Refusals are chat's ActionRefused with a code (`not_assigned`, `already_resolved`, `unknown_agent`, ...), which the
API turns into its statuses (helpdesk.api_agent).
"""

from django.contrib.auth import get_user_model
from django.db import transaction

from chat import services as chat_services
from chat.models import ApiKey, Conversation, Message
from chat.services import ActionRefused
from chat.services.base import storable
from helpdesk import roles, selectors, services
from helpdesk.models import Ticket


class ActingAgentRefused(Exception):
    """The key acts as nobody who may use the console now; `code` says why."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def acting_agent(*, key: ApiKey):
    """The staff member `key` acts as, read now, if they may use the console; ActingAgentRefused otherwise."""
    if key.acts_as_id is None:
        raise ActingAgentRefused(
            "acting_agent_missing",
            'This API key acts as no staff member; an admin chooses one ("acts as") on the key.',
        )
    user = get_user_model()._default_manager.filter(pk=key.acts_as_id).first()
    if user is None or not user.is_active:
        raise ActingAgentRefused("acting_agent_inactive", "The staff member this API key acts as is deactivated.")
    if not user.has_perm(services.CONSOLE_PERMISSION):
        raise ActingAgentRefused(
            "acting_agent_forbidden", f"{user.get_username()}, whom this API key acts as, may not use the console."
        )
    return user


def action_check(*, agent, action: str, conversation_id) -> Conversation:
    """The conversation, if `agent` may take the console's `action` on it; Conversation.DoesNotExist (or
    ValidationError) for no such conversation, ActionRefused("forbidden") without the action's permission, and
    ActionRefused("not_assigned") for a conversation that is not theirs when the action needs it to be."""
    rule, permission = selectors.CONSOLE_FRAME_ACCESS[action]
    conversation = Conversation.objects.only("id", "status", "assignee_id").get(pk=conversation_id)
    if permission is not None and not agent.has_perm(permission):
        raise ActionRefused("forbidden", f"{agent.get_username()} does not have the permission to do that.")
    if rule in ("own", "queued_or_own") and not agent.has_perm(roles.SUPERVISOR_PERMISSION):
        queued = rule == "queued_or_own" and conversation.status == Conversation.Status.QUEUED
        if conversation.assignee_id != agent.pk and not queued:
            raise ActionRefused("not_assigned", f"This conversation is not assigned to {agent.get_username()}.")
    return conversation


@transaction.atomic
def message_post_by_agent(*, conversation_id, agent, content, private: bool = False, client_id: str = "") -> Message:
    """A reply to the customer (the console's "message"), or with `private` a note for the staff ("note")."""
    action_check(agent=agent, action="note" if private else "message", conversation_id=conversation_id)
    if private:
        return chat_services.note_post(
            conversation_id=conversation_id, agent=agent, content=content, client_id=client_id
        )
    return chat_services.message_post_agent(
        conversation_id=conversation_id, agent=agent, content=content, client_id=client_id
    )


def _user_named(username: str):
    user = get_user_model()._default_manager.filter(username=username).first()
    if user is None:
        raise ActionRefused("unknown_agent", "No agent with that name can take conversations.")
    return user


@transaction.atomic
def conversation_assign_by_agent(*, conversation_id, agent, to_username: str | None, take_over: bool = False) -> None:
    """Claim a waiting conversation (to_username None, or the agent's own name: the console's claim, within their
    capacity), or with `take_over` take one another agent holds (the console's "Take over"). Assigning to someone
    else is a supervisor's, as in the admin (helpdesk.services.conversation_staff_update): a waiting conversation is
    assigned past the agent's capacity, one an agent holds is transferred."""
    to_username = storable(to_username) if to_username is not None else None
    if to_username is None or to_username == agent.get_username():
        action_check(agent=agent, action="take_over" if take_over else "claim", conversation_id=conversation_id)
        if take_over:
            services.conversation_take_over(conversation_id=conversation_id, agent=agent)
            return
        if services.conversation_claim(conversation_id=conversation_id, agent=agent):
            return
        status, assignee_id = Conversation.objects.filter(pk=conversation_id).values_list("status", "assignee_id").get()
        if status == Conversation.Status.AGENT and assignee_id == agent.pk:
            raise ActionRefused("already_yours", "This conversation is already yours.")
        if status == Conversation.Status.AGENT:
            raise ActionRefused(
                "already_claimed", "Another agent has this conversation; take it over with take_over: true."
            )
        raise ActionRefused("not_queued", "Only a conversation waiting in the queue can be claimed.")
    if not agent.has_perm(roles.SUPERVISOR_PERMISSION):
        raise ActionRefused(
            "forbidden", "Only a supervisor (a manager, an admin) assigns conversations to others; transfer yours."
        )
    Conversation.objects.only("id").get(pk=conversation_id)  # exists: not_found before unknown_agent
    services.conversation_staff_update(
        conversation_id=conversation_id, status=Conversation.Status.AGENT, assignee=_user_named(to_username)
    )


@transaction.atomic
def conversation_transfer_by_agent(*, conversation_id, agent, to_username: str) -> None:
    """Pass the agent's conversation to another agent (the console's "transfer")."""
    to_username = storable(to_username)
    action_check(agent=agent, action="transfer", conversation_id=conversation_id)
    if to_username == agent.get_username():
        raise ActionRefused("already_yours", "This conversation is already yours; name another agent.")
    services.conversation_transfer(conversation_id=conversation_id, from_agent=agent, to_username=to_username)


@transaction.atomic
def conversation_hand_back_by_agent(*, conversation_id, agent) -> None:
    """Give the agent's conversation back to the bot (the console's "hand_back")."""
    action_check(agent=agent, action="hand_back", conversation_id=conversation_id)
    chat_services.conversation_hand_back(conversation_id=conversation_id, agent=agent)


@transaction.atomic
def conversation_resolve_by_agent(*, conversation_id, agent) -> None:
    """Resolve the agent's conversation (a supervisor: any), as the console's "resolve"; resolving a resolved
    conversation is refused, not repeated, so an integration learns that someone else resolved it."""
    conversation = action_check(agent=agent, action="resolve", conversation_id=conversation_id)
    if conversation.status == Conversation.Status.RESOLVED:
        raise ActionRefused("already_resolved", "This conversation is resolved already.")
    services.conversation_resolve_by_staff(conversation_id=conversation_id, agent=agent)


@transaction.atomic
def conversation_reopen_by_agent(*, conversation_id, agent) -> None:
    """Reopen a resolved conversation and take it (the console's "reopen": its last agent, or a supervisor)."""
    action_check(agent=agent, action="reopen", conversation_id=conversation_id)
    services.conversation_reopen_by_staff(conversation_id=conversation_id, agent=agent)


@transaction.atomic
def ticket_edit_by_agent(*, ticket_id: int, agent, changes: dict) -> Ticket:
    """Change a ticket: `changes` holds some of status, priority (1-4), tags (comma-separated), subject and assignee
    (a username; the ticket's conversation is assigned, see conversation_assign_by_agent). The ticket permission
    and, for a ticket of a conversation, the console's rule for ticket edits apply (its agent, or a supervisor)."""
    ticket = Ticket.objects.only("id", "conversation_id").get(pk=ticket_id)
    changes = dict(changes)
    assignee = changes.pop("assignee", None)
    if not agent.has_perm(roles.TICKET_EDIT_PERMISSION):
        raise ActionRefused("forbidden", f"{agent.get_username()} does not have the permission to edit tickets.")
    if assignee is not None:
        if ticket.conversation_id is None:
            raise ActionRefused("no_conversation", "This ticket has no conversation: its agent cannot change.")
        current = Conversation.objects.filter(pk=ticket.conversation_id).values_list("assignee__username", "status")
        if current.get() != (assignee, Conversation.Status.AGENT):
            conversation_assign_by_agent(conversation_id=ticket.conversation_id, agent=agent, to_username=assignee)
    if not changes:
        return ticket
    for field in ("subject", "tags"):  # as chat stores text: no control characters, no unpaired surrogates
        if isinstance(changes.get(field), str):
            changes[field] = storable(changes[field])
    if ticket.conversation_id is not None:
        action_check(agent=agent, action="ticket", conversation_id=ticket.conversation_id)
    return services.ticket_update(ticket_id=ticket.pk, agent=agent, **changes)
