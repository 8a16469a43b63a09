"""Read access to the staff side's tickets for integrations (scope `read`), with chat's API keys and error format."""

import datetime
import uuid
from typing import Literal

from django.http import HttpRequest
from ninja import Field, Path, Query, Router, Schema

from chat.api.auth import read_auth
from chat.api.errors import ApiError
from chat.api.pagination import PageIn, PageOut, paginate
from chat.api.read_schemas import USERNAME_PATTERN, AwareDatetime
from chat.api.schemas import ErrorOut
from helpdesk import selectors
from helpdesk.models import Ticket

router = Router(auth=read_auth, tags=["tickets"])

ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 429: ErrorOut}
TicketStatus = Literal[tuple(Ticket.Status.values)]
# Priorities by name in the API ("urgent"), as integers in the database (so they sort).
PRIORITY_BY_NAME = {priority.name.lower(): priority.value for priority in Ticket.Priority}
PriorityName = Literal[tuple(PRIORITY_BY_NAME)]


class TicketFilters(Schema):
    status: TicketStatus = None
    priority: PriorityName = None
    assignee: str = Field(None, pattern=USERNAME_PATTERN, description="The agent's username.")
    tag: str = Field(None, pattern=r"^[^,\x00]{1,50}$", description="One tag, e.g. billing.")
    created_after: AwareDatetime = None
    created_before: AwareDatetime = None


class TicketOut(Schema):
    id: int
    subject: str
    status: TicketStatus
    priority: PriorityName
    assignee: str | None = Field(..., description="The username of the agent it is assigned to.")
    tags: list[str]
    conversation_id: uuid.UUID | None
    created_at: datetime.datetime
    updated_at: datetime.datetime

    @staticmethod
    def resolve_priority(obj: Ticket) -> str:
        return Ticket.Priority(obj.priority).name.lower()

    @staticmethod
    def resolve_assignee(obj: Ticket) -> str | None:
        return obj.assignee.get_username() if obj.assignee_id else None

    @staticmethod
    def resolve_tags(obj: Ticket) -> list[str]:
        return [tag.strip() for tag in obj.tags.split(",") if tag.strip()]


class TicketPage(PageOut):
    items: list[TicketOut]


@router.get("/tickets", response={200: TicketPage, **ERRORS}, summary="List tickets")
def tickets_list(request: HttpRequest, filters: Query[TicketFilters], paging: Query[PageIn]):
    """Tickets matching every filter given, newest first."""
    values = filters.dict()
    if values["priority"] is not None:
        values["priority"] = PRIORITY_BY_NAME[values["priority"]]
    return paginate(request, selectors.tickets_filter(visible_to=request.auth, **values), paging)


@router.get("/tickets/{ticket_id}", response={200: TicketOut, **ERRORS, 404: ErrorOut}, summary="A ticket")
def ticket_detail(request: HttpRequest, ticket_id: int = Path(..., ge=1, le=2**63 - 1)):
    ticket = selectors.ticket_find(ticket_id=ticket_id, visible_to=request.auth)
    if ticket is None:
        raise ApiError(404, "not_found", "There is no ticket with this id.")
    return ticket
