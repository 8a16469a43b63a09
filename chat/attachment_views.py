"""The widget's attachment endpoints: a customer sends a file into their conversation, and a file is downloaded.

Both are cross-origin like the rest of the widget's API (chat.views), and use no cookies for the customer: the
conversation's secret (or a signed access token, chat.access) travels in the X-Conversation-Secret header, never
in the address. A download is also answered to signed-in staff with the console (their session cookie, the
console being on the helpdesk's own origin). Anyone else gets the same 404 as for an attachment that does not exist.

A file is served as what its bytes were found to be (chat.attachments), never as a page: nosniff, a sandboxing
Content-Security-Policy, inline only for images (a PDF is a download: Chrome blocks its viewer under that CSP),
private caching.
"""

from collections.abc import Callable
from functools import wraps

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent, TooManyFilesSent
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.http import content_disposition_header
from django.views.decorators.csrf import csrf_exempt

from chat import selectors, services
from chat.attachments import BY_CONTENT_TYPE
from chat.http import BadRequest, json_error
from chat.metrics import RATE_LIMITED
from chat.models import Attachment, Conversation
from chat.origins import origin_allowed
from chat.serializers import message_to_dict

SECRET_HEADER = "X-Conversation-Secret"
# The staff console's permission (helpdesk.roles), named here rather than imported: chat does not import helpdesk.
STAFF_PERMISSION = "helpdesk.use_console"
# What a downloaded file may do in a browser that opens it: nothing (no script, no form, no plugin, no frame).
DOWNLOAD_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"
# The HTTP status of a refused file, by code; any other refusal is a 400.
REFUSAL_STATUS = {"file_too_large": 413, "file_type_not_allowed": 415, "rate_limited": 429}


def _own_origin(request: HttpRequest) -> str:
    return f"{request.scheme}://{request.get_host()}"


def _cors(response: HttpResponse, origin: str | None) -> HttpResponse:
    if origin:
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Expose-Headers"] = "Content-Disposition"
        response["Vary"] = "Origin"
    return response


def _not_found(origin: str | None) -> HttpResponse:
    # Readable by the page (a widget can tell "gone" from "network"), saying nothing about what exists.
    return _cors(json_error(404, "not_found", "There is no such file."), origin)


def _preflight(request: HttpRequest) -> HttpResponse:
    """CORS preflight. It carries no credential, so it is answered by the origins any active site allows, never by
    looking the conversation up (which would tell a stranger whether it exists)."""
    origin = request.headers.get("Origin")
    if not origin_allowed(origin=origin, allowed=selectors.site_origins_all(), own_origin=_own_origin(request)):
        return json_error(403, "origin_not_allowed", "Chat is not enabled for this website.")
    response = HttpResponse(status=204)
    response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    response["Access-Control-Allow-Headers"] = f"Content-Type, {SECRET_HEADER}"
    response["Access-Control-Max-Age"] = "600"
    return _cors(response, origin)


def _customer_conversation(request: HttpRequest, conversation_id) -> Conversation | None:
    """The conversation whose secret or access token the request carries; None for anything else."""
    secret = request.headers.get(SECRET_HEADER, "")
    if not secret or len(secret) > 512:
        return None
    try:
        return selectors.conversation_get_for_customer(conversation_id=conversation_id, secret=secret)
    except selectors.ConversationAccessDenied:
        return None


def _origin_refused(request: HttpRequest, conversation: Conversation) -> HttpResponse | None:
    """403 when the browser says the request comes from a page the conversation's site does not allow."""
    origin = request.headers.get("Origin")
    if origin is None:  # not a cross-origin browser request; the secret is what counts
        return None
    allowed = conversation.site.origins if conversation.site_id else set()
    if origin_allowed(origin=origin, allowed=allowed, own_origin=_own_origin(request)):
        return None
    return _cors(json_error(403, "origin_not_allowed", "Chat is not enabled for this website."), origin)


def attachment_endpoint(view: Callable) -> Callable:
    """Preflight, CORS headers and the JSON error format for the views below (no cookies: no CSRF to protect)."""

    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method == "OPTIONS":
            return _preflight(request)
        origin = request.headers.get("Origin")
        try:
            response = view(request, *args, **kwargs)
        except BadRequest as exc:
            response = exc.response
        except (RequestDataTooBig, TooManyFilesSent, TooManyFieldsSent):
            response = json_error(413, "payload_too_large", "The request body is too large.")
        except (MultiPartParserError, SuspiciousOperation):
            response = json_error(
                400, "invalid_upload", "The upload could not be read; send it as multipart/form-data."
            )
        return _cors(response, origin) if "Access-Control-Allow-Origin" not in response else response

    return wrapper


def upload_fields(request: HttpRequest) -> tuple:
    """The upload's file, caption and client_id from a multipart form (shared with the console's upload)."""
    if not request.content_type or not request.content_type.startswith("multipart/form-data"):
        raise BadRequest(400, "invalid_upload", "Send the file as multipart/form-data, in the field 'file'.")
    upload = request.FILES.get("file")
    if upload is None:
        raise BadRequest(400, "file_missing", "Choose a file to send.", field="file")
    caption = request.POST.get("caption", "")
    client_id = request.POST.get("client_id", "")
    return upload, caption, client_id


def refusal(exc: services.MessageRejected) -> JsonResponse:
    """A refused file or message in the error format, with the status its code calls for."""
    extra = {"retry_after": exc.retry_after} if exc.retry_after is not None else {}
    field = "file" if exc.code.startswith(("file_", "image_")) else "caption"
    return json_error(REFUSAL_STATUS.get(exc.code, 400), exc.code, str(exc), field=field, **extra)


@attachment_endpoint
def attachment_upload(request: HttpRequest, conversation_id) -> HttpResponse:
    """POST multipart (file, caption, client_id) with the conversation's secret: the customer's message carrying the
    file, as it will be shown (201; 200 for a resend of a stored one)."""
    if request.method != "POST":
        raise BadRequest(405, "method_not_allowed", "Use POST.")
    conversation = _customer_conversation(request, conversation_id)
    if conversation is None:
        return json_error(404, "not_found", "There is no such conversation, or the secret does not open it.")
    refused = _origin_refused(request, conversation)
    if refused is not None:
        return refused
    upload, caption, client_id = upload_fields(request)
    try:
        message, created = services.attachment_post_customer(
            conversation_id=conversation.id, upload=upload, caption=caption, client_id=client_id
        )
    except services.MessageRejected as exc:
        if exc.code == "rate_limited":
            RATE_LIMITED.labels(channel="widget", limit="attachments").inc()
        return refusal(exc)
    return JsonResponse({"message": message_to_dict(message)}, status=201 if created else 200)


def attachment_file_response(attachment: Attachment, *, thumbnail: bool = False) -> FileResponse | None:
    """The file (or an image's thumbnail) as served everywhere: as what its bytes are, never as a page (nosniff, a
    sandboxing CSP, inline only for images, privately cached). None when it is not stored (any more)."""
    stored = attachment.thumbnail if thumbnail else attachment.file
    if not stored.name:
        return None
    try:
        handle = stored.storage.open(stored.name, "rb")
    except (FileNotFoundError, OSError):
        return None
    kind = BY_CONTENT_TYPE.get(attachment.content_type)
    content_type = "image/jpeg" if thumbnail else attachment.content_type
    if content_type == "text/plain":
        content_type = "text/plain; charset=utf-8"  # checked to be UTF-8 when it arrived
    inline = thumbnail or (kind is not None and kind.inline)
    response = FileResponse(handle, content_type=content_type)
    if not thumbnail:
        response["Content-Length"] = str(attachment.size)
    response["Content-Disposition"] = content_disposition_header(not inline, attachment.name)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = DOWNLOAD_CSP
    response["Cache-Control"] = "private, max-age=3600"
    # Readable by a CORS fetch (the widget's, with the header) but not embeddable by other pages without one.
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


@attachment_endpoint
def attachment_download(request: HttpRequest, conversation_id, attachment_id) -> HttpResponse:
    """GET a file (or, with ?thumb=1, an image's thumbnail) for the conversation's customer or its staff."""
    if request.method not in ("GET", "HEAD"):
        raise BadRequest(405, "method_not_allowed", "Use GET.")
    origin = request.headers.get("Origin")
    user = request.user
    staff = user.is_authenticated and user.is_active and user.has_perm(STAFF_PERMISSION)
    if not staff:
        conversation = _customer_conversation(request, conversation_id)
        if conversation is None:
            return _not_found(origin)
        refused = _origin_refused(request, conversation)
        if refused is not None:
            return refused
    attachment = Attachment.objects.filter(pk=attachment_id, conversation_id=conversation_id).first()
    if attachment is None:
        return _not_found(origin)
    response = attachment_file_response(attachment, thumbnail=request.GET.get("thumb") == "1")
    if response is None:
        return _not_found(origin)
    response = _cors(response, origin)
    response["Vary"] = "Origin, Cookie, " + SECRET_HEADER
    return response
