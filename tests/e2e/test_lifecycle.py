"""The conversation's lifecycle in two real Chromium contexts (customer and agent) on the production shape: a customer
writing after the agent's resolve goes back to that agent (ticket reopened, both screens updated at once), the rating
is asked once, and an idle conversation is resolved by the periodic pass with the rating asked exactly once.
Screenshots are kept in artifacts/."""

import datetime

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone

from chat import services as chat_services
from chat.models import Conversation, Message, Rating
from helpdesk import services
from helpdesk.models import Ticket

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@database_sync_to_async
def make_agent():
    user = get_user_model().objects.create_user("ann", password="ann-pass-123", first_name="Ann")
    user.user_permissions.add(Permission.objects.get(codename="use_console"))
    return user


async def agent_console(browser, base_url: str):
    context = await browser.new_context(viewport={"width": 1200, "height": 760})
    page = await context.new_page()
    await page.goto(base_url + "/console/")
    await page.fill("#id_username", "ann")
    await page.fill("#id_password", "ann-pass-123")
    await page.click("button[type=submit]")
    await page.wait_for_selector("#connection:has-text('Online')")
    return context, page


async def customer_asks_for_a_person(browser, base_url: str, email: str = ""):
    context = await browser.new_context(viewport={"width": 800, "height": 700})
    page = await context.new_page()
    await page.goto(base_url + "/")  # the hosted page: the site's widget, opened
    if email:
        await page.fill(".hd-prechat input[name=email]", email)
    await page.click(".hd-prechat button[type=submit]")
    await page.wait_for_selector(".hd-status:has-text('Online')")
    await page.fill(".hd-input", "I want to talk to a human please")
    await page.keyboard.press("Enter")
    await page.wait_for_selector(".hd-status:has-text('Waiting for an agent')")
    return context, page


async def test_a_customer_writing_after_the_agents_resolve_goes_back_to_that_agent(
    browser, production_server, site, artifacts_dir
):
    await make_agent()
    agent_ctx, agent = await agent_console(browser, production_server)
    customer_ctx, customer = await customer_asks_for_a_person(browser, production_server)

    await agent.wait_for_selector("#queue button", timeout=10_000)
    await agent.click("#queue button")
    await agent.click("#btn-claim")
    await agent.wait_for_selector("#conv-status:has-text('agent')")
    await agent.fill("#reply-input", "Your refund is on its way.")
    await agent.keyboard.press("Enter")
    await customer.wait_for_selector(".hd-msg--agent:has-text('refund is on its way')")
    await agent.click("#btn-resolve")
    await customer.wait_for_selector(".hd-status:has-text('Resolved')")
    await customer.wait_for_selector(".hd-rating:visible")  # asked: the first resolution
    await agent.wait_for_selector("#conv-status:has-text('resolved')")
    conversation = await database_sync_to_async(Conversation.objects.get)()
    ticket = await database_sync_to_async(Ticket.objects.get)(conversation=conversation)
    assert ticket.status == Ticket.Status.RESOLVED

    # The customer writes again instead of rating: back to Ann (online, with room), not to the bot.
    await customer.fill(".hd-input", "Sorry, one more thing: it was the wrong size")
    await customer.keyboard.press("Enter")
    await customer.wait_for_selector(".hd-status:has-text('Chatting with an agent')")
    await customer.wait_for_selector(".hd-rating", state="hidden")
    await customer.wait_for_selector(".hd-msg--system:has-text('reopened')")
    await agent.wait_for_selector("#conv-status:has-text('agent')")
    await agent.wait_for_selector("#conv-log .msg--customer:has-text('wrong size')")
    await agent.screenshot(path=str(artifacts_dir / "console-reopened.png"))
    await customer.screenshot(path=str(artifacts_dir / "widget-reopened.png"))
    conversation = await database_sync_to_async(Conversation.objects.select_related("assignee").get)()
    ticket = await database_sync_to_async(Ticket.objects.get)(conversation=conversation)
    assert (conversation.status, conversation.assignee.username) == (Conversation.Status.AGENT, "ann")
    assert (ticket.status, ticket.assignee_id) == (Ticket.Status.OPEN, conversation.assignee_id)
    bot_replies = await database_sync_to_async(conversation.messages.filter(role=Message.Role.BOT).count)()
    assert bot_replies == 0  # the agent answers, never the bot

    # The agent answers and resolves again: the customer was asked once already, so no second form.
    await agent.fill("#reply-input", "We will send the right size today.")
    await agent.keyboard.press("Enter")
    await customer.wait_for_selector(".hd-msg--agent:has-text('right size today')")
    await agent.click("#btn-resolve")
    await customer.wait_for_selector(".hd-status:has-text('Resolved')")
    await customer.wait_for_selector(".hd-msg--system:has-text('This conversation was resolved.')")
    assert await customer.locator(".hd-rating:visible").count() == 0
    await customer.reload()
    await customer.wait_for_selector(".hd-status:has-text('Resolved')")
    assert await customer.locator(".hd-rating:visible").count() == 0
    await customer_ctx.close()
    await agent_ctx.close()


@database_sync_to_async
def claim_and_leave_idle(agent, seconds: float) -> Conversation:
    conversation = Conversation.objects.get()
    assert services.conversation_claim(conversation_id=conversation.id, agent=agent)
    chat_services.message_post_agent(conversation_id=conversation.id, agent=agent, content="Anything else?")
    then = timezone.now() - datetime.timedelta(seconds=seconds)
    Conversation.objects.filter(pk=conversation.pk).update(last_message_at=then)
    Message.objects.filter(conversation=conversation).update(created_at=then)
    return conversation


async def test_an_idle_conversation_is_resolved_and_the_rating_asked_exactly_once(
    browser, production_server, site, settings, artifacts_dir
):
    agent = await make_agent()
    customer_ctx, customer = await customer_asks_for_a_person(browser, production_server, email="li@example.com")
    # Nobody online, and the pre-chat had the email: told where the reply goes, not asked for it again.
    await customer.wait_for_selector(".hd-msg--system:has-text('we will reply to li@example.com')")
    assert await customer.locator(".hd-contact:visible").count() == 0

    # A paste over the limit is not cut without a word: the widget says how long it is, and does not send it.
    sent_before = await customer.locator(".hd-msg--customer").count()
    await customer.fill(".hd-input", "x" * 4001)
    await customer.wait_for_selector(".hd-over:visible:has-text('4001 characters; the limit is 4000')")
    await customer.keyboard.press("Enter")
    assert len(await customer.input_value(".hd-input")) == 4001  # kept whole, to shorten
    assert await customer.locator(".hd-msg--customer").count() == sent_before
    await customer.fill(".hd-input", "")
    await customer.wait_for_selector(".hd-over", state="hidden")

    await claim_and_leave_idle(agent, seconds=120)
    await customer.wait_for_selector(".hd-status:has-text('Chatting with an agent')")
    settings.CONVERSATION_IDLE_RESOLVE_AFTER = 60
    # The periodic pass (Celery beat runs this task every minute; here it is run at once).
    done = await database_sync_to_async(chat_services.conversations_lifecycle_run)()
    assert done == {"woken": 0, "resolved": 1}
    await customer.wait_for_selector(".hd-msg--system:has-text('period of inactivity')")
    await customer.wait_for_selector(".hd-status:has-text('Resolved')")
    await customer.wait_for_selector(".hd-rating:visible")
    await customer.screenshot(path=str(artifacts_dir / "widget-idle-resolved.png"))

    await customer.reload()  # still unanswered: asked again after a reload
    await customer.wait_for_selector(".hd-rating:visible")
    await customer.locator(".hd-rating label").nth(4).click()  # five stars
    await customer.click(".hd-rating button[type=submit]")
    await customer.wait_for_selector(".hd-thanks:visible")
    await customer.reload()  # rated: never asked again
    await customer.wait_for_selector(".hd-status:has-text('Resolved')")
    assert await customer.locator(".hd-rating:visible").count() == 0
    assert await database_sync_to_async(Rating.objects.count)() == 1
    assert await database_sync_to_async(chat_services.conversations_lifecycle_run)() == {"woken": 0, "resolved": 0}

    # A new topic after the resolve: a new conversation, not this one reopened.
    await customer.click(".hd-transcript:has-text('Start a new conversation')")
    await customer.wait_for_selector(".hd-msg--customer", state="detached")
    assert await database_sync_to_async(Conversation.objects.count)() == 1
    await customer_ctx.close()
