"""The HTTP edge on the real server processes (daphne and a Celery worker, production settings): oversized bodies are
refused with 413 and the server stays up, and a realistic run never writes a secret into any log."""

import asyncio
import json
import re
import secrets
import time

import httpx
import pytest
from django.contrib.auth import get_user_model

from chat.api.keys import api_key_create
from chat.models import Conversation, Message
from helpdesk.models import Webhook, WebhookDelivery
from tests import stack
from tests.client import ask, conversation_open
from tests.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

THREE_MB = 3 * 1024 * 1024


def test_a_3_mb_post_gets_413_before_it_is_read_and_the_server_stays_up(production_server, settings):
    settings.API_RATE_LIMIT_PER_IP = 10_000
    _key, raw = api_key_create(name="big", scopes=["chat"])
    headers = {"Authorization": f"Bearer {raw}", "Content-Type": "application/json"}
    body = json.dumps({"session_id": "s1", "user_input": "x" * THREE_MB}).encode()
    with httpx.Client(base_url=production_server, timeout=30) as client:
        for path in ("/api/v1/chat", "/v1/chat/completions", "/widget/v1/sites/any/conversations", "/accounts/login/"):
            answer = client.post(path, content=body, headers=headers)
            assert answer.status_code == 413, (path, answer.status_code, answer.text[:200])
            assert answer.json()["error"]["code"] == "payload_too_large"

        def chunks():  # no Content-Length: counted as it arrives
            for _ in range(48):
                yield b"x" * 65536

        answer = client.post("/api/v1/chat", content=chunks(), headers=headers)
        assert answer.status_code == 413 and answer.json()["error"]["code"] == "payload_too_large"
        assert client.get("/healthz").status_code == 200
    assert not Conversation.objects.exists()


def _sign_in(base_url: str, username: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=30, follow_redirects=False)
    page = client.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    client.post(
        "/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base_url}/accounts/login/"},
    )
    return client


@pytest.fixture
def secret_env(production_env) -> dict:
    """The production environment with a known SECRET_KEY and METRICS_TOKEN, logging everything (DEBUG)."""
    return {
        **production_env,
        "SECRET_KEY": "sk-" + secrets.token_urlsafe(40),
        "METRICS_TOKEN": "mt-" + secrets.token_urlsafe(24),
        "LOG_LEVEL": "DEBUG",
        "API_RATE_LIMIT_PER_IP": "10000",
    }


async def test_no_secret_of_a_full_run_reaches_any_log(secret_env, celery_worker_process, logs_dir, site):
    from channels.db import database_sync_to_async

    web, base = stack.start_web(secret_env, logs_dir, name="daphne-secrets")
    receiver = WebhookReceiver(then=200)
    try:
        password, wrong_password = "pw-" + secrets.token_urlsafe(16), "pw-" + secrets.token_urlsafe(16)
        wrong_key = "hd_" + secrets.token_urlsafe(30)
        page_token = "reset-" + secrets.token_urlsafe(16)

        def setup():
            get_user_model().objects.create_superuser("sam", "sam@example.com", password)
            webhook = Webhook.objects.create(name="CRM", url=receiver.url)
            _key, raw = api_key_create(name="shop", scopes=["chat", "read"])
            return webhook, raw

        webhook, api_key = await database_sync_to_async(setup)()
        used = {
            "SECRET_KEY": secret_env["SECRET_KEY"],
            "METRICS_TOKEN": secret_env["METRICS_TOKEN"],
            "user password": password,
            "wrong password": wrong_password,
            "API key": api_key,
            "wrong API key": wrong_key,
            "webhook secret": webhook.secret,
            "page token": page_token,
        }

        # A customer: the widget opens a conversation (from a page whose URL carries a token) and chats over the
        # socket with its secret; the worker answers with the real model.
        page_url = f"{base}/account?token={page_token}#access_token={page_token}"
        conversation = conversation_open(base, site.key, name="Ann", page_url=page_url)
        used["conversation secret"] = conversation["secret"]
        exchange = await ask(base, conversation, "How long does shipping take?")
        assert exchange.frames[-1]["type"] in ("done", "withdrawn"), exchange.frames[-3:]

        # An integration: the API with its key (a chat turn, a read), and a wrong key.
        async with httpx.AsyncClient(base_url=base, timeout=180) as client:
            auth = {"Authorization": f"Bearer {api_key}"}
            turn = await client.post("/api/v1/chat", json={"session_id": "s-1", "user_input": "Hello"}, headers=auth)
            assert turn.status_code == 200, turn.text
            assert (await client.get("/api/v1/conversations", headers=auth)).status_code == 200
            bad = await client.get("/api/v1/conversations", headers={"Authorization": f"Bearer {wrong_key}"})
            assert bad.status_code == 401
            # Prometheus with the metrics token.
            scrape = await client.get("/metrics", headers={"Authorization": f"Bearer {used['METRICS_TOKEN']}"})
            assert scrape.status_code == 200
            # A customer leaving a message: a handoff, whose webhook the worker signs with the webhook's secret.
            left = await client.post(
                f"/widget/v1/sites/{site.key}/messages",
                json={"name": "Bo", "email": "bo@example.com", "content": "Call me back"},
                headers={"Origin": base},
            )
            assert left.status_code == 201, left.text
            used["second conversation secret"] = left.json()["secret"]

        # Staff: a failed sign-in, then a good one, and the console.
        _sign_in(base, "sam", wrong_password).close()
        staff = _sign_in(base, "sam", password)
        assert staff.get("/console/").status_code == 200
        staff.close()

        receiver.wait_for(1, timeout=60)

        def delivered():
            return WebhookDelivery.objects.filter(webhook=webhook, status="succeeded").exists()

        deadline = time.monotonic() + 30
        while not await database_sync_to_async(delivered)() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        stored = await database_sync_to_async(lambda: Conversation.objects.get(pk=conversation["id"]).page_url)()
        assert page_token not in stored
        assert await database_sync_to_async(Message.objects.exists)()
    finally:
        receiver.close()
        web.stop()

    logs = sorted(path for path in logs_dir.rglob("*") if path.is_file())
    assert any(path.name == "daphne-secrets.log" for path in logs) and any("celery" in path.name for path in logs)
    text = {path.name: path.read_text(errors="replace") for path in logs}
    assert sum(len(t) for t in text.values()) > 1000  # the logs were written (the servers ran at DEBUG)
    leaks = [(what, name) for what, value in used.items() for name, content in text.items() if value in content]
    assert leaks == []
