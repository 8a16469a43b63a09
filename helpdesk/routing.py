from django.urls import path

from chat.socket_guards import HelpdeskOriginValidator
from helpdesk.consumers import AgentConsumer

# The console is only for the helpdesk's own pages: the Origin must be exactly the helpdesk's (scheme, host, port).
websocket_urlpatterns = [
    path("ws/console/", HelpdeskOriginValidator(AgentConsumer.as_asgi())),
]
