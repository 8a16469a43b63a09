"""A customer as a plain program: HTTP to open a conversation, the `websockets` package for the chat socket."""

import asyncio
import json
import re
import time
import urllib.request
from dataclasses import dataclass, field

from websockets.asyncio.client import connect


def hosted_site_key(base_url: str) -> str:
    """The site key of the widget on the helpdesk's own page (the first active site)."""
    with urllib.request.urlopen(f"{base_url}/", timeout=10) as resp:
        return re.search(r'data-site-key="([^"]+)"', resp.read().decode()).group(1)


def conversation_open(base_url: str, site_key: str | None = None, **fields: str) -> dict:
    """Open a conversation as the widget does (POST /widget/v1/sites/<key>/conversations from the helpdesk's own
    page); returns {id, secret, websocket}. Without a site key, the hosted page's site is used."""
    site_key = site_key or hosted_site_key(base_url)
    request = urllib.request.Request(
        f"{base_url}/widget/v1/sites/{site_key}/conversations",
        data=json.dumps(fields).encode(),
        headers={"Content-Type": "application/json", "Origin": base_url},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


@dataclass
class Exchange:
    """What a customer saw for one question: frames in order and when each arrived (seconds after sending)."""

    frames: list[dict] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    @property
    def deltas(self) -> list[dict]:
        return [f for f in self.frames if f["type"] == "delta"]

    @property
    def first_delta_s(self) -> float:
        return next(t for f, t in zip(self.frames, self.times, strict=True) if f["type"] == "delta")

    @property
    def done(self) -> dict:
        """The bot's message as its last frame ("done") carried it."""
        assert self.frames[-1]["type"] == "done", self.frames[-4:]
        return self.frames[-1]["message"]


async def ask(base_url: str, conversation: dict, question: str, timeout: float = 120) -> Exchange:
    """Say hello, send one question and collect every frame until the bot's reply is done (or failed, or withdrawn:
    the model deferred to a person, so no reply will be done), or the conversation left the bot before any reply
    started (the customer asked for a person). Raises TimeoutError if nothing ends it within `timeout` seconds."""
    ws_url = base_url.replace("http", "ws", 1) + conversation["websocket"]
    async with connect(ws_url, origin=base_url, open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "hello", "secret": conversation["secret"], "last_seq": 0}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "ready"
        exchange = Exchange()
        started = time.perf_counter()
        await ws.send(json.dumps({"type": "message", "content": question, "client_id": f"q-{started}"}))
        deadline = started + timeout
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), max(0.0, deadline - time.perf_counter())))
            exchange.frames.append(frame)
            exchange.times.append(time.perf_counter() - started)
            if frame["type"] in ("done", "error", "withdrawn"):
                return exchange
            replying = any(f["type"] == "message" and f["message"]["role"] == "bot" for f in exchange.frames)
            if frame["type"] == "status" and frame["status"] != "bot" and not replying:
                return exchange
