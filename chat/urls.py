from django.urls import path

from chat import views

app_name = "chat"

urlpatterns = [
    path("", views.chat_page, name="page"),
    path("chat/conversations", views.conversation_create, name="conversation-create"),
]
