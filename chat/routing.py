from django.urls import path, re_path

from chat.consumers import CustomerConsumer, UnknownRouteConsumer

# The customer socket checks the Origin against its conversation's site (the widget runs on other websites).
websocket_urlpatterns = [
    path("ws/chat/<uuid:conversation_id>/", CustomerConsumer.as_asgi()),
]

# Last of all routes (helpdesk/asgi.py puts it there): any other `ws/` path is refused at the handshake.
websocket_fallback_urlpatterns = [
    re_path(r"^ws/", UnknownRouteConsumer.as_asgi()),
]
