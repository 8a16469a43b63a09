from django.contrib import admin
from django.urls import include, path, re_path

from chat.api.errors import api_not_found
from helpdesk import views
from helpdesk.api import api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("console/", views.console, name="console"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("", api.urls),
    # Anything else under the API's prefixes is a JSON 404, not an HTML page.
    re_path(r"^(?:api|v1)/(?P<rest>.*)$", api_not_found),
    path("", include("chat.urls")),
]
