"""ASGI entry point: HTTP through Django, websockets through Channels."""

import asyncio
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")
django_asgi_app = get_asgi_application()  # sets Django up before anything imports models

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from chat import broadcast  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402


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
            "http": django_asgi_app,
            # Origins are checked per route (chat.routing): site origins for customers, ALLOWED_HOSTS for staff.
            "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
        }
    )
)
