"""Attachments in real Chromium: a customer on a third-party page sends an image through the widget and the agent
sees it inline in the console; a disallowed file is refused with a clear message; another customer cannot fetch the
file's URL; the agent sends a file back. Against daphne and a Celery worker. Screenshots go to artifacts/."""

import io
from pathlib import Path

import httpx
import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from PIL import Image

from chat.models import Attachment, Message
from tests.client import conversation_open
from tests.e2e.widget import customer_page, say, start_chat, stored_credentials

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PDF_BYTES = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
EXE_BYTES = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(range(256)) * 8


def sofa_png() -> bytes:
    image = Image.new("RGB", (900, 600), (180, 120, 60))
    for x in range(0, 900, 60):  # stripes, so the thumbnail is visibly a picture
        image.paste((40, 40, 120), (x, 0, x + 20, 600))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@database_sync_to_async
def make_agent() -> None:
    user = get_user_model().objects.create_user("ann", password="ann-pass-123", first_name="Ann")
    user.user_permissions.add(Permission.objects.get(codename="use_console"))


@database_sync_to_async
def the_attachment() -> Attachment:
    return Attachment.objects.select_related("message").get(name="sofa.png")


@database_sync_to_async
def bot_replies() -> list[str]:
    return list(Message.objects.filter(role=Message.Role.BOT).values_list("content", flat=True))


async def fetch_status(page, url: str, secret: str | None, credentials: str = "omit") -> int:
    """The status a page gets fetching `url` with `secret` in X-Conversation-Secret (or no header)."""
    return await page.evaluate(
        """async ([url, secret, credentials]) => {
            const headers = secret ? {"X-Conversation-Secret": secret} : {};
            const res = await fetch(url, {credentials, headers});
            return res.status;
        }""",
        [url, secret, credentials],
    )


async def natural_width(locator) -> int:
    await locator.wait_for()
    for _ in range(100):
        width = await locator.evaluate("img => img.complete ? img.naturalWidth : 0")
        if width:
            return width
        await locator.page.wait_for_timeout(100)
    return 0


async def test_a_customer_sends_an_image_the_agent_sees_it_and_strangers_cannot_fetch_it(
    browser, production_server, shop, host_pages, artifacts_dir
):
    await make_agent()
    agent_ctx = await browser.new_context(viewport={"width": 1200, "height": 800})
    agent = await agent_ctx.new_page()
    agent_problems: list[str] = []
    agent.on("pageerror", lambda exc: agent_problems.append(f"console page error: {exc}"))
    await agent.goto(production_server + "/console/")
    await agent.fill("#id_username", "ann")
    await agent.fill("#id_password", "ann-pass-123")
    await agent.click("button[type=submit]")
    await agent.wait_for_selector("#connection:has-text('Online')")

    context, customer, problems = await customer_page(browser)
    await customer.goto(host_pages.page(production_server, shop.key))
    await start_chat(customer, name="Ann Customer")

    # A file without a word, to the bot: it says honestly that it cannot look at files (no model describes it).
    await customer.set_input_files(
        ".hd-composer input[type=file]", {"name": "sofa.png", "mimeType": "image/png", "buffer": sofa_png()}
    )
    thumb = customer.locator(".hd-msg--customer .hd-thumb img")
    assert await natural_width(thumb) == 320  # the thumbnail, fetched with the secret, shown from a blob: URL
    assert (await thumb.get_attribute("src")).startswith("blob:")
    bot = customer.locator(".hd-msg--bot:has-text('sofa.png')")
    await bot.wait_for(timeout=60_000)
    assert "can't open or look at files" in await bot.text_content()
    assert any("“sofa.png”" in reply for reply in await bot_replies())

    # A disallowed file: refused, and the customer reads why.
    await customer.set_input_files(
        ".hd-composer input[type=file]",
        {"name": "invoice.png", "mimeType": "image/png", "buffer": EXE_BYTES},
    )
    error = customer.locator(".hd-error")
    await error.wait_for()
    assert "This file type is not allowed" in await error.text_content()
    assert "This file type is not allowed" in await customer.locator(".hd-msg--rejected .hd-note").text_content()
    await customer.screenshot(path=str(artifacts_dir / "widget-attachments.png"))

    # The customer asks for a person; the agent claims and sees the image inline.
    await say(customer, "I want to talk to a human please")
    await customer.wait_for_selector(".hd-status:has-text('Waiting for an agent')")
    await agent.wait_for_selector("#queue button", timeout=15_000)
    await agent.click("#queue button")
    await agent.click("#btn-claim")
    await agent.wait_for_selector("#conv-status:has-text('agent')")
    image = agent.locator("#conv-log .msg--customer .msg__files img")
    assert await natural_width(image) == 320
    attachment = await the_attachment()
    full_url = f"/widget/v1/conversations/{attachment.conversation_id}/attachments/{attachment.id}"
    assert await agent.locator(f"#conv-log a[href='{full_url}']").count() == 1
    # Staff: their session suffices; without it, nothing.
    assert await fetch_status(agent, production_server + full_url, None, credentials="same-origin") == 200
    assert await fetch_status(agent, production_server + full_url, None) == 404

    # The agent sends a file back; the customer gets it as a link.
    await agent.set_input_files(
        "#attach-input", {"name": "return-label.pdf", "mimeType": "application/pdf", "buffer": PDF_BYTES}
    )
    await customer.wait_for_selector(".hd-msg--agent .hd-file:has-text('return-label.pdf')", timeout=15_000)
    await agent.wait_for_selector("#conv-log .msg--agent .msg__file:has-text('return-label.pdf')")
    await agent.screenshot(path=str(artifacts_dir / "console-attachments.png"))
    # A PDF is saved under its name, not opened in a tab (Chrome blocks its viewer under the files' sandboxing CSP).
    async with agent.expect_download() as download_info:
        await agent.click("#conv-log .msg--agent .msg__file:has-text('return-label.pdf')")
    download = await download_info.value
    assert download.suggested_filename == "return-label.pdf"
    assert Path(await download.path()).read_bytes() == PDF_BYTES

    # The customer's own secret opens the file; another customer's secret, or none, finds nothing there.
    url = production_server + full_url
    own = await stored_credentials(customer)
    assert await fetch_status(customer, url, own["secret"]) == 200
    other_ctx, other, _problems = await customer_page(browser)
    await other.goto(host_pages.page(production_server, shop.key))
    await start_chat(other, name="Mallory")
    await say(other, "hello")
    await other.wait_for_selector(".hd-msg--customer[data-seq]")
    theirs = await stored_credentials(other)
    assert theirs["id"] != own["id"]
    assert await fetch_status(other, url, theirs["secret"]) == 404
    assert await fetch_status(other, url, None) == 404
    assert await fetch_status(other, url + "?thumb=1", theirs["secret"]) == 404
    assert problems == [] and agent_problems == []
    await other_ctx.close()
    await context.close()
    await agent_ctx.close()


def test_a_file_of_the_full_size_goes_through_the_server_and_a_larger_one_is_refused(production_server, site, settings):
    """Through daphne and the ASGI body limits: the upload address takes ATTACHMENT_MAX_BYTES (and the form around
    it), a byte more is refused by the size check, a body past the form's allowance at the edge; other widget
    addresses keep their small limit."""
    limit = settings.ATTACHMENT_MAX_BYTES
    conversation = conversation_open(production_server, site.key)
    url = f"/widget/v1/conversations/{conversation['id']}/attachments"
    headers = {"X-Conversation-Secret": conversation["secret"], "Origin": production_server}
    with httpx.Client(base_url=production_server, timeout=120) as client:

        def send(size: int) -> httpx.Response:
            return client.post(url, files={"file": ("server.log", b"a" * size, "text/plain")}, headers=headers)

        full = send(limit)
        assert full.status_code == 201, full.text[:300]
        assert full.json()["message"]["attachments"][0]["size"] == limit
        one_more = send(limit + 1)
        assert one_more.status_code == 413 and one_more.json()["error"]["code"] == "file_too_large"
        far_more = send(limit + 128 * 1024)
        assert far_more.status_code == 413 and far_more.json()["error"]["code"] == "payload_too_large"
        json_body = client.post(
            f"/widget/v1/sites/{site.key}/conversations",
            content=b'{"name": "' + b"x" * (100 * 1024) + b'"}',
            headers={"Content-Type": "application/json", "Origin": production_server},
        )
        assert json_body.status_code == 413
        assert client.get("/healthz").status_code == 200
    assert Attachment.objects.count() == 1
