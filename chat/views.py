"""HTTP endpoints of the customer side: the widget's API (`/widget/v1/...`) and the hosted chat page.

The widget runs on other companies' pages, so its endpoints are cross-origin: they answer CORS for the site's
allowed origins and refuse every other origin. They use no cookies, so there is nothing for CSRF to protect:
a conversation is opened with the public site key and then spoken to with its own secret.
"""

import json
import re
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.core.validators import validate_email
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from chat import availability, services
from chat.http import BadRequest, client_ip, json_error
from chat.identity import VerifiedIdentity, identity_from_request
from chat.metrics import RATE_LIMITED
from chat.models import Site
from chat.origins import origin_allowed
from chat.serializers import site_to_widget_dict

SITE_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")


def _cors(response: HttpResponse, origin: str | None) -> HttpResponse:
    if origin:
        response["Access-Control-Allow-Origin"] = origin
        response["Vary"] = "Origin"
    return response


def widget_endpoint(view: Callable) -> Callable:
    """Resolve the site key, enforce the site's allowed origins and answer CORS (preflight included)."""

    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, site_key: str) -> HttpResponse:
        origin = request.headers.get("Origin")
        # Keys are short URL-safe tokens: anything else is unknown without asking the database.
        well_formed = SITE_KEY_PATTERN.fullmatch(site_key) is not None
        site = (
            Site.objects.filter(key=site_key, is_active=True).prefetch_related("hours").first() if well_formed else None
        )
        if site is None:
            # Readable by any page (nothing secret in it), so the widget can say why instead of retrying.
            response = json_error(404, "unknown_site", "There is no chat for this site key.")
            response["Access-Control-Allow-Origin"] = "*"
            return response
        # Browsers send Origin on every cross-origin request; without one this is the helpdesk's own page or not
        # a browser (which could claim any origin anyway).
        own_origin = f"{request.scheme}://{request.get_host()}"
        if origin is not None and not origin_allowed(origin=origin, allowed=site.origins, own_origin=own_origin):
            # The refusal itself is readable by the page, so the widget can tell the customer.
            return _cors(json_error(403, "origin_not_allowed", "Chat is not enabled for this website."), origin)
        if request.method == "OPTIONS":
            response = HttpResponse(status=204)
            response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response["Access-Control-Allow-Headers"] = "Content-Type"
            response["Access-Control-Max-Age"] = "600"
            return _cors(response, origin)
        try:
            response = view(request, site)
        except BadRequest as exc:
            response = exc.response
        except RequestDataTooBig:  # over DATA_UPLOAD_MAX_MEMORY_SIZE: Django would answer an HTML 400
            response = json_error(413, "payload_too_large", "The request body is too large.")
        except services.ConversationRefused as exc:  # the site's limit of new conversations per address
            RATE_LIMITED.labels(channel="widget", limit="conversations").inc()
            response = json_error(429, exc.code, str(exc), retry_after=exc.retry_after)
        except services.MessageRejected as exc:
            response = json_error(400, exc.code, str(exc), field="content")
        return _cors(response, origin)

    return wrapper


def _body(request: HttpRequest) -> dict:
    if request.method != "POST":
        raise BadRequest(405, "method_not_allowed", "Use POST.")
    if len(request.body) > settings.CHAT_MAX_MESSAGE_CHARS * 4 + 4096:
        raise BadRequest(413, "payload_too_large", "The request body is too large.")
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, RecursionError):
        raise BadRequest(400, "invalid_json", "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise BadRequest(400, "invalid_body", "The body must be a JSON object.")
    return body


def _text(body: dict, key: str, limit: int) -> str:
    value = body.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(400, "invalid_field", f"{key} must be a string.", field=key)
    return value.strip()[:limit]


def _customer_fields(request: HttpRequest, site: Site, body: dict, email_required: bool) -> dict:
    """Name, email, language, region and page of a new conversation, checked against the site's pre-chat form."""
    name, email = _text(body, "name", 120), _text(body, "email", 254)
    if site.prechat_name == Site.Field.REQUIRED and not name:
        raise BadRequest(400, "field_required", "Please enter your name.", field="name")
    if (email_required or site.prechat_email == Site.Field.REQUIRED) and not email:
        raise BadRequest(400, "field_required", "Please enter your email address.", field="email")
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise BadRequest(400, "invalid_email", "The email address is not valid.", field="email") from None
    # Cut to scheme, host and path by the service (query and fragment are never stored); read generously here.
    page_url = _text(body, "page_url", 4000)
    # A geo header set by the proxy or CDN (e.g. CF-IPCountry) beats the browser's time zone.
    region = request.headers.get(settings.CHAT_REGION_HEADER, "") if settings.CHAT_REGION_HEADER else ""
    return {
        "customer_name": name,
        "customer_email": email,
        # The widget sends the browser's language; other clients get the site's default.
        "language": _text(body, "language", 16) or site.language,
        "region": region or _text(body, "region", 64),
        "page_url": page_url,
        "client_ip": client_ip(request),
    }


def _credentials(conversation, secret: str) -> JsonResponse:
    return JsonResponse(
        {
            "id": str(conversation.id),
            "secret": secret,
            "websocket": f"/ws/chat/{conversation.id}/",
            "max_message_chars": settings.CHAT_MAX_MESSAGE_CHARS,
        },
        status=201,
    )


@widget_endpoint
def site_config(request: HttpRequest, site: Site) -> JsonResponse:
    """What the widget needs to draw itself: the site's look and form, and who can answer right now."""
    if request.method != "GET":
        raise BadRequest(405, "method_not_allowed", "Use GET.")
    now = availability.availability(site)
    return JsonResponse(
        {
            "site": site_to_widget_dict(site),
            "availability": {
                "mode": now.mode,
                "open_now": now.open_now,
                "agents_online": now.agents_online,
                "bot_enabled": now.bot_enabled,
            },
            "limits": {
                "max_message_chars": settings.CHAT_MAX_MESSAGE_CHARS,
                "max_attachment_bytes": settings.ATTACHMENT_MAX_BYTES,
            },
        }
    )


def _verified_identity(site: Site, body: dict) -> VerifiedIdentity | None:
    """The signed-in user the body's "identity" proves (chat.identity), whose name and email then fill the form's;
    None for none or an unsigned or wrongly signed one, which is ignored entirely."""
    verified = identity_from_request(site, body.get("identity"))
    if verified is not None:
        body["name"] = verified.name or body.get("name")
        body["email"] = verified.email or body.get("email")
    return verified


@widget_endpoint
def conversation_create(request: HttpRequest, site: Site) -> JsonResponse:
    """Open a conversation from the pre-chat form. Returns its id and secret (the secret only this once). With a
    verified identity the conversation belongs to the site's user (their contact) and is marked verified."""
    body = _body(request)
    verified = _verified_identity(site, body)
    fields = _customer_fields(request, site, body, email_required=False)
    if verified is None:
        conversation, secret = services.conversation_start(site=site, **fields)
    else:
        conversation, secret = services.conversation_start_verified(site=site, identity=verified, **fields)
    return _credentials(conversation, secret)


@widget_endpoint
def message_leave(request: HttpRequest, site: Site) -> JsonResponse:
    """Leave a message when nobody can answer: it becomes a ticket, and the conversation waits for the team."""
    body = _body(request)
    verified = _verified_identity(site, body)
    fields = _customer_fields(request, site, body, email_required=True)
    conversation, secret = services.message_leave(site=site, content=body.get("content"), **fields)
    if verified is not None:
        contact = services.identity_contact(site=site, identity=verified)
        services.conversation_identity_verified(conversation_id=conversation.id, contact=contact)
    return _credentials(conversation, secret)


@require_GET
def chat_page(request: HttpRequest):
    """The hosted chat page: a site's widget, open, on a plain page of the helpdesk itself. ?site=<key> picks the
    site (a link that reopens a conversation names its own: chat.access); otherwise the first active one."""
    sites = Site.objects.filter(is_active=True)
    key = request.GET.get("site", "")
    site = (sites.filter(key=key).first() if SITE_KEY_PATTERN.fullmatch(key) else None) or sites.first()
    return render(
        request, "chat/page.html", {"company_name": settings.COMPANY_NAME, "site": site}, status=200 if site else 503
    )
