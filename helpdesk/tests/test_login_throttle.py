"""Sign-in and password reset are throttled: failures per username and per address, resets per address and email."""

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.cache import cache
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "pw-agent-123"


@pytest.fixture(autouse=True)
def fresh_limits(settings):
    cache.clear()
    settings.LOGIN_FAILURES_PER_USERNAME = 5
    settings.LOGIN_FAILURES_PER_ADDRESS = 20
    yield
    cache.clear()


@pytest.fixture
def agent():
    return get_user_model().objects.create_user("ana", email="ana@example.com", password=PASSWORD, is_staff=True)


def sign_in(client: Client, username: str, password: str, path: str = "/accounts/login/", address="10.0.0.1"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


def test_after_five_failures_even_the_right_password_is_refused_with_429(agent):
    client = Client()
    for _ in range(5):
        assert sign_in(client, "ana", "wrong").status_code == 200  # the form again: wrong password
    response = sign_in(client, "ana", PASSWORD)
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_username_is_throttled_from_every_address(agent):
    for n in range(5):
        sign_in(Client(), "ana", "wrong", address=f"10.0.1.{n}")
    assert sign_in(Client(), "ANA ", PASSWORD, address="10.0.2.1").status_code == 429


def test_one_address_trying_many_usernames_is_throttled(agent):
    client = Client()
    for n in range(20):
        assert sign_in(client, f"user{n}", "wrong").status_code == 200
    assert sign_in(client, "ana", PASSWORD).status_code == 429
    # Another address is not held back by it.
    assert sign_in(Client(), "ana", PASSWORD, address="10.9.9.9").status_code == 302


def test_only_failures_count_and_a_success_clears_the_usernames_count(agent):
    for _ in range(4):
        sign_in(Client(), "ana", "wrong")
    assert sign_in(Client(), "ana", PASSWORD).status_code == 302
    for _ in range(4):
        assert sign_in(Client(), "ana", "wrong").status_code == 200
    for _ in range(10):
        assert sign_in(Client(), "ana", PASSWORD).status_code == 302


def test_the_admin_sign_in_is_throttled_too(agent):
    client = Client()
    for _ in range(5):
        assert sign_in(client, "ana", "wrong", path="/admin/login/").status_code == 200
    response = sign_in(client, "ana", PASSWORD, path="/admin/login/")
    assert response.status_code == 429 and "Too many failed sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


def reset(client: Client, email: str, address: str = "10.0.0.1"):
    return client.post("/accounts/password_reset/", {"email": email}, REMOTE_ADDR=address)


def test_password_reset_is_limited_per_address_with_429(agent, settings):
    settings.PASSWORD_RESET_PER_ADDRESS = 5
    client = Client()
    for n in range(5):
        assert reset(client, f"someone{n}@example.com").status_code == 302
    response = reset(client, "ana@example.com")
    assert response.status_code == 429 and "Too many password reset requests" in response.content.decode()
    assert mail.outbox == []


def test_password_reset_per_email_limit_answers_alike_for_known_and_unknown_addresses(agent, settings):
    settings.PASSWORD_RESET_PER_ADDRESS = 100
    settings.PASSWORD_RESET_PER_EMAIL = 3
    known = [reset(Client(), "ana@example.com", address=f"10.0.3.{n}") for n in range(6)]
    unknown = [reset(Client(), "nobody@example.com", address=f"10.0.4.{n}") for n in range(6)]
    # The same answer, request after request, whether or not an account has the address.
    assert [(r.status_code, r["Location"]) for r in known] == [(r.status_code, r["Location"]) for r in unknown]
    assert len(mail.outbox) == 3 and all(m.to == ["ana@example.com"] for m in mail.outbox)
