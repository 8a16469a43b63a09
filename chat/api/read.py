"""Read access for integrations: conversations, their messages and the customers' ratings (scope `read`).

Lists are paginated (`?page=&page_size=`) and filtered by query parameters; newest first. Private notes of the
staff are only shown to keys with the `admin` scope. A `read` key sees the widget's conversations and its own API
sessions (those made with it through /api/v1/chat or /v1/chat/completions), not other keys' sessions: those answer
404, as an unknown id does. An `admin` key sees every conversation.
"""

from django.http import HttpRequest
from ninja import Query, Router

from chat.api import selectors
from chat.api.auth import read_auth
from chat.api.errors import ApiError
from chat.api.pagination import PageIn, paginate
from chat.api.read_schemas import (
    ConversationFilters,
    ConversationOut,
    ConversationPage,
    MessageFilters,
    MessagePage,
    RatingFilters,
    RatingPage,
)
from chat.api.schemas import ErrorOut
from chat.attachment_views import attachment_file_response
from chat.attachments import ALLOWED
from chat.models import ApiKey, Conversation

router = Router(auth=read_auth, tags=["conversations"])

ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 429: ErrorOut}
ERRORS_404 = {**ERRORS, 404: ErrorOut}


def conversation_or_404(request: HttpRequest, conversation_id: str) -> Conversation:
    """The conversation, or the API's 404 (also for an id that is not a UUID, or another key's session)."""
    conversation = selectors.conversation_find(conversation_id=conversation_id, visible_to=request.auth)
    if conversation is None:
        raise ApiError(404, "not_found", "There is no conversation with this id.")
    return conversation


def sees_notes(request: HttpRequest) -> bool:
    """Private notes are the staff's: only keys with the admin scope read them."""
    return request.auth.allows(ApiKey.Scope.ADMIN)


@router.get("/conversations", response={200: ConversationPage, **ERRORS}, summary="List conversations")
def conversations_list(request: HttpRequest, filters: Query[ConversationFilters], paging: Query[PageIn]):
    """Conversations matching every filter given, newest first."""
    return paginate(request, selectors.conversations_filter(visible_to=request.auth, **filters.dict()), paging)


@router.get("/conversations/{conversation_id}", response={200: ConversationOut, **ERRORS_404}, summary="A conversation")
def conversation_detail(request: HttpRequest, conversation_id: str):
    return conversation_or_404(request, conversation_id)


@router.get(
    "/conversations/{conversation_id}/messages",
    response={200: MessagePage, **ERRORS_404},
    summary="A conversation's messages",
)
def conversation_messages(
    request: HttpRequest, conversation_id: str, filters: Query[MessageFilters], paging: Query[PageIn]
):
    """Oldest first. Bot messages carry how they were generated (`stats`); notes need the admin scope."""
    conversation = conversation_or_404(request, conversation_id)
    rows = selectors.messages_filter(
        conversation=conversation, after_seq=filters.after_seq, with_notes=sees_notes(request)
    )
    return paginate(request, rows, paging)


@router.get(
    "/conversations/{conversation_id}/attachments/{attachment_id}",
    response={200: None, **ERRORS_404},
    summary="A file sent in a conversation",
    openapi_extra={
        "responses": {
            200: {
                "description": "The file's bytes, as the type its bytes were found to be (the attachment's "
                "`content_type`); `?thumb=1`: an image's JPEG thumbnail.",
                "content": {kind.content_type: {"schema": {"type": "string", "format": "binary"}} for kind in ALLOWED},
            }
        }
    },
)
def attachment_download(request: HttpRequest, conversation_id: str, attachment_id: str, thumb: bool = False):
    """The bytes of a file listed in a message's `attachments` (its `url`)."""
    conversation = conversation_or_404(request, conversation_id)
    attachment = selectors.attachment_find(conversation=conversation, attachment_id=attachment_id)
    response = attachment_file_response(attachment, thumbnail=thumb) if attachment is not None else None
    if response is None:
        raise ApiError(404, "not_found", "There is no such file in this conversation.")
    return response


@router.get("/ratings", response={200: RatingPage, **ERRORS}, tags=["ratings"], summary="List ratings")
def ratings_list(request: HttpRequest, filters: Query[RatingFilters], paging: Query[PageIn]):
    """The customers' satisfaction ratings (1-5), newest first, with the conversation and its agent."""
    return paginate(request, selectors.ratings_filter(visible_to=request.auth, **filters.dict()), paging)
