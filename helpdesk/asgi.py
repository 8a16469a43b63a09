"""ASGI entry point: HTTP through Django, websockets through Channels."""

import asyncio
import logging
import os
import threading

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")
django_asgi_app = get_asgi_application()  # sets Django up before anything imports models

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from chat import broadcast  # noqa: E402
from chat import routing as chat_routing  # noqa: E402
from chat import tasks as chat_tasks  # noqa: E402
from chat.dispatch import periodic_loop, periodic_start  # noqa: E402
from chat.email.smtp_receiver import smtp_receiver  # noqa: E402
from chat.metrics import reply_series_init  # noqa: E402
from chat.outages import SocketOutageGuard  # noqa: E402
from chat.socket_guards import WebsocketGuardMiddleware  # noqa: E402
from helpdesk import routing as helpdesk_routing  # noqa: E402
from helpdesk import tasks as helpdesk_tasks  # noqa: E402
from helpdesk.limits import BodySizeLimitMiddleware  # noqa: E402
from helpdesk.metrics import web_collectors_register  # noqa: E402
from knowledge.retrieval import retrieval_warm_up  # noqa: E402

# Customers' sockets (chat), the console (helpdesk), then the refusal of any other ws/ path.
websocket_urlpatterns = [
    *chat_routing.websocket_urlpatterns,
    *helpdesk_routing.websocket_urlpatterns,
    *chat_routing.websocket_fallback_urlpatterns,
]


class EventLoopBindMiddleware:
    """Tells `chat.broadcast` which loop serves this process, so threads send channel-layer events on it."""

    def __init__(self, app):
        self.app = app
        self.bound = None

    async def __call__(self, scope, receive, send):
        loop = asyncio.get_running_loop()
        if loop is not self.bound:
            broadcast.event_loop_bind(loop)
            self.bound = loop
        return await self.app(scope, receive, send)


application = EventLoopBindMiddleware(
    ProtocolTypeRouter(
        {
            # Bodies over the limit of their address are refused before Django reads them.
            "http": BodySizeLimitMiddleware(django_asgi_app),
            # Every socket's Host must be allowed and its address under its cap of sockets (chat.socket_guards);
            # origins are checked per route: site origins for customers (chat), the helpdesk's own for staff.
            # A database or Redis outage ends a socket with 4013 (try again later), never a 500 (chat.outages).
            "websocket": WebsocketGuardMiddleware(
                SocketOutageGuard(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
            ),
        }
    )
)

# This process serves /metrics: the queue's, the agents' and the business hours' gauges, read at each scrape.
web_collectors_register()


def embedded_email_receiver_start(port: int):
    """Receive reply emails in this process (embedded mode): a receiver elsewhere could not reach its open chats.
    The running receiver, or None when the port is taken (a second server, say): email in is then off here."""
    receiver = smtp_receiver("127.0.0.1", port)
    try:
        receiver.start()
    except (OSError, RuntimeError):
        logging.getLogger(__name__).warning("could not receive email on 127.0.0.1:%s", port, exc_info=True)
        return None
    return receiver


def _warm_up() -> None:
    try:
        retrieval_warm_up()
    except Exception:  # not migrated yet, say: retrieval loads on first use instead
        logging.getLogger(__name__).warning("knowledge warm-up skipped", exc_info=True)


# Embedded mode answers in this process: load the knowledge index and models now, beside serving; and run the
# conversations' lifecycle pass (idle auto-resolve, snoozes ending) here, as Celery beat does in production.
if settings.GENERATION_BACKEND == "inprocess":
    threading.Thread(target=_warm_up, name="knowledge-warm-up", daemon=True).start()
    reply_series_init()
    periodic_start(chat_tasks.conversations_lifecycle_task, settings.CONVERSATION_LIFECYCLE_INTERVAL)
    # And the agents' waiting-conversation emails (helpdesk.notifications), beside it on the same pool.
    threading.Thread(
        target=periodic_loop,
        args=(helpdesk_tasks.waiting_notify_task, settings.CONVERSATION_LIFECYCLE_INTERVAL),
        name="periodic-waiting-notify",
        daemon=True,
    ).start()
    if settings.EMAIL_RECEIVE_PORT:
        embedded_email_receiver_start(settings.EMAIL_RECEIVE_PORT)
