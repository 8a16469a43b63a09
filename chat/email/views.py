"""The email endpoints: Mailgun's inbound webhook and the unsubscribe page."""

import hashlib
import hmac
import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from chat.email.inbound import inbound_from_mailgun, inbound_route
from chat.email.suppression import email_suppress, unsubscribe_token_email
from chat.http import json_error
from chat.outages import backend_unavailable, unavailable_json
from chat.strings import language_code

logger = logging.getLogger(__name__)

# Mailgun's signed timestamp may be this old (seconds); a token is accepted once within it.
MAILGUN_MAX_AGE_S = 300


def mailgun_signature_valid(*, timestamp: str, token: str, signature: str, now: float | None = None) -> str:
    """ "" if Mailgun signed this (HMAC-SHA256 of timestamp + token under EMAIL_INBOUND_SIGNING_KEY), recently, and
    the token was not seen before; else why not: bad_signature, stale or replayed."""
    key = settings.EMAIL_INBOUND_SIGNING_KEY
    if not key or not all(isinstance(v, str) and v for v in (timestamp, token, signature)) or len(token) > 200:
        return "bad_signature"
    expected = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        return "bad_signature"
    try:
        age = (time.time() if now is None else now) - int(timestamp)
    except ValueError:
        return "bad_signature"
    if abs(age) > MAILGUN_MAX_AGE_S:
        return "stale"
    if not cache.add(
        f"chat:email:mailgun-token:{hashlib.sha256(token.encode()).hexdigest()}", 1, 2 * MAILGUN_MAX_AGE_S
    ):
        return "replayed"
    return ""


@csrf_exempt  # called by Mailgun, which signs it instead; the only CSRF-exempt email endpoint but unsubscribe's
@require_POST
def mailgun_inbound(request: HttpRequest) -> HttpResponse:
    """Mailgun's inbound route (forward to this URL): 403 unless signed; 200 once handled, whatever became of it
    (Mailgun would retry anything else); 503 while a backend is down or a rate limit defers the email, so Mailgun
    retries later."""
    try:
        refused = mailgun_signature_valid(
            timestamp=request.POST.get("timestamp", ""),
            token=request.POST.get("token", ""),
            signature=request.POST.get("signature", ""),
        )
        if refused:
            logger.warning("inbound email webhook refused: %s", refused)
            return json_error(403, refused, "The request is not signed by the mail provider, or was seen before.")
        outcome = inbound_route(inbound_from_mailgun(request.POST, request.FILES))
    except Exception as exc:
        if backend_unavailable(exc):
            return unavailable_json()
        logger.exception("inbound email webhook failed")
        return JsonResponse({"status": "dropped"}, status=202)
    if outcome == "deferred":
        return json_error(503, "deferred", "Too many messages in this conversation for now; send it again later.")
    return JsonResponse({"status": outcome}, status=200)


@csrf_exempt  # RFC 8058: mail providers POST "List-Unsubscribe=One-Click" with no cookie; the signed token is the proof
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET: a page asking to confirm; POST (its button, or a mail provider's one click): no more email there."""
    address = unsubscribe_token_email(token)
    context = {
        "company": settings.COMPANY_NAME,
        "email": address,
        "lang": language_code(request.headers.get("Accept-Language", "en")[:16]),
        "state": "invalid" if address is None else "confirm",
    }
    if address is None:
        return render(request, "email/unsubscribe.html", context, status=404)
    if request.method == "POST":
        email_suppress(address=address)
        context["state"] = "done"
    return render(request, "email/unsubscribe.html", context)
