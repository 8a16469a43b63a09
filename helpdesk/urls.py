from django.contrib import admin
from django.urls import include, path

from helpdesk import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("", include("chat.urls")),
]
