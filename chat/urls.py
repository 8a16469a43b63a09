from django.urls import path

from chat import attachment_views, identity_views, views

app_name = "chat"

urlpatterns = [
    path("", views.chat_page, name="page"),
    path("widget/v1/sites/<str:site_key>", views.site_config, name="site-config"),
    path("widget/v1/sites/<str:site_key>/conversations", views.conversation_create, name="conversation-create"),
    path("widget/v1/sites/<str:site_key>/messages", views.message_leave, name="message-leave"),
    path("widget/v1/sites/<str:site_key>/identity", identity_views.identity_check, name="identity"),
    path(
        "widget/v1/conversations/<uuid:conversation_id>/attachments",
        attachment_views.attachment_upload,
        name="attachment-upload",
    ),
    path(
        "widget/v1/conversations/<uuid:conversation_id>/attachments/<uuid:attachment_id>",
        attachment_views.attachment_download,
        name="attachment",
    ),
]
