"""GET /api/v1/conversations/{id}/export: a conversation as one JSON document, with its ticket.

It lives on the staff side because the ticket does: chat never imports helpdesk.
"""

import datetime
import json
from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, StreamingHttpResponse
from ninja import Field, Router, Schema
from ninja.responses import NinjaJSONEncoder

from chat.api.auth import read_auth
from chat.api.errors import ApiError
from chat.api.read import ERRORS_404, sees_notes
from chat.api.read_schemas import ConversationOut, MessageOut
from helpdesk import selectors
from helpdesk.api_tickets import TicketOut

router = Router(auth=read_auth, tags=["conversations"])

EXPORT_BATCH = 500  # messages read and sent at a time


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
def conversation_export(request: HttpRequest, conversation_id: str):
    """The whole conversation as one document, served as a file download (`Content-Disposition: attachment`).

    Streamed: the messages are read and written a batch at a time, so a conversation of tens of thousands of
    messages is never held whole in memory, and the client receives it as it is read.
    """
    document = selectors.conversation_export(
        conversation_id=conversation_id, with_notes=sees_notes(request), visible_to=request.auth
    )
    if document is None:
        raise ApiError(404, "not_found", "There is no conversation with this id.")
    parts = _document_parts(document)
    content = _async_parts(parts) if isinstance(request, ASGIRequest) else parts
    response = StreamingHttpResponse(content, content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="conversation-{document["conversation"].id}.json"'
    return response


def _json(schema: type[Schema], obj) -> str:
    # The API's own encoder, so dates and numbers read as in every other answer.
    return json.dumps(schema.from_orm(obj).model_dump(), cls=NinjaJSONEncoder, ensure_ascii=False)


def _document_parts(document: dict) -> Iterator[str]:
    """The ConversationExport document as pieces of JSON text: the head, then the messages a batch at a time."""
    ticket = _json(TicketOut, document["ticket"]) if document["ticket"] is not None else "null"
    exported_at = json.dumps(document["exported_at"], cls=NinjaJSONEncoder)
    yield f'{{"exported_at":{exported_at},"conversation":{_json(ConversationOut, document["conversation"])},'
    yield f'"ticket":{ticket},"messages":['
    rows, last_seq, first = document["messages"], 0, True
    while batch := list(rows.filter(seq__gt=last_seq)[:EXPORT_BATCH]):
        yield ("" if first else ",") + ",".join(_json(MessageOut, message) for message in batch)
        first, last_seq = False, batch[-1].seq
    yield "]}"


async def _async_parts(parts: Iterator[str]) -> AsyncIterator[str]:
    """The parts read in the request's database thread: daphne sends each as it comes (a plain iterator would be
    read whole first under ASGI)."""
    next_part = sync_to_async(lambda: next(parts, None), thread_sensitive=True)
    while (part := await next_part()) is not None:
        yield part
