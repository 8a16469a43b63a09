"""What an outage of a backend (PostgreSQL, Redis) looks like to clients: a retry, never a crash.

Django wraps every database driver's errors: OperationalError when the server cannot be reached or drops the
connection (and for transient conflicts such as serialization failures), InterfaceError when a connection Django
still holds was closed under it. Redis raises ConnectionError or TimeoutError (the cache, the rate limits, the
channel layer). All of them pass by themselves, so the client is told to come back rather than shown a failure:
HTTP answers 503 with Retry-After, sockets get an error frame and close with 4013 (try again later).
"""

import contextlib
import json
import logging
from collections.abc import Iterator

import redis.exceptions
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from chat.http import json_error

logger = logging.getLogger(__name__)

REDIS_UNAVAILABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
BACKEND_UNAVAILABLE = (OperationalError, InterfaceError, *REDIS_UNAVAILABLE)
# Seconds a client is asked to wait before trying again: long enough not to hammer a database that is restarting.
RETRY_AFTER_S = 5
# Addresses whose clients are programs reading JSON (the REST API, the widget's endpoints).
JSON_PREFIXES = ("/api/", "/v1/", "/widget/")
MESSAGE = "The service is briefly unavailable; please try again shortly."
# The websocket close code for "try again later". The standard's 1013 cannot be sent: daphne (autobahn) lets an
# application close with 1000 or 3000-4999 only, and turns anything else into 1011. 4013 mirrors it in the range
# kept for applications; the widget and the console reconnect with backoff on any code but 4403.
CLOSE_TRY_AGAIN_LATER = 4013
SOCKET_MESSAGE = "The chat service is unavailable; reconnecting."


def backend_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means a backend is down for now (a retry later will do), not a bug."""
    return isinstance(exc, BACKEND_UNAVAILABLE)


@contextlib.contextmanager
def redis_optional(what: str) -> Iterator[None]:
    """For uses of Redis that only save work or carry news (the database is the truth): while Redis is down, the
    step is skipped and logged instead of failing what it serves (a reply being streamed, a message being stored)."""
    try:
        yield
    except REDIS_UNAVAILABLE as exc:
        logger.warning("%s skipped: Redis is unavailable: %r", what, exc)


def unavailable_json() -> HttpResponse:
    """The API's and the widget's 503: the one error format, with Retry-After."""
    response = json_error(503, "service_unavailable", MESSAGE, retry_after=RETRY_AFTER_S)
    # The widget's pages are other sites: the answer must be readable there (nothing in it is secret), or the
    # widget could not tell an outage from a refusal. The site's own origin check needs the database.
    response["Access-Control-Allow-Origin"] = "*"
    return response


def unavailable_response(request: HttpRequest, exc: BaseException) -> HttpResponse:
    """503 for a request that failed because a backend is down: JSON for programs, a plain page for people."""
    logger.warning("%s %s: a backend is unavailable: %r", request.method, request.path, exc)
    if request.path.startswith(JSON_PREFIXES) or "text/html" not in request.headers.get("Accept", "text/html"):
        return unavailable_json()
    # Rendered without the request: context processors would read the user, from the database that is down.
    page = render_to_string("503.html", {"retry_after": RETRY_AFTER_S})
    response = HttpResponse(page, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_S)
    return response


class SocketOutageGuard:
    """ASGI middleware for websockets: a backend outage that escapes a consumer ends the socket with an error frame
    and 4013, instead of daphne's HTTP 500 at the handshake or 1011 after it.

    It covers what the consumers cannot catch themselves: channels' AuthMiddleware reads the session and the user
    from the database before any consumer runs, and a channel layer that loses Redis fails in the consumer's own
    receive loop. Clients reconnect on 4013 with backoff and resume by sequence number.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        state = {"accepted": False, "closed": False}

        async def tracked(message: dict) -> None:
            if message["type"] == "websocket.accept":
                state["accepted"] = True
            elif message["type"] == "websocket.close":
                state["closed"] = True
            await send(message)

        try:
            return await self.app(scope, receive, tracked)
        except Exception as exc:
            if scope["type"] != "websocket" or state["closed"] or not backend_unavailable(exc):
                raise
            logger.warning("socket %s: a backend is unavailable: %r", scope.get("path"), exc)
            frame = {"type": "error", "code": "service_unavailable", "message": SOCKET_MESSAGE}
            with contextlib.suppress(Exception):  # the client may be gone already
                if not state["accepted"]:
                    await send({"type": "websocket.accept"})
                await send({"type": "websocket.send", "text": json.dumps(frame)})
                await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN_LATER})
