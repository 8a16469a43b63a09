"""The emails the helpdesk sends (a teammate's invitation, a password reset) through Django's SMTP backend to a real
SMTP server (aiosmtpd on a free local port), read back as the server received them."""

import email
import email.policy
import re
import socket

import pytest
from aiosmtpd.controller import Controller
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "pw-smtp-123"


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp(settings):
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    yield inbox
    controller.stop()


def _body(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def test_an_invitation_reaches_the_smtp_server_with_a_link_that_works(smtp):
    boss = get_user_model().objects.create_user("boss", password=PASSWORD)
    boss.groups.add(Group.objects.get(name="admin"))
    client = Client()
    assert client.login(username="boss", password=PASSWORD)
    response = client.post("/invite/", {"email": "nina@example.com", "role": "manager"})
    assert response.status_code == 302
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message["To"] == "nina@example.com"
    link = re.search(r"https?://\S+/invite/\S+/", _body(message)).group(0)
    page = Client().get(link.split("testserver", 1)[1])
    assert page.status_code == 200
    assert "nina" in page.content.decode()


def test_a_password_reset_reaches_the_smtp_server(smtp):
    get_user_model().objects.create_user("ann", email="ann@example.com", password=PASSWORD)
    response = Client().post("/accounts/password_reset/", {"email": "ann@example.com"})
    assert response.status_code == 302
    assert len(smtp.messages) == 1
    assert smtp.messages[0]["To"] == "ann@example.com"
    assert re.search(r"/accounts/reset/\S+/\S+/", _body(smtp.messages[0]))
