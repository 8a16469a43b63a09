from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path, re_path

from chat.consumers import CustomerConsumer, UnknownRouteConsumer
from helpdesk.consumers import AgentConsumer

# The customer socket checks the Origin against its conversation's site (the widget runs on other websites);
# the console is only for the helpdesk's own pages.
websocket_urlpatterns = [
    path("ws/chat/<uuid:conversation_id>/", CustomerConsumer.as_asgi()),
    path("ws/console/", AllowedHostsOriginValidator(AgentConsumer.as_asgi())),
    re_path(r"^ws/", UnknownRouteConsumer.as_asgi()),
]
