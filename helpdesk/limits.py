"""Request body limits at the ASGI edge, in front of Django.

Django reads a request's whole body before any view runs, and its own cap (DATA_UPLOAD_MAX_MEMORY_SIZE) is checked
only when a view asks for the body: by then the bytes are in memory and the error is easy to turn into a 500. Here
the limit is applied before Django sees the request: a declared Content-Length over the limit is refused at once,
without reading the body, and a body sent without one (chunked) is counted while it arrives and refused as soon as
it passes the limit. Either way the client gets 413 in the one JSON error format.

Also here: the refusal of addresses holding a NUL character (NullCharacterMiddleware), which PostgreSQL cannot take.
"""

import functools
import json
import re
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import JsonResponse
from django.views import defaults

Scope = dict
Message = dict
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@functools.lru_cache(maxsize=64)
def _prefix_pattern(prefix: str) -> re.Pattern:
    return re.compile("[^/]+".join(re.escape(part) for part in prefix.split("*")))


def body_limit(path: str) -> int:
    """The largest body, in bytes, accepted for `path`: the longest matching prefix of REQUEST_BODY_LIMITS, else
    REQUEST_BODY_LIMIT_DEFAULT. A `*` in a prefix stands for one path segment (an id)."""
    best, limit = -1, settings.REQUEST_BODY_LIMIT_DEFAULT
    for prefix, prefix_limit in settings.REQUEST_BODY_LIMITS.items():
        matches = _prefix_pattern(prefix).match(path) if "*" in prefix else path.startswith(prefix)
        if matches and len(prefix) > best:
            best, limit = len(prefix), prefix_limit
    return limit


def refusal_body(limit: int) -> bytes:
    """The 413 answer's JSON body."""
    message = f"The request body is larger than this address accepts ({limit} bytes)."
    return json.dumps({"error": {"code": "payload_too_large", "message": message, "limit": limit}}).encode()


async def _refuse(send: Send, limit: int) -> None:
    body = refusal_body(limit)
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            # The client may still be sending: tell it this connection will not read the rest.
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    """The declared length; -1 when the header is there but not a number (or not one number)."""
    values = [value for name, value in scope.get("headers", []) if name == b"content-length"]
    if not values:
        return None
    if len(set(values)) != 1 or not values[0].strip().isdigit():
        return -1
    return int(values[0])


class BodySizeLimitMiddleware:
    """Wraps the HTTP application: refuses bodies over `body_limit(path)` with 413 before the application reads
    them. Other scope types (websockets, lifespan) pass through untouched."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = body_limit(scope.get("path", ""))
        declared = _content_length(scope)
        if declared == -1:
            body = json.dumps({"error": {"code": "invalid_request", "message": "Invalid Content-Length."}}).encode()
            await send(
                {"type": "http.response.start", "status": 400, "headers": [(b"content-type", b"application/json")]}
            )
            return await send({"type": "http.response.body", "body": body})
        if declared is not None and declared > limit:
            return await _refuse(send, limit)

        received = 0
        refused = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Stop here: the application is told the client left (Django then abandons the request), and
                    # the client gets the refusal unless the application already began its answer.
                    refused = True
                    if not started:
                        await _refuse(send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused and not started:
                return  # the refusal is the answer; nothing the application says after it is sent
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        return await self.app(scope, limited_receive, guarded_send)


class NullCharacterMiddleware:
    """Refuses (400) a request whose path or query string holds a NUL character, encoded (%00) or not.

    No address of the helpdesk has one, and PostgreSQL can neither store nor compare one: a NUL in a site key or a
    filter would reach a query and fail it with a 500. Refused here, once, for every view.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(self.get_response):
            markcoroutinefunction(self)

    @staticmethod
    def _refusal(request):
        query = request.META.get("QUERY_STRING", "")
        if "\x00" not in request.path and "\x00" not in query and "%00" not in query:
            return None
        return JsonResponse(
            {"error": {"code": "invalid_request", "message": "The address holds a NUL character."}}, status=400
        )

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self._refusal(request) or self.get_response(request)

    async def __acall__(self, request):
        return self._refusal(request) or await self.get_response(request)


def bad_request(request, exception=None):
    """handler400: a body over Django's own cap (DATA_UPLOAD_MAX_MEMORY_SIZE, DATA_UPLOAD_MAX_NUMBER_FIELDS), which
    Django reports as a "suspicious" 400 wherever it is read (a view, the CSRF middleware reading a form), is the
    413 of the JSON error format; any other bad request is Django's own 400 page."""
    if isinstance(exception, (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent)):
        message = "The request body is too large."
        return JsonResponse({"error": {"code": "payload_too_large", "message": message}}, status=413)
    return defaults.bad_request(request, exception)
