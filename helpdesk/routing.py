from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from helpdesk.consumers import AgentConsumer

# The console is only for the helpdesk's own pages: the Origin must be one of ALLOWED_HOSTS.
websocket_urlpatterns = [
    path("ws/console/", AllowedHostsOriginValidator(AgentConsumer.as_asgi())),
]
