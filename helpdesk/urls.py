from django.contrib import admin
from django.urls import include, path, re_path

from chat.api.errors import api_not_found
from helpdesk import (
    attachment_views,
    auth_views,
    console_views,
    invitation_views,
    notification_views,
    playground,
    report_views,
    views,
)
from helpdesk.api import api

# A failure outside any view (a middleware's query while PostgreSQL is down) still answers 503, not 500.
handler500 = "helpdesk.views.server_error"
# A body over Django's own cap, read by any view or middleware, answers 413 rather than a "suspicious" 400.
handler400 = "helpdesk.limits.bad_request"

urlpatterns = [
    # Sign-in and password reset are throttled (helpdesk.login_throttle): these come before the stock views.
    path("admin/login/", auth_views.admin_login),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/password_reset/", auth_views.PasswordResetView.as_view(), name="password_reset"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("console/", views.console, name="console"),
    path("console/search/", console_views.console_search, name="console-search"),
    path("console/customers/", console_views.customer_profile, name="console-customer"),
    path(
        "console/conversations/<uuid:conversation_id>/attachments",
        attachment_views.console_attachment_upload,
        name="console-attachment-upload",
    ),
    path("console/notifications/", notification_views.notification_settings, name="console-notifications"),
    path("playground/", playground.playground, name="playground"),
    path("playground/generate", playground.playground_generate, name="playground-generate"),
    path("playground/prompt", playground.playground_prompt_publish, name="playground-prompt"),
    path("playground/retrieval", playground.playground_retrieval, name="playground-retrieval"),
    path("console/gaps/", views.knowledge_gaps, name="knowledge-gaps"),
    path("console/gaps/<uuid:conversation_id>/draft", views.knowledge_gap_draft, name="knowledge-gap-draft"),
    path("reports/", report_views.report_page, name="reports"),
    path("reports/conversations/", report_views.report_conversations, name="reports-conversations"),
    path("reports/conversations/<uuid:conversation_id>/", report_views.report_transcript, name="reports-transcript"),
    path("reports/export.csv", report_views.report_export, name="reports-export"),
    path("invite/", invitation_views.invite, name="invite"),
    path("invite/<str:token>/", invitation_views.invite_accept, name="invite-accept"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    path("email/", include("chat.email.urls")),
    path("", include("chat.urls")),
    path("", api.urls),
    # Anything else under the API's prefixes is a JSON 404, not an HTML page.
    re_path(r"^(?:api|v1)/(?P<rest>.*)$", api_not_found),
]
