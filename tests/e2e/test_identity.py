"""Verified customer identity and reopening a conversation from a link, in real Chromium against daphne + a Celery
worker + the bundled model. The shop's page (another origin) signs its signed-in user in the script tag, as the
shop's server would; each browser context is a separate device. Screenshots go to artifacts/."""

import hashlib
import hmac
import html

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from chat import services
from chat.access import conversation_reopen_link
from chat.identity import VerifiedIdentity
from chat.models import Contact, Conversation, Message
from tests.e2e.widget import HostPages, customer_page, say, start_chat, stored, stored_conversation_id

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ACCOUNT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Acme · your account</title></head>
<body><h1>Your account</h1><p>Signed in as {name}.</p>
<script src="{helpdesk}/static/chat/widget.js" data-site-key="{key}" data-user-id="{user_id}"
  data-user-name="{name}" data-user-email="{email}" data-user-hash="{user_hash}" async></script>
</body></html>
"""


def signature(secret: str, user_id: str) -> str:
    """What the shop's server computes: hex HMAC-SHA256 of the user id under the site's identity secret."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def account_page(pages: HostPages, helpdesk: str, site, user_id: str, name: str, user_hash: str) -> str:
    """The shop's account page for a signed-in user, its script tag carrying the (possibly forged) signature."""
    filename = f"account-{hashlib.sha1((user_id + user_hash).encode()).hexdigest()[:10]}.html"
    values = {"user_id": user_id, "name": name, "email": f"{user_id}@example.com", "user_hash": user_hash}
    (pages.root / filename).write_text(
        ACCOUNT_PAGE.format(helpdesk=helpdesk, key=site.key, **{k: html.escape(v) for k, v in values.items()})
    )
    return f"{pages.origin}/{filename}"


async def widget_texts(page, role: str) -> list[str]:
    return [t.strip() for t in await page.locator(f".hd-msg--{role} .hd-body").all_text_contents()]


async def open_widget(page) -> None:
    """Open the panel, unless it is open already (the widget remembers an open panel for the browser tab)."""
    launcher = page.locator(".hd-launcher")
    await launcher.wait_for()
    if await launcher.get_attribute("aria-expanded") != "true":
        await launcher.click()


async def identity_answer(page, url: str) -> int:
    """Load the page and return the status of the widget's identity request."""
    async with page.expect_response(lambda r: r.url.endswith("/identity") and r.request.method == "POST") as info:
        await page.goto(url)
    return (await info.value).status


async def test_a_verified_customer_sees_their_conversation_on_a_second_device_and_a_forged_signature_does_not(
    browser, production_server, shop, host_pages, artifacts_dir
):
    good = signature(shop.identity_secret, "user-42")
    ann_page = account_page(host_pages, production_server, shop, "user-42", "Ann Lee", good)

    # First device: Ann, signed in on the shop, chats with the bot.
    laptop, page, problems = await customer_page(browser)
    assert await identity_answer(page, ann_page) == 200
    await start_chat(page)
    await say(page, "Can I change the delivery address?")
    await page.wait_for_selector(".hd-msg--bot:not(.hd-msg--streaming)", timeout=180_000)
    conversation, messages = await stored()
    assert conversation.identity_verified is True
    contact = await database_sync_to_async(lambda: conversation.contact)()
    assert (contact.external_id, contact.verified) == ("user-42", True)
    assert (conversation.customer_name, conversation.customer_email) == ("Ann Lee", "user-42@example.com")
    said = {m.role: m.content.strip() for m in messages}
    assert set(said) == {"customer", "bot"} and said["bot"]

    # Second device, same signed identity, nothing stored: the widget opens her conversation, history and all.
    phone, page2, problems2 = await customer_page(browser)
    assert await identity_answer(page2, ann_page) == 200
    await open_widget(page2)
    await page2.wait_for_selector(".hd-msg--customer:has-text('delivery address')")
    await page2.wait_for_selector(".hd-msg--bot:not(.hd-msg--streaming)")
    assert await widget_texts(page2, "customer") == ["Can I change the delivery address?"]
    assert await widget_texts(page2, "bot") == [said["bot"]]
    assert await page2.locator(".hd-prechat:visible").count() == 0
    await page2.screenshot(path=str(artifacts_dir / "identity-second-device.png"))

    # It is live there too: a message from the second device reaches the first.
    await say(page2, "I moved last week.")
    await page.wait_for_selector(".hd-msg--customer:has-text('moved last week')", timeout=30_000)

    # Third device, the same user id and name with a forged signature: nothing of Ann's, a blank pre-chat form.
    stranger, page3, problems3 = await customer_page(browser)
    forged_page = account_page(host_pages, production_server, shop, "user-42", "Ann Lee", "0" * 64)
    assert await identity_answer(page3, forged_page) == 403
    await open_widget(page3)
    await page3.wait_for_selector(".hd-prechat:visible")
    await page3.wait_for_timeout(1000)  # time for anything that would still arrive
    assert await page3.locator(".hd-msg--customer, .hd-msg--bot, .hd-hist:visible").count() == 0
    assert "delivery address" not in await page3.locator("#helpdesk-widget").evaluate("el => el.shadowRoot.textContent")
    await page3.screenshot(path=str(artifacts_dir / "identity-forged.png"))
    # A conversation it starts is its own: not linked to Ann, not verified.
    await page3.click(".hd-prechat button[type=submit]")
    await page3.wait_for_selector(".hd-input:visible")
    forged_id = await stored_conversation_id(page3)
    forged = await database_sync_to_async(Conversation.objects.get)(pk=forged_id)
    assert (forged.contact_id, forged.identity_verified) == (None, False)
    assert await database_sync_to_async(Contact.objects.count)() == 1

    # Another user signing in on the first device's browser does not see Ann's conversation there.
    bob_page = account_page(
        host_pages, production_server, shop, "user-7", "Bob", signature(shop.identity_secret, "user-7")
    )
    assert await identity_answer(page, bob_page) == 200
    await open_widget(page)
    await page.wait_for_selector(".hd-prechat:visible")
    assert await page.locator(".hd-msg--customer").count() == 0

    assert problems == problems2 == problems3 == []
    # The bot is done with the second device's message (an answer, or a handoff) before the database is emptied.
    for _ in range(900):
        _conversation, messages = await stored(conversation.id)
        if messages[-1].role != Message.Role.CUSTOMER and all(m.state != Message.State.STREAMING for m in messages):
            break
        await page.wait_for_timeout(200)
    for context in (laptop, phone, stranger):
        await context.close()


@database_sync_to_async
def ann_with_two_conversations(site) -> list[Conversation]:
    """Two earlier conversations of the shop's user-42, each answered by an agent (handed off before the customer
    writes, so the bot never answers: no model needed)."""
    agent = get_user_model().objects.create_user("zoe", password="zoe-pass-123")
    ann = VerifiedIdentity(user_id="user-42", name="Ann Lee", email="ann@example.com")
    opened = []
    for question, answer in (
        ("My order 1001 is late.", "Order 1001 ships tomorrow."),
        ("Can I return the lamp?", "Yes, within 30 days."),
    ):
        conversation, _secret = services.conversation_start_verified(site=site, identity=ann, language="en")
        services.conversation_hand_off(conversation_id=conversation.id, reason="customer_request")
        services.message_post_customer(conversation_id=conversation.id, content=question)
        services.conversation_assign(conversation_id=conversation.id, agent=agent, expected_status="queued")
        services.message_post_agent(conversation_id=conversation.id, agent=agent, content=answer)
        opened.append(conversation)
    return opened


async def test_a_verified_customer_switches_between_earlier_conversations(
    browser, production_server, shop, host_pages, artifacts_dir
):
    older, newer = await ann_with_two_conversations(shop)
    context, page, problems = await customer_page(browser)
    ann_page = account_page(
        host_pages, production_server, shop, "user-42", "Ann Lee", signature(shop.identity_secret, "user-42")
    )
    assert await identity_answer(page, ann_page) == 200
    await open_widget(page)
    # The newest opens by itself; the list offers both.
    await page.wait_for_selector(".hd-msg--agent:has-text('within 30 days')")
    await page.click(".hd-hist summary")
    assert "2" in await page.locator(".hd-hist summary").text_content()
    entries = page.locator(".hd-hist li button")
    assert await entries.count() == 2
    assert "Yes, within 30 days." in await entries.nth(0).text_content()
    assert "Order 1001 ships tomorrow." in await entries.nth(1).text_content()
    await page.screenshot(path=str(artifacts_dir / "identity-earlier-conversations.png"))

    await entries.nth(1).click()
    await page.wait_for_selector(".hd-msg--agent:has-text('ships tomorrow')")
    assert await widget_texts(page, "customer") == ["My order 1001 is late."]
    assert await widget_texts(page, "agent") == ["Order 1001 ships tomorrow."]
    # And it is the one kept for this browser now: a reload comes back to it.
    await page.reload()
    await open_widget(page)
    await page.wait_for_selector(".hd-msg--agent:has-text('ships tomorrow')")
    assert await page.locator(".hd-msg--agent:has-text('within 30 days')").count() == 0
    assert str(older.id) != str(newer.id) and problems == []
    await context.close()


async def test_a_reopen_link_opens_its_conversation_in_a_fresh_browser(
    browser, production_server, shop, artifacts_dir, settings
):
    agent = await database_sync_to_async(get_user_model().objects.create_user)("zoe", password="zoe-pass-123")
    conversation, _secret = await database_sync_to_async(services.conversation_start)(site=shop, language="en")

    @database_sync_to_async
    def talk() -> None:
        services.conversation_hand_off(conversation_id=conversation.id, reason="customer_request")
        services.message_post_customer(conversation_id=conversation.id, content="Is the sofa in stock?")
        services.conversation_assign(conversation_id=conversation.id, agent=agent, expected_status="queued")
        services.message_post_agent(conversation_id=conversation.id, agent=agent, content="Yes, the grey one is.")

    await talk()
    settings.HELPDESK_PUBLIC_URL = production_server  # as the deployment sets it for its emails
    link = await database_sync_to_async(conversation_reopen_link)(
        await database_sync_to_async(Conversation.objects.select_related("site").get)(pk=conversation.id)
    )
    assert link.startswith(f"{production_server}/?site={shop.key}#hd-conversation=")

    context, page, problems = await customer_page(browser)
    await page.goto(link)  # the hosted chat page opens the widget by itself
    await page.wait_for_selector(".hd-msg--agent:has-text('the grey one')")
    assert await widget_texts(page, "customer") == ["Is the sofa in stock?"]
    assert "hd-token" not in page.url and "#" not in page.url  # the token left the address bar
    await page.screenshot(path=str(artifacts_dir / "identity-reopen-link.png"))

    # The customer answers from there, and it lands in the same conversation.
    await say(page, "Great, I'll order it.")
    await page.wait_for_selector(".hd-msg--customer:not(.hd-msg--pending):has-text('order it')")
    _conversation, messages = await stored(conversation.id)
    assert [m.content for m in messages if m.role == Message.Role.CUSTOMER] == [
        "Is the sofa in stock?",
        "Great, I'll order it.",
    ]
    # A tampered token opens nothing.
    tampered = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
    context2, page2, _problems2 = await customer_page(browser)
    await page2.goto(tampered)
    await page2.wait_for_selector(".hd-prechat:visible")
    assert await page2.locator(".hd-msg--agent").count() == 0
    assert problems == []
    for c in (context, context2):
        await c.close()


async def test_the_console_shows_a_verified_customer_with_the_sites_user_id(browser, production_server, shop):
    @database_sync_to_async
    def setup() -> None:
        agent = get_user_model().objects.create_user("ann", password="ann-pass-123")
        agent.user_permissions.add(Permission.objects.get(codename="use_console"))
        ann = VerifiedIdentity(user_id="user-42", name="Li Wei", email="li.wei@example.com")
        verified, _secret = services.conversation_start_verified(site=shop, identity=ann)
        anonymous, _secret = services.conversation_start(site=shop, customer_name="Someone")
        for conversation in (verified, anonymous):
            services.conversation_hand_off(conversation_id=conversation.id, reason="customer_request")

    await setup()
    context = await browser.new_context(viewport={"width": 1200, "height": 760})
    agent = await context.new_page()
    await agent.goto(production_server + "/console/")
    await agent.fill("#id_username", "ann")
    await agent.fill("#id_password", "ann-pass-123")
    await agent.click("button[type=submit]")
    await agent.wait_for_selector("#queue button:has-text('Someone')")
    assert await agent.locator("#queue button:has-text('Li Wei') .row__verified").count() == 1
    assert await agent.locator("#queue button:has-text('Someone') .row__verified").count() == 0
    await agent.click("#queue button:has-text('Li Wei')")
    await agent.wait_for_selector("#conv-verified:visible")
    assert (await agent.text_content("#conv-verified")).strip() == "verified · user-42"
    assert "contact=" in await agent.get_attribute("#conv-profile", "href")
    await agent.click("#queue button:has-text('Someone')")
    await agent.wait_for_selector("#conv-customer:has-text('Someone')")
    assert await agent.locator("#conv-verified").is_hidden()
    await context.close()
