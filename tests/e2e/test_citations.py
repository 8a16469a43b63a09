"""Answers from the knowledge base, with their sources, in real Chromium against daphne (extractive answers, the
default with the bundled model: the article's own sentences, so its exact figures), Redis, PostgreSQL and the demo
knowledge base: the customer sees the articles under the bot's bubble (English and Chinese), the agent sees them in
the console with their scores and how the answer was made. Screenshots go to artifacts/."""

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from chat import services
from chat.models import Conversation, Message, Site

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SHADOW = "document.querySelector('#helpdesk-widget').shadowRoot"


@pytest.fixture
def hosted_site(site):
    """The test site (with the demo knowledge base), the only active one, so the hosted chat page (the first active
    site's widget) shows it."""
    Site.objects.exclude(pk=site.pk).update(is_active=False)
    return site


async def customer_page(browser, locale: str, timezone_id: str):
    context = await browser.new_context(locale=locale, timezone_id=timezone_id, viewport={"width": 900, "height": 760})
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    return context, page, problems


async def ask(page, question: str) -> None:
    """On the hosted chat page (the widget opens by itself): send the pre-chat form, then the question."""
    await page.click(".hd-prechat button[type=submit]")
    await page.wait_for_selector(".hd-input:visible")
    await page.fill(".hd-input", question)
    await page.press(".hd-input", "Enter")
    await page.wait_for_selector(".hd-msg--customer[data-seq]")
    await page.wait_for_selector(".hd-msg--bot:not(.hd-msg--streaming)", timeout=90_000)


async def shown_sources(page) -> dict:
    """The newest bot bubble's text and its sources line: its text and its links."""
    return await page.evaluate(
        f"""() => {{
            const bubble = [...{SHADOW}.querySelectorAll('.hd-msg--bot')].pop();
            const line = bubble.querySelector('.hd-src');
            return {{
                body: bubble.querySelector('.hd-body').textContent,
                line: line ? line.textContent : null,
                links: line ? [...line.querySelectorAll('a')].map(a => [a.textContent, a.href, a.target, a.rel]) : [],
            }};
        }}"""
    )


@database_sync_to_async
def stored_reply(conversation_id=None) -> Message:
    conversation = Conversation.objects.get(pk=conversation_id) if conversation_id else Conversation.objects.get()
    return conversation.messages.filter(role=Message.Role.BOT).latest("seq")


@database_sync_to_async
def make_agent() -> None:
    user = get_user_model().objects.create_user("ann", password="ann-pass-123", first_name="Ann")
    user.user_permissions.add(Permission.objects.get(codename="use_console"))


async def test_the_customer_and_the_agent_see_the_articles_an_answer_comes_from(
    browser, extractive_server, hosted_site, artifacts_dir
):
    context, page, problems = await customer_page(browser, "en-US", "Europe/Paris")
    await page.goto(extractive_server + "/")
    await ask(page, "How much does it cost to return a sofa?")

    shown = await shown_sources(page)
    assert "$49" in shown["body"], shown
    assert shown["line"].startswith("Sources: "), shown
    assert shown["links"] == [
        ["Returns and refunds", "https://northwind.example/help/returns", "_blank", "noopener noreferrer"]
    ]
    reply = await stored_reply()
    assert reply.state == Message.State.COMPLETE and reply.sources and reply.grounding == "extractive"
    assert reply.engine == "knowledge" and not reply.fact_guard_tripped  # quoted: no model wrote it
    await page.locator(".hd-msg--bot .hd-src").scroll_into_view_if_needed()
    await page.screenshot(path=str(artifacts_dir / "citations-en.png"))

    # A reload replays the history: the sources come back with the message.
    await page.reload()
    await page.wait_for_selector(".hd-msg--bot:not(.hd-msg--streaming) .hd-src a")
    assert await shown_sources(page) == shown

    # The agent who takes the conversation over sees the source, its score and how the answer was made.
    await make_agent()
    agent_ctx = await browser.new_context(viewport={"width": 1200, "height": 760})
    agent = await agent_ctx.new_page()
    agent.on("pageerror", lambda exc: problems.append(f"console page error: {exc}"))
    await agent.goto(extractive_server + "/console/")
    await agent.fill("#id_username", "ann")
    await agent.fill("#id_password", "ann-pass-123")
    await agent.click("button[type=submit]")
    await agent.wait_for_selector("#connection:has-text('Online')")
    await database_sync_to_async(services.conversation_hand_off)(
        conversation_id=reply.conversation_id, reason="customer_request"
    )
    await agent.click("#queue button", timeout=10_000)
    bot = agent.locator("#conv-log .msg--bot").last
    await bot.locator(".msg__sources a").wait_for()
    link = bot.locator(".msg__sources a")
    assert (await link.text_content(), await link.get_attribute("href")) == (
        "Returns and refunds",
        "https://northwind.example/help/returns",
    )
    assert await link.get_attribute("rel") == "noopener noreferrer"
    score = reply.sources[0]["score"]
    assert f"score {score:.2f}" in await bot.locator(".msg__sources li").first.text_content()
    labels = {
        "extractive": "quoted from the help center",
        "curated": "curated answer",
        "generative": "generated from the help center",
    }
    assert labels[reply.grounding] in await bot.locator(".tag--grounding").text_content()
    assert await bot.locator(".tag--warn").count() == int(reply.fact_guard_tripped)
    await agent.screenshot(path=str(artifacts_dir / "citations-console.png"))
    await agent_ctx.close()
    assert problems == []
    await context.close()


async def test_a_chinese_customer_sees_the_chinese_article_cited(
    browser, extractive_server, hosted_site, artifacts_dir
):
    context, page, problems = await customer_page(browser, "zh-CN", "Asia/Shanghai")  # the widget speaks Chinese
    await page.goto(extractive_server + "/")
    await ask(page, "买多少钱包邮？")

    shown = await shown_sources(page)
    assert "299" in shown["body"], shown
    assert shown["line"].startswith("来源："), shown
    assert [title for title, *_ in shown["links"]] == ["配送与运费"], shown
    assert shown["links"][0][1] == "https://northwind.example.cn/help/shipping"
    conversation = await database_sync_to_async(Conversation.objects.get)()
    assert conversation.language == "zh"
    await page.locator(".hd-msg--bot .hd-src").scroll_into_view_if_needed()
    await page.screenshot(path=str(artifacts_dir / "citations-zh.png"))
    assert problems == []
    await context.close()
