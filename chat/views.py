"""HTTP endpoints of the customer side: the chat page and opening a conversation."""

import json

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import HttpRequest, JsonResponse
from django.shortcuts import render
from django.utils.translation import get_language_from_request
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

from chat import services


def json_error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


@require_GET
@ensure_csrf_cookie
def chat_page(request: HttpRequest):
    return render(request, "chat/page.html", {"company_name": settings.COMPANY_NAME})


@require_POST
def conversation_create(request: HttpRequest) -> JsonResponse:
    """Open a conversation. Body (JSON, all optional): name, email, language, region. Returns its id and secret."""
    if len(request.body) > 4096:
        return json_error(413, "body_too_large", "The request body is too large.")
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return json_error(400, "invalid_json", "The body is not valid JSON.")
    if not isinstance(body, dict):
        return json_error(400, "invalid_body", "The body must be a JSON object.")
    fields = {key: body.get(key, "") for key in ("name", "email", "language", "region")}
    if any(not isinstance(value, str) for value in fields.values()):
        return json_error(400, "invalid_field", "name, email, language and region must be strings.")
    if fields["email"]:
        try:
            validate_email(fields["email"])
        except ValidationError:
            return json_error(400, "invalid_email", "The email address is not valid.")
    conversation, secret = services.conversation_start(
        language=fields["language"] or get_language_from_request(request),
        region=fields["region"],
        customer_name=fields["name"].strip(),
        customer_email=fields["email"],
    )
    return JsonResponse(
        {
            "id": str(conversation.id),
            "secret": secret,
            "websocket": f"/ws/chat/{conversation.id}/",
            "max_message_chars": settings.CHAT_MAX_MESSAGE_CHARS,
        },
        status=201,
    )
