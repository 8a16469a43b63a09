from django.urls import path

from chat.email import views

app_name = "chat-email"

urlpatterns = [
    path("inbound/mailgun", views.mailgun_inbound, name="inbound-mailgun"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
