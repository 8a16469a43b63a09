"""Customer and agent in two real Chromium contexts: handoff, live queue, claim, messages, a private note,
resolve and the customer's rating. Screenshots are kept in artifacts/."""

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from chat.models import Conversation, Rating

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@database_sync_to_async
def make_agent() -> None:
    user = get_user_model().objects.create_user("ann", password="ann-pass-123", first_name="Ann")
    user.user_permissions.add(Permission.objects.get(codename="use_console"))


async def test_customer_and_agent_talk_live_through_a_handoff(browser, production_server, site, artifacts_dir):
    await make_agent()
    agent_ctx = await browser.new_context(viewport={"width": 1200, "height": 760})
    agent = await agent_ctx.new_page()
    await agent.goto(production_server + "/console/")
    await agent.fill("#id_username", "ann")
    await agent.fill("#id_password", "ann-pass-123")
    await agent.click("button[type=submit]")
    await agent.wait_for_selector("#connection:has-text('Online')")
    assert await agent.locator("#queue button").count() == 0

    customer_ctx = await browser.new_context(viewport={"width": 800, "height": 700})
    customer = await customer_ctx.new_page()
    await customer.goto(production_server + "/")  # the hosted page: the site's widget, opened
    await customer.click(".hd-prechat button[type=submit]")
    await customer.wait_for_selector(".hd-status:has-text('Online')")
    await customer.fill(".hd-input", "I want to talk to a human please")
    await customer.keyboard.press("Enter")
    await customer.wait_for_selector(".hd-status:has-text('Waiting for an agent')")
    await customer.wait_for_selector(".hd-typing", state="hidden")  # no "assistant is typing" after a handoff

    # The conversation appears in the agent's queue without a reload.
    await agent.wait_for_selector("#queue button", timeout=10_000)
    await agent.click("#queue button")
    await agent.wait_for_selector("#conv-log .msg--customer:has-text('talk to a human')")
    assert "asked for a person" in await agent.text_content("#conv-reason")
    await agent.click("#btn-claim")
    await agent.wait_for_selector("#conv-status:has-text('agent')")
    await customer.wait_for_selector(".hd-status:has-text('Chatting with an agent')")
    # An agent is online, so no leave-a-message form; and no rating before the conversation is resolved.
    assert await customer.is_hidden(".hd-contact") and await customer.is_hidden(".hd-rating")

    # Live both ways.
    await agent.fill("#reply-input", "Hi, I'm Ann from support. How can I help?")
    await agent.keyboard.press("Enter")
    await customer.wait_for_selector(".hd-msg--agent:has-text('Ann from support')")
    await customer.fill(".hd-input", "My parcel arrived damaged")
    await customer.keyboard.press("Enter")
    await agent.wait_for_selector("#conv-log .msg--customer:has-text('arrived damaged')")

    # A private note stays on the staff side.
    await agent.fill("#reply-input", "VIP customer, offer a refund")
    await agent.click("#btn-note")
    await agent.wait_for_selector("#conv-log .msg--note:has-text('VIP customer')")
    await agent.wait_for_function("() => document.querySelector('#reply-input').value === ''")  # acknowledged
    await agent.screenshot(path=str(artifacts_dir / "console-conversation.png"))
    await customer.wait_for_timeout(1000)
    assert "VIP customer" not in await customer.text_content(".hd-log")

    # Resolve; the customer rates once.
    await agent.click("#btn-resolve")
    await customer.wait_for_selector(".hd-rating:visible")
    await customer.locator(".hd-rating label").nth(4).click()  # five stars
    await customer.fill(".hd-rating textarea[name=comment]", "Quick and kind")
    await customer.screenshot(path=str(artifacts_dir / "customer-rating.png"))
    await customer.click(".hd-rating button[type=submit]")
    await customer.wait_for_selector(".hd-thanks:visible")

    conversation = await database_sync_to_async(Conversation.objects.get)()
    rating = await database_sync_to_async(Rating.objects.get)(conversation=conversation)
    assert conversation.status == "resolved" and (rating.score, rating.comment) == (5, "Quick and kind")
    await agent.screenshot(path=str(artifacts_dir / "console-resolved.png"))
    await customer_ctx.close()
    await agent_ctx.close()
