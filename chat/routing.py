from django.urls import path, re_path

from chat.consumers import CustomerConsumer, UnknownRouteConsumer
from helpdesk.consumers import AgentConsumer

websocket_urlpatterns = [
    path("ws/chat/<uuid:conversation_id>/", CustomerConsumer.as_asgi()),
    path("ws/console/", AgentConsumer.as_asgi()),
    re_path(r"^ws/", UnknownRouteConsumer.as_asgi()),
]
