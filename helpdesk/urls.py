from django.contrib import admin
from django.urls import include, path

from helpdesk import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("", include("django_prometheus.urls")),
    path("", include("chat.urls")),
]
