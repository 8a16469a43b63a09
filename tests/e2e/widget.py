"""What the browser tests of the widget share: host pages on another origin that embed it with one script tag, a
customer's browser context, and the widget's conversation as stored (in the database and in the host page)."""

import asyncio
import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from channels.db import database_sync_to_async

from chat.models import Conversation, Message

# Host-page CSS that would wreck a widget living in the page's own DOM.
HOST_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Acme shop</title>
<style>* {{ font-family: serif !important; }} body {{ color: #f0f; }} li {{ color: orange; list-style: square; }}
button {{ background: lime; padding: 40px; }} form, ol {{ display: block; border: 5px dashed red; }}</style>
</head><body><h1>Acme shop</h1><p>Products, prices and a support widget.</p>
<script src="{helpdesk}/static/chat/widget.js" data-site-key="{key}" async></script>
</body></html>
"""


class HostPages:
    """Static pages on their own port: a third-party site, a different origin from the helpdesk."""

    def __init__(self, root: Path):
        self.root = root
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(root)))
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def page(self, helpdesk: str, key: str, name: str = "shop.html") -> str:
        (self.root / name).write_text(HOST_PAGE.format(helpdesk=helpdesk, key=key))
        return f"{self.origin}/{name}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


async def customer_page(browser, locale: str = "en-US", timezone_id: str = "Europe/Paris"):
    context = await browser.new_context(locale=locale, timezone_id=timezone_id, viewport={"width": 1100, "height": 760})
    page = await context.new_page()
    problems: list[str] = []
    dismissals: set = set()
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

    def on_dialog(dialog) -> None:
        problems.append(f"dialog: {dialog.message}")
        dismissals.add(asyncio.ensure_future(dialog.dismiss()))

    page.on("dialog", on_dialog)
    return context, page, problems


async def start_chat(page, name: str = "", email: str = "") -> None:
    """Open the widget and send the pre-chat form."""
    await page.click(".hd-launcher")
    await page.wait_for_selector(".hd-prechat")
    if name:
        await page.fill(".hd-prechat input[name=name]", name)
    if email:
        await page.fill(".hd-prechat input[name=email]", email)
    await page.click(".hd-prechat button[type=submit]")
    await page.wait_for_selector(".hd-composer:visible")
    await page.wait_for_selector(".hd-input:visible")


async def say(page, text: str) -> None:
    await page.fill(".hd-input", text)
    await page.press(".hd-input", "Enter")


@database_sync_to_async
def stored(conversation_id=None):
    conversation = Conversation.objects.get(pk=conversation_id) if conversation_id else Conversation.objects.get()
    messages = list(conversation.messages.exclude(role=Message.Role.NOTE).order_by("seq"))
    return conversation, messages


async def stored_credentials(page) -> dict:
    """The conversation id and secret the widget keeps in the host page's localStorage."""
    raw = await page.evaluate(
        "() => Object.entries(localStorage).find(([k]) => k.startsWith('helpdesk:') && !k.endsWith(':outbox'))"
    )
    return json.loads(raw[1])


async def stored_conversation_id(page) -> str:
    return (await stored_credentials(page))["id"]
