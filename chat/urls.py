from django.urls import path

from chat import views

app_name = "chat"

urlpatterns = [
    path("", views.chat_page, name="page"),
    path("widget/v1/sites/<str:site_key>", views.site_config, name="site-config"),
    path("widget/v1/sites/<str:site_key>/conversations", views.conversation_create, name="conversation-create"),
    path("widget/v1/sites/<str:site_key>/messages", views.message_leave, name="message-leave"),
]
