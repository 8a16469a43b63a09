"""An agent's search and a customer's profile in real Chromium against daphne: a Chinese and an English query each
find the right conversation (segmented and stemmed, highlighted), the result opens the customer's profile with
their past conversations, ratings and tickets, and the agent adds a note there. The screenshots are kept in
artifacts/search.png and customer-profile.png."""

import datetime

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone

from chat.models import Conversation, Message, Rating, Site
from helpdesk.models import CustomerNote, Ticket
from tests import stack

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "ann-pass-123"


@pytest.fixture(scope="module")
def search_server(production_env, logs_dir):
    """daphne on the test database; the search and the profile need no worker and no model."""
    web, base_url = stack.start_web(
        {**production_env, "GENERATION_BACKEND": "inprocess"}, logs_dir, name="daphne-search"
    )
    yield base_url
    web.stop()


@database_sync_to_async
def seed() -> dict:
    agent = get_user_model().objects.create_user("ann", password=PASSWORD)
    agent.user_permissions.add(Permission.objects.get(codename="use_console"))
    shop = Site.objects.create(name="Acme shop")
    now = timezone.now()

    def conversation(days_ago: int, lines: list[tuple[str, str]], **fields) -> Conversation:
        row = Conversation.objects.create(site=shop, secret_hash="0" * 64, last_seq=len(lines), **fields)
        for seq, (role, content) in enumerate(lines, start=1):
            # Saved as the services save them: Message.save fills the search terms.
            Message.objects.create(conversation=row, seq=seq, role=role, content=content)
        moment = now - datetime.timedelta(days=days_ago)
        Conversation.objects.filter(pk=row.pk).update(created_at=moment, last_message_at=moment)
        return row

    c = {
        "zh": conversation(
            1,
            [("customer", "你好，我想退货，运费谁出？"), ("agent", "七天内退货免运费。")],
            customer_name="王芳",
            customer_email="wang.fang@example.cn",
            language="zh",
            status="agent",
            assignee=agent,
        ),
        "en": conversation(
            2,
            [("customer", "I was charged twice. When am I refunded?"), ("bot", "Refunds take 3-5 days.")],
            customer_name="Maria Lopez",
            customer_email="maria@example.com",
            status="resolved",
        ),
        "en_earlier": conversation(
            30,
            [("customer", "Do you ship to Canada?"), ("agent", "Yes, in 7 days.")],
            customer_name="Maria",
            customer_email="Maria@Example.com",
            status="resolved",
            assignee=agent,
        ),
        "unrelated": conversation(3, [("customer", "Where is my parcel?")], customer_name="Sam"),
    }
    Rating.objects.create(conversation=c["en_earlier"], score=4, comment="Fast delivery answer")
    Ticket.objects.create(conversation=c["en_earlier"], subject="Shipping to Canada", status="resolved")
    return {name: str(row.pk) for name, row in c.items()}


async def test_an_agent_searches_in_both_languages_and_opens_a_customer_profile(browser, search_server, artifacts_dir):
    ids = await seed()
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    await page.goto(f"{search_server}/console/search/")
    await page.fill("#id_username", "ann")
    await page.fill("#id_password", PASSWORD)
    async with page.expect_navigation():
        await page.click("button[type=submit]")
    assert page.url == f"{search_server}/console/search/"

    # Chinese: 退货 is found inside 我想退货 (segmented as the knowledge base does), and highlighted.
    await page.fill("input[name=q]", "退货")
    async with page.expect_navigation():
        await page.click("#search-form button[type=submit]")
    rows = page.locator("#search-results > li")
    assert await rows.count() == 1
    assert await rows.first.get_attribute("data-conversation") == ids["zh"]
    assert await rows.first.locator(".sr__customer").text_content() == "王芳"
    assert "退货" in await rows.first.locator(".sr__snippet mark").first.text_content()
    assert await rows.first.locator(".sr__open").get_attribute("href") == f"/console/#c={ids['zh']}"

    # English: "refunds" finds "refunded" (stemmed); the conversation about Canada does not match.
    await page.fill("input[name=q]", "refunds")
    async with page.expect_navigation():
        await page.click("#search-form button[type=submit]")
    assert await rows.count() == 1
    assert await rows.first.get_attribute("data-conversation") == ids["en"]
    assert await page.locator("#search-results mark").first.text_content() in ("refunded", "Refunds")
    await page.screenshot(path=str(artifacts_dir / "search.png"), full_page=True)

    # The customer's profile: both of Maria's conversations (the email in any case), with rating and ticket.
    async with page.expect_navigation():
        await rows.first.locator(".sr__profile").click()
    assert await page.text_content("#customer-email") == "maria@example.com"
    listed = await page.locator("#customer-conversations tbody tr").evaluate_all(
        "rows => rows.map(row => row.dataset.conversation)"
    )
    assert listed == [ids["en"], ids["en_earlier"]]
    earlier = page.locator(f"tr[data-conversation='{ids['en_earlier']}']")
    assert "Fast delivery answer" in await earlier.text_content()
    assert "Resolved" in await earlier.text_content() and "ann" in await earlier.text_content()
    assert await page.text_content("#customer-total") == "2"

    # A note about the customer, kept for the staff.
    await page.fill("#note-body", "Prefers email over phone; charged twice in March")
    async with page.expect_navigation():
        await page.click("#note-form button[type=submit]")
    await page.wait_for_selector("#customer-notes li:has-text('Prefers email over phone')")
    assert "ann" in await page.locator("#customer-notes li").first.text_content()
    await page.screenshot(path=str(artifacts_dir / "customer-profile.png"), full_page=True)
    note = await database_sync_to_async(CustomerNote.objects.get)()
    assert note.customer_email == "maria@example.com"

    # The note is searchable too: it finds Maria's conversations.
    await page.goto(f"{search_server}/console/search/?q=phone")
    found = await page.locator("#search-results > li").evaluate_all("rows => rows.map(row => row.dataset.conversation)")
    assert set(found) == {ids["en"], ids["en_earlier"]}
    await context.close()
