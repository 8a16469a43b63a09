"""GET /api/v1/conversations/{id}/export: a conversation as one JSON document, with its ticket.

It lives on the staff side because the ticket does: chat never imports helpdesk.
"""

import datetime

from django.http import HttpRequest, HttpResponse
from ninja import Field, Router, Schema

from chat.api.auth import read_auth
from chat.api.errors import ApiError
from chat.api.read import ERRORS_404, sees_notes
from chat.api.read_schemas import ConversationOut, MessageOut
from helpdesk import selectors
from helpdesk.api_tickets import TicketOut

router = Router(auth=read_auth, tags=["conversations"])


class ConversationExport(Schema):
    exported_at: datetime.datetime
    conversation: ConversationOut = Field(..., description="With its rating, if the customer gave one.")
    messages: list[MessageOut] = Field(..., description="Every message, oldest first; notes with the admin scope.")
    ticket: TicketOut | None


@router.get(
    "/conversations/{conversation_id}/export",
    response={200: ConversationExport, **ERRORS_404},
    summary="Export a conversation as JSON",
)
def conversation_export(request: HttpRequest, response: HttpResponse, conversation_id: str):
    """The whole conversation as one document, served as a file download (`Content-Disposition: attachment`)."""
    document = selectors.conversation_export(conversation_id=conversation_id, with_notes=sees_notes(request))
    if document is None:
        raise ApiError(404, "not_found", "There is no conversation with this id.")
    response["Content-Disposition"] = f'attachment; filename="conversation-{document["conversation"].id}.json"'
    return document
