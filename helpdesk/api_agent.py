"""The agent API (scope `agent`): reply, note, assign, transfer, hand back, resolve and reopen conversations, and edit
tickets, through an API key that acts as a staff member (ApiKey.acts_as).

Every action is the console's, done by helpdesk.agent_actions with that member's own permissions, read afresh on
each request; the same events, ticket changes and webhooks follow. Refusals: 403 when the key acts as nobody who may
use the console (`acting_agent_missing`, `acting_agent_inactive`, `acting_agent_forbidden`) or the member lacks the
action's permission (`forbidden`); 404 for an unknown conversation, ticket or agent; 409 when the conversation's state
does not allow it, with the reason's code (`not_assigned`, `not_queued`, `already_claimed`, `already_resolved`,
`not_resolved`, `at_capacity`, ...).

Two of these answer at addresses the read endpoints have too (POST on a conversation's messages, PATCH on a ticket):
Django dispatches one address to one router, so those two operations join the read routers (`shared_paths_install`).
"""

import uuid
from typing import Annotated

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.http import HttpRequest
from ninja import Field, Path, Router, Status
from ninja.router import Router as RouterType
from pydantic import StrictBool

from chat import services as chat_services
from chat.api import selectors as api_selectors
from chat.api.auth import ApiKeyAuth
from chat.api.errors import ApiError
from chat.api.read_schemas import USERNAME_PATTERN, ConversationOut, MessageOut
from chat.api.schemas import ErrorOut, RequestBody
from chat.models import ApiKey
from helpdesk import agent_actions
from helpdesk.api_tickets import PRIORITY_BY_NAME, PriorityName, TicketOut, TicketStatus
from helpdesk.models import Ticket

# Text with at least one character that survives storage (not a space, not a control character), and no NUL.
VISIBLE_TEXT = r"^[^\x00]*[^\s\x00-\x08\x0b\x0c\x0e-\x1f\x7f][^\x00]*$"
CLIENT_ID_PATTERN = r"^[A-Za-z0-9._:@\-]{0,64}$"
TAG_PATTERN = r"^[^,\x00]{1,50}$"
# The statuses of the refusals that are not state conflicts (409).
REFUSAL_STATUS = {
    "forbidden": 403,
    "unknown_agent": 404,
    "invalid_ticket": 400,
    "invalid_until": 400,
}
# 413: a body over REQUEST_BODY_LIMIT_API, refused before it is read.
ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 413: ErrorOut, 429: ErrorOut}


class AgentKeyAuth(ApiKeyAuth):
    """An API key with the agent scope, acting as a staff member who may use the console now (`request.agent`)."""

    def __init__(self):
        super().__init__(ApiKey.Scope.AGENT)

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey:
        key = super().authenticate(request, token)
        try:
            request.agent = agent_actions.acting_agent(key=key)
        except agent_actions.ActingAgentRefused as exc:
            raise ApiError(403, exc.code, str(exc)) from exc
        return key


agent_auth = AgentKeyAuth()
router = Router(auth=agent_auth, tags=["agent"])


class AgentMessageIn(RequestBody):
    content: str = Field(
        ...,
        min_length=1,
        max_length=settings.CHAT_MAX_MESSAGE_CHARS,
        pattern=VISIBLE_TEXT,
        description="The text (not only spaces or control characters).",
    )
    private: StrictBool = Field(False, description="true: a private note for the staff, never shown to the customer.")
    client_id: str = Field(
        "",
        pattern=CLIENT_ID_PATTERN,
        description="Your id for this message: sending it again returns the stored message instead of a duplicate.",
    )


class AssignIn(RequestBody):
    agent: str | None = Field(
        None,
        pattern=USERNAME_PATTERN,
        description="The agent's username; null (or the key's own): the staff member the key acts as claims it.",
    )
    take_over: StrictBool = Field(
        False, description="Claiming for the key's agent: take it even from another agent who holds it."
    )


class TransferIn(RequestBody):
    agent: str = Field(..., pattern=USERNAME_PATTERN, description="The username of the agent who takes it over.")


Tag = Annotated[str, Field(pattern=TAG_PATTERN)]


class TicketPatch(RequestBody):
    """The fields to change; a field left out (or null) stays as it is."""

    status: TicketStatus | None = None
    priority: PriorityName | None = None
    tags: list[Tag] | None = Field(None, max_length=20, description='Replaces the tags, e.g. ["billing", "vip"].')
    subject: str | None = Field(None, max_length=200, pattern=VISIBLE_TEXT)
    assignee: str | None = Field(
        None,
        pattern=USERNAME_PATTERN,
        description="An agent's username: the ticket's conversation is assigned to them (as POST .../assign).",
    )


def _conversation_pk(conversation_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(conversation_id)
    except (ValueError, TypeError, AttributeError):
        raise ApiError(404, "not_found", "There is no conversation with this id.") from None


def _act(action, *, missing: str = "There is no conversation with this id.", **kwargs):
    """Run an agent action, its refusals turned into the API's errors."""
    try:
        return action(**kwargs)
    except chat_services.MessageRejected as exc:
        status = 429 if exc.code == "rate_limited" else 400
        extra = {"retry_after": exc.retry_after} if exc.retry_after else {}
        raise ApiError(status, exc.code, str(exc), **extra) from exc
    except chat_services.ActionRefused as exc:
        raise ApiError(REFUSAL_STATUS.get(exc.code, 409), exc.code, str(exc)) from exc
    except (ObjectDoesNotExist, ValidationError):
        raise ApiError(404, "not_found", missing) from None


def _conversation(conversation_id: uuid.UUID):
    return api_selectors.conversation_find(conversation_id=str(conversation_id), visible_to=None)


def message_post(request: HttpRequest, conversation_id: str, payload: AgentMessageIn):
    """A reply to the customer, as the key's agent (the conversation must be theirs), or with `private` a note for
    the staff. Sent to the customer's widget and the consoles at once, as from the console."""
    pk = _conversation_pk(conversation_id)
    message = _act(
        agent_actions.message_post_by_agent,
        conversation_id=pk,
        agent=request.agent,
        content=payload.content,
        private=payload.private,
        client_id=payload.client_id,
    )
    return Status(201, message)


@router.post(
    "/conversations/{conversation_id}/assign",
    response={200: ConversationOut, **ERRORS},
    summary="Claim or assign a conversation",
)
def conversation_assign(request: HttpRequest, conversation_id: str, payload: AssignIn | None = None):
    """Without `agent` (or with the key's own): the key's agent claims a waiting conversation, within their capacity
    (409 `not_queued`, `already_claimed`, `at_capacity`); with `take_over`, takes it from the agent who holds it.
    Naming another agent is a supervisor's (a manager, an admin): a waiting conversation is assigned to them, one
    an agent holds is transferred."""
    pk = _conversation_pk(conversation_id)
    payload = payload or AssignIn()
    _act(
        agent_actions.conversation_assign_by_agent,
        conversation_id=pk,
        agent=request.agent,
        to_username=payload.agent,
        take_over=payload.take_over,
    )
    return _conversation(pk)


@router.post(
    "/conversations/{conversation_id}/transfer",
    response={200: ConversationOut, **ERRORS},
    summary="Transfer a conversation to another agent",
)
def conversation_transfer(request: HttpRequest, conversation_id: str, payload: TransferIn):
    """The key's agent passes their conversation to another agent who may use the console (404 `unknown_agent`
    otherwise); the history says so."""
    pk = _conversation_pk(conversation_id)
    _act(
        agent_actions.conversation_transfer_by_agent, conversation_id=pk, agent=request.agent, to_username=payload.agent
    )
    return _conversation(pk)


@router.post(
    "/conversations/{conversation_id}/hand_back",
    response={200: ConversationOut, **ERRORS},
    summary="Hand a conversation back to the bot",
)
def conversation_hand_back(request: HttpRequest, conversation_id: str):
    """The key's agent gives their conversation back to the bot, which answers the customer's next message."""
    pk = _conversation_pk(conversation_id)
    _act(agent_actions.conversation_hand_back_by_agent, conversation_id=pk, agent=request.agent)
    return _conversation(pk)


@router.post(
    "/conversations/{conversation_id}/resolve",
    response={200: ConversationOut, **ERRORS},
    summary="Resolve a conversation",
)
def conversation_resolve(request: HttpRequest, conversation_id: str):
    """Resolve the key's agent's conversation (a supervisor: any); its ticket is resolved, the customer is asked to
    rate it, and the `conversation.resolved` webhook is sent. 409 `already_resolved` if it is."""
    pk = _conversation_pk(conversation_id)
    _act(agent_actions.conversation_resolve_by_agent, conversation_id=pk, agent=request.agent)
    return _conversation(pk)


@router.post(
    "/conversations/{conversation_id}/reopen",
    response={200: ConversationOut, **ERRORS},
    summary="Reopen a resolved conversation",
)
def conversation_reopen(request: HttpRequest, conversation_id: str):
    """Reopen a resolved conversation; the key's agent takes it. Its last agent may (anyone, if it had none; a
    supervisor, any); its ticket opens again."""
    pk = _conversation_pk(conversation_id)
    _act(agent_actions.conversation_reopen_by_agent, conversation_id=pk, agent=request.agent)
    return _conversation(pk)


def ticket_edit(request: HttpRequest, payload: TicketPatch, ticket_id: int = Path(..., ge=1, le=2**63 - 1)):
    """Change a ticket's status, priority, tags or subject (the ticket permission, and the ticket of the key's
    agent's own conversation unless they are a supervisor), or its agent (`assignee`: the conversation is assigned,
    as POST .../assign)."""
    changes = payload.model_dump(exclude_none=True)
    if "priority" in changes:
        changes["priority"] = PRIORITY_BY_NAME[changes["priority"]]
    if "tags" in changes:
        changes["tags"] = ", ".join(changes["tags"])
    _act(
        agent_actions.ticket_edit_by_agent,
        missing="There is no ticket with this id.",
        ticket_id=ticket_id,
        agent=request.agent,
        changes=changes,
    )
    return Ticket.objects.select_related("assignee").get(pk=ticket_id)


def shared_paths_install(*, read_router: RouterType, tickets_router: RouterType) -> None:
    """Add the two agent operations whose addresses the read endpoints have (call before the routers are mounted)."""
    read_router.add_api_operation(
        "/conversations/{conversation_id}/messages",
        ["POST"],
        message_post,
        auth=agent_auth,
        response={201: MessageOut, **ERRORS},
        summary="Reply, or write a private note",
        tags=["agent"],
    )
    tickets_router.add_api_operation(
        "/tickets/{ticket_id}",
        ["PATCH"],
        ticket_edit,
        auth=agent_auth,
        response={200: TicketOut, **ERRORS},
        summary="Edit a ticket",
        tags=["agent"],
    )
