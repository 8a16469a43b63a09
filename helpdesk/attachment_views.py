"""The console's file upload: the conversation's assigned agent sends a file to the customer (session and CSRF, like
every console page; the message and its file are chat's, stored by chat.services.attachment_post_agent).

Downloads are chat's one endpoint (chat.attachment_views), which answers staff with the console as well as the
conversation's customer.
"""

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.http import require_POST

from chat import services as chat_services
from chat.attachment_views import refusal, upload_fields
from chat.http import BadRequest, json_error
from chat.models import Conversation
from chat.serializers import staff_message_to_dict
from helpdesk import selectors

CONSOLE_PERMISSION = "helpdesk.use_console"


@require_POST
def console_attachment_upload(request: HttpRequest, conversation_id) -> HttpResponse:
    """POST multipart (file, caption, client_id): the agent's reply carrying the file (201), as the console shows
    it. Only the conversation's assignee may send one, as with any reply. JSON errors, never a sign-in redirect."""
    user = request.user
    if not user.is_authenticated:
        return json_error(401, "login_required", "Sign in again.")
    if not (user.is_active and user.has_perm(CONSOLE_PERMISSION)):
        return json_error(403, "forbidden", "Sending files needs the console.")
    try:
        selectors.console_frame_check(user=request.user, frame_type="message", conversation_id=conversation_id)
    except (Conversation.DoesNotExist, DjangoValidationError):
        return json_error(404, "not_found", "There is no such conversation.")
    except chat_services.ActionRefused as exc:
        return json_error(403, exc.code, str(exc))
    try:
        upload, caption, client_id = upload_fields(request)
        message = chat_services.attachment_post_agent(
            conversation_id=conversation_id, agent=request.user, upload=upload, caption=caption, client_id=client_id
        )
    except BadRequest as exc:
        return exc.response
    except (RequestDataTooBig, TooManyFilesSent, TooManyFieldsSent):
        return json_error(413, "payload_too_large", "The request body is too large.")
    except (MultiPartParserError, SuspiciousOperation):
        return json_error(400, "invalid_upload", "The upload could not be read; send it as multipart/form-data.")
    except chat_services.MessageRejected as exc:
        return refusal(exc)
    except chat_services.ActionRefused as exc:
        return json_error(409, exc.code, str(exc))
    return JsonResponse({"message": staff_message_to_dict(message)}, status=201)
