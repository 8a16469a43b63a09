"""The embeddable widget in real Chromium, on plain HTML pages served from other origins (other ports) that
embed it with one script tag, against daphne + a Celery worker + the real model answering from the demo knowledge
base. Screenshots go to artifacts/."""

import asyncio
import json
import re

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from websockets.asyncio.client import connect

from chat import services
from chat.models import Conversation, Message, Rating
from helpdesk.models import Ticket
from tests import stack
from tests.e2e.widget import (
    HostPages,
    customer_page,
    say,
    start_chat,
    stored,
    stored_conversation_id,
    stored_credentials,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


async def bot_text_samples(page, timeout_s: float = 90) -> list[str]:
    """Sample the newest bot bubble's text while it streams, until the reply is done."""
    samples: list[str] = []
    await page.wait_for_selector(".hd-msg--bot", timeout=timeout_s * 1000)
    bubble = page.locator(".hd-msg--bot").last
    for _ in range(int(timeout_s / 0.02)):
        classes, text = await bubble.evaluate("el => [el.className, el.querySelector('.hd-body').textContent]")
        if not samples or samples[-1] != text:
            samples.append(text)
        if "hd-msg--streaming" not in classes:
            return samples
        await page.wait_for_timeout(20)
    raise AssertionError(f"the reply did not finish; last text: {samples[-1:]}")


async def rendered_seqs(page) -> list[int]:
    return [int(s) for s in await page.locator(".hd-msg[data-seq]").evaluate_all("els => els.map(e => e.dataset.seq)")]


async def test_a_customer_asks_on_a_third_party_page_sees_the_reply_stream_and_keeps_it(
    browser, production_server, shop, host_pages, artifacts_dir
):
    context, page, problems = await customer_page(browser)
    await page.goto(host_pages.page(production_server, shop.key))
    await start_chat(page, name="Ann", email="ann@example.com")
    await say(page, "Can I change the delivery address?")
    await page.wait_for_selector(".hd-msg--customer:has-text('delivery address')")

    samples = await bot_text_samples(page)
    final = samples[-1]
    intermediate = [s for s in samples[:-1] if s.strip()]
    # The reply appeared progressively, a sentence at a time (the fact guard checks each before it is shown): a reply
    # of two sentences or more shows a state with text before the final one. The greedy answer is usually several
    # sentences, but it depends on the prompt's time and on what the llama.cpp instance cached before: once (in CI)
    # it was one sentence, which is rightly shown whole (tests/test_end_to_end.py counts the socket's pieces alike).
    sentences = len(re.findall(r"[.!?](?:\s|$)", final.strip()))
    assert sentences >= 1 and len(intermediate) >= min(1, sentences - 1), samples
    assert all(s != final and final.startswith(s.strip()[:20]) for s in intermediate), samples
    await page.wait_for_selector(".hd-typing", state="hidden")  # the typing indicator stopped
    await page.screenshot(path=str(artifacts_dir / "widget-en.png"))

    conversation, messages = await stored()
    assert (conversation.customer_name, conversation.customer_email) == ("Ann", "ann@example.com")
    assert conversation.site_id == shop.pk and conversation.page_url.startswith(host_pages.origin)
    assert (conversation.language, conversation.region) == ("en", "Europe/Paris")  # {{user_region}} of the prompt
    assert [m.role for m in messages] == ["customer", "bot"] and messages[1].state == Message.State.COMPLETE
    assert messages[1].grounding == "generative" and messages[1].sources  # written from the knowledge base

    # The host page's CSS does not reach into the widget.
    bubble_font, bubble_color = await page.locator(".hd-msg--bot .hd-body").first.evaluate(
        "el => [getComputedStyle(el).fontFamily, getComputedStyle(el).color]"
    )
    assert "serif" not in bubble_font.replace("sans-serif", "") and bubble_color != "rgb(255, 165, 0)"

    # A reload mid-conversation brings the whole history back, once.
    await page.reload()
    await page.wait_for_selector(".hd-msg--bot:not(.hd-msg--streaming)")
    assert await rendered_seqs(page) == [m.seq for m in messages]
    assert (await page.locator(".hd-msg--bot .hd-body").text_content()).strip() == final.strip()
    assert (await page.locator(".hd-msg--customer .hd-body").text_content()).strip() == messages[0].content
    assert problems == []
    await context.close()


@pytest.fixture
def restartable_server(production_env, celery_worker_process, logs_dir):
    """A daphne of its own (the test kills it) on a fixed port, so a restart comes back at the same address."""
    port = stack.free_port()
    servers = [stack.start_web(production_env, logs_dir, port=port, name="daphne-restart")[0]]

    def restart() -> None:
        servers.append(stack.start_web(production_env, logs_dir, port=port, name="daphne-restarted")[0])

    yield f"http://127.0.0.1:{port}", servers, restart
    for server in servers:
        server.stop()


async def test_the_widget_reconnects_after_a_server_restart_and_shows_every_message_once(
    browser, restartable_server, shop, host_pages
):
    base_url, servers, restart = restartable_server
    context, page, problems = await customer_page(browser)
    await page.goto(host_pages.page(base_url, shop.key))
    await start_chat(page)
    await say(page, "Can I change the delivery address?")  # a long answer from the knowledge base
    # Kill the server while the reply streams: the worker goes on, the socket dies.
    await page.wait_for_selector(".hd-msg--bot.hd-msg--streaming")
    servers[0].popen.kill()
    servers[0].popen.wait()
    await page.wait_for_selector(".hd-status:has-text('Reconnecting')", timeout=15_000)

    # Written while the server is down: kept in the outbox, shown as pending, sent after the reconnect.
    await say(page, "How long does standard shipping take?")
    await page.wait_for_selector(".hd-msg--pending")
    await asyncio.sleep(1)
    await asyncio.get_running_loop().run_in_executor(None, restart)

    conversation_id = await stored_conversation_id(page)
    for _ in range(600):
        _conversation, messages = await stored(conversation_id)
        replies = [m for m in messages if m.role == "bot" and m.state != Message.State.STREAMING]
        if len(replies) == 2:
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"two replies were not completed: {messages}")
    await page.wait_for_function(
        "() => document.querySelector('#helpdesk-widget').shadowRoot"
        ".querySelectorAll('.hd-msg--bot:not(.hd-msg--streaming)').length === 2",
        timeout=30_000,
    )
    assert await page.locator(".hd-msg--pending").count() == 0
    assert await rendered_seqs(page) == [m.seq for m in messages]  # every message once, in order, no gaps
    customer_texts = [t.strip() for t in await page.locator(".hd-msg--customer .hd-body").all_text_contents()]
    assert customer_texts == ["Can I change the delivery address?", "How long does standard shipping take?"]
    assert [m.content for m in messages if m.role == "customer"] == customer_texts  # stored once each
    for bubble, message in zip(await page.locator(".hd-msg--bot .hd-body").all_text_contents(), replies, strict=True):
        assert bubble.strip() == message.content.strip()
    assert problems == []
    await context.close()


async def test_markup_in_messages_renders_inert(browser, production_server, shop, host_pages):
    context, page, problems = await customer_page(browser)
    await page.goto(host_pages.page(production_server, shop.key))
    await start_chat(page)
    attack = "<img src=x onerror=alert(1)> and [click me](javascript:alert(2))"
    await say(page, attack)
    await page.wait_for_selector(".hd-msg--customer:has-text('onerror')")

    # An agent's reply in markdown, with the same tricks among real links, a list and code.
    conversation_id = await stored_conversation_id(page)
    await agent_says(
        conversation_id,
        "Here you go:\n\n- see [the help centre](https://help.example.com/reset)\n- or [this](javascript:alert(3))\n"
        "- <img src=x onerror=alert(4)> <script>alert(5)</script>\n\n"
        "Run `reset --all` then:\n\n```\nrm -rf <b>x</b>\n```",
    )
    agent_bubble = page.locator(".hd-msg--agent .hd-body")
    await agent_bubble.wait_for()
    await page.wait_for_timeout(500)  # give any injected handler the chance to fire

    assert await page.locator("#helpdesk-widget img, #helpdesk-widget script:not([src])").count() == 0
    hrefs = await page.locator(".hd-msg a").evaluate_all("els => els.map(a => [a.href, a.target, a.rel])")
    assert hrefs == [["https://help.example.com/reset", "_blank", "noopener noreferrer nofollow"]]
    text = await agent_bubble.text_content()
    assert "<img src=x onerror=alert(4)>" in text and "<script>alert(5)</script>" in text
    assert await agent_bubble.locator("li").count() == 3
    assert await agent_bubble.locator("code").first.text_content() == "reset --all"
    assert "rm -rf <b>x</b>" in await agent_bubble.locator("pre").text_content()
    customer_text = await page.locator(".hd-msg--customer .hd-body").text_content()
    assert customer_text.strip() == attack
    assert problems == []  # no alert dialog, no script error
    await context.close()


@database_sync_to_async
def agent_says(conversation_id: str, text: str) -> None:
    agent = get_user_model().objects.create_user("zoe", password="zoe-pass-123")
    services.conversation_hand_off(conversation_id=conversation_id, reason="customer_request")
    services.conversation_assign(conversation_id=conversation_id, agent=agent, expected_status="queued")
    services.message_post_agent(conversation_id=conversation_id, agent=agent, content=text)


async def test_a_page_on_an_origin_not_on_the_list_cannot_open_a_conversation(
    browser, production_server, shop, host_pages, tmp_path
):
    stranger = HostPages(tmp_path / "stranger")
    (tmp_path / "stranger").mkdir()
    try:
        context, page, _problems = await customer_page(browser)
        await page.goto(stranger.page(production_server, shop.key))
        await page.click(".hd-launcher")
        await page.wait_for_selector(".hd-panel:has-text('not available')")
        assert await page.locator(".hd-prechat:visible").count() == 0
        # Not by hand either. A JSON POST fails its CORS preflight; a "simple" POST, which browsers send without
        # asking, reaches the server and is refused there. So does an existing conversation's socket.
        results = await page.evaluate(
            """async ([base, key]) => {
                const url = `${base}/widget/v1/sites/${key}/conversations`;
                const json = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                    body: "{}"}).then(r => r.status, e => "blocked");
                const simple = await fetch(url, {method: "POST", body: "{}"}).then(r => r.status, e => "blocked");
                return [json, simple];
            }""",
            [production_server, shop.key],
        )
        assert results == ["blocked", 403]
        assert not await database_sync_to_async(Conversation.objects.exists)()
        conversation, _secret = await database_sync_to_async(services.conversation_start)(site=shop)
        opened = await page.evaluate(
            """url => new Promise(done => { const ws = new WebSocket(url);
                ws.onopen = () => done(true); ws.onclose = () => done(false); })""",
            production_server.replace("http", "ws", 1) + f"/ws/chat/{conversation.id}/",
        )
        assert opened is False
        await context.close()
    finally:
        stranger.close()


async def test_rating_after_resolve_is_stored_once_in_a_chinese_widget(
    browser, production_server, shop, host_pages, artifacts_dir
):
    context, page, problems = await customer_page(browser, locale="zh-CN", timezone_id="Asia/Shanghai")
    await page.goto(host_pages.page(production_server, shop.key))
    assert "对话" in await page.locator(".hd-launcher").get_attribute("aria-label")
    await start_chat(page, name="李雷")
    await say(page, "你好,我的订单什么时候发货?")
    await bot_text_samples(page)
    await page.screenshot(path=str(artifacts_dir / "widget-zh.png"))

    # The customer ends the chat; the conversation is resolved and the rating form appears.
    await page.click(".hd-end")
    await page.locator(".hd-panel button:has-text('结束')").last.click()
    await page.wait_for_selector(".hd-rating:visible")
    conversation_id = await stored_conversation_id(page)
    conversation, messages = await stored(conversation_id)
    assert conversation.status == Conversation.Status.RESOLVED
    assert messages[-1].role == "system" and "结束" in messages[-1].content  # in the customer's language
    await page.locator(".hd-rating label").nth(3).click()  # four stars
    await page.fill(".hd-rating textarea[name=comment]", "很快,谢谢")
    await page.click(".hd-rating button[type=submit]")
    await page.wait_for_selector(".hd-thanks:visible")
    await page.screenshot(path=str(artifacts_dir / "widget-zh-rated.png"))
    rating = await database_sync_to_async(Rating.objects.get)(conversation_id=conversation_id)
    assert (rating.score, rating.comment) == (4, "很快,谢谢")

    # A second attempt is refused (the widget no longer offers it; a hand-made frame is refused by the server).
    await page.reload()
    await page.wait_for_selector(".hd-msg--system")
    assert await page.locator(".hd-rating:visible").count() == 0
    secret = (await stored_credentials(page))["secret"]
    ws_url = production_server.replace("http", "ws", 1) + f"/ws/chat/{conversation_id}/"
    async with connect(ws_url, origin=host_pages.origin) as ws:
        await ws.send(json.dumps({"type": "hello", "secret": secret}))
        while json.loads(await ws.recv(10))["type"] != "ready":
            pass
        await ws.send(json.dumps({"type": "rate", "score": 1, "comment": "changed my mind"}))
        frame = json.loads(await ws.recv(10))
        while frame["type"] == "message":
            frame = json.loads(await ws.recv(10))
    assert frame["type"] == "error" and frame["code"] == "already_rated"
    assert await database_sync_to_async(Rating.objects.filter(conversation_id=conversation_id).count)() == 1
    assert problems == []
    await context.close()


async def test_nobody_available_offers_leave_a_message_which_becomes_a_ticket(
    browser, production_server, shop, host_pages
):
    shop.bot_enabled = False  # and no agent is online
    await database_sync_to_async(shop.save)()
    context, page, problems = await customer_page(browser)
    await page.goto(host_pages.page(production_server, shop.key))
    await page.click(".hd-launcher")
    await page.wait_for_selector(".hd-offline:visible")
    await page.fill(".hd-offline input[name=name]", "Bo")
    await page.fill(".hd-offline input[name=email]", "bo@example.com")
    await page.fill(".hd-offline textarea[name=content]", "Please call me back about invoice 42.")
    await page.click(".hd-offline button[type=submit]")
    await page.wait_for_selector(".hd-msg--system:has-text('bo@example.com')")
    conversation, messages = await stored()
    assert conversation.status == Conversation.Status.QUEUED
    assert messages[0].content == "Please call me back about invoice 42."
    ticket = await database_sync_to_async(Ticket.objects.get)(conversation=conversation)
    assert "invoice 42" in ticket.subject
    assert problems == []
    await context.close()


async def test_the_widget_works_from_the_keyboard(browser, production_server, shop, host_pages):
    context, page, problems = await customer_page(browser)
    await page.goto(host_pages.page(production_server, shop.key))
    launcher = page.locator(".hd-launcher")
    await launcher.wait_for()
    assert await launcher.get_attribute("aria-expanded") == "false"
    for _ in range(5):  # Tab through the host page until the launcher has focus
        await page.keyboard.press("Tab")
        if await launcher.evaluate("el => el.getRootNode().activeElement === el"):
            break
    else:
        raise AssertionError("the launcher is not reachable with Tab")
    await page.keyboard.press("Enter")
    assert await launcher.get_attribute("aria-expanded") == "true"
    assert await page.locator("[role=dialog]").get_attribute("aria-labelledby")
    # Focus moved into the panel, on the form's first field; the form is filled and sent from the keyboard.
    name = page.locator(".hd-prechat input[name=name]")
    await page.wait_for_function(
        "() => document.querySelector('#helpdesk-widget').shadowRoot.activeElement?.name === 'name'"
    )
    await page.keyboard.type("Kim")
    await page.keyboard.press("Tab")
    await page.keyboard.type("kim@example.com")
    await page.keyboard.press("Enter")
    await page.wait_for_selector(".hd-input:visible")
    assert await name.count() == 0 or not await name.is_visible()
    # Escape closes the panel and gives focus back to the launcher.
    await page.keyboard.press("Escape")
    await page.wait_for_selector(".hd-panel", state="hidden")
    assert await launcher.get_attribute("aria-expanded") == "false"
    assert await launcher.evaluate("el => el.getRootNode().activeElement === el")
    conversation, _messages = await stored()
    assert (conversation.customer_name, conversation.customer_email) == ("Kim", "kim@example.com")
    assert problems == []
    await context.close()


async def test_a_rate_limited_customer_is_told_and_loses_nothing(browser, production_server, shop, host_pages):
    shop.conversations_per_ip = 1
    shop.messages_per_minute = 1
    await database_sync_to_async(shop.save)()
    context, page, problems = await customer_page(browser)
    await page.goto(host_pages.page(production_server, shop.key))
    await start_chat(page)
    await say(page, "First question")
    await page.wait_for_selector(".hd-msg--customer[data-seq]")
    # Over the per-conversation limit: the message waits and the customer is told when it will go.
    await say(page, "Second question")
    await page.wait_for_selector(".hd-msg--waiting:has-text('Second question')")
    assert "too quickly" in await page.locator(".hd-error").text_content()
    conversation_id = await stored_conversation_id(page)
    outbox = await page.evaluate(
        "() => Object.entries(localStorage).filter(([k]) => k.endsWith(':outbox')).map(([, v]) => v).join()"
    )
    assert "Second question" in outbox  # kept across a reload until the server takes it

    # Over the per-address limit of new conversations: a clear message, nothing created.
    await page.evaluate("() => localStorage.clear()")
    await page.reload()  # the panel stays open across the reload
    await page.wait_for_selector(".hd-launcher[aria-expanded=true]")
    await page.click(".hd-prechat button[type=submit]")
    await page.wait_for_selector(".hd-prechat :text('Too many new chats')")
    assert "12 hours" in await page.locator(".hd-prechat [role=alert]").last.text_content()
    assert await database_sync_to_async(Conversation.objects.count)() == 1
    _conversation, messages = await stored(conversation_id)
    assert [m.content for m in messages if m.role == "customer"] == ["First question"]
    assert problems == []
    await context.close()
