import json

import pytest
from django.test import Client

from chat.models import Conversation

pytestmark = pytest.mark.django_db


def post(client, body, **extra):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post("/chat/conversations", data=data, content_type="application/json", **extra)


def test_chat_page_sets_the_csrf_cookie(client):
    response = client.get("/")
    assert response.status_code == 200 and "csrftoken" in response.cookies
    assert b"chat.js" in response.content


def test_opening_a_conversation_returns_its_id_and_secret_once(client):
    response = post(client, {"name": "Ann", "email": "ann@example.com", "language": "zh-CN", "region": "Asia/Shanghai"})
    assert response.status_code == 201
    data = response.json()
    conversation = Conversation.objects.get(pk=data["id"])
    assert data["secret"] and data["secret"] not in conversation.secret_hash
    assert (conversation.customer_name, conversation.language, conversation.region) == ("Ann", "zh-CN", "Asia/Shanghai")
    assert data["websocket"] == f"/ws/chat/{conversation.id}/"


def test_language_falls_back_to_the_browser(client):
    response = post(client, {}, HTTP_ACCEPT_LANGUAGE="zh-Hans,zh;q=0.9")
    assert Conversation.objects.get(pk=response.json()["id"]).language == "zh-hans"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("{oops", 400, "invalid_json"),
        ("[]", 400, "invalid_body"),
        ({"name": 5}, 400, "invalid_field"),
        ({"email": "not-an-email"}, 400, "invalid_email"),
        ({"name": "x" * 5000}, 413, "body_too_large"),
    ],
)
def test_bad_requests_get_a_clear_4xx_and_create_nothing(client, body, status, code):
    response = post(client, body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert not Conversation.objects.exists()


def test_csrf_is_enforced():
    client = Client(enforce_csrf_checks=True)
    assert post(client, {}).status_code == 403
    client.get("/")
    token = client.cookies["csrftoken"].value
    assert post(client, {}, HTTP_X_CSRFTOKEN=token).status_code == 201


def test_get_is_not_allowed(client):
    assert client.get("/chat/conversations").status_code == 405
