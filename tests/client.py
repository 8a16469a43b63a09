"""A customer as a plain program: HTTP to open a conversation, the `websockets` package for the chat socket."""

import http.cookiejar
import json
import time
import urllib.request
from dataclasses import dataclass, field

from websockets.asyncio.client import connect


def conversation_open(base_url: str, **fields: str) -> dict:
    """GET the chat page for the CSRF cookie, then POST /chat/conversations; returns {id, secret, websocket}."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{base_url}/", timeout=10).read()
    token = next(c.value for c in jar if c.name == "csrftoken")
    request = urllib.request.Request(
        f"{base_url}/chat/conversations",
        data=json.dumps(fields).encode(),
        headers={"Content-Type": "application/json", "X-CSRFToken": token, "Referer": f"{base_url}/"},
        method="POST",
    )
    with opener.open(request, timeout=10) as resp:
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
        return self.frames[-1]["message"]


async def ask(base_url: str, conversation: dict, question: str, timeout: float = 120) -> Exchange:
    """Say hello, send one question and collect every frame until the bot's reply is done."""
    ws_url = base_url.replace("http", "ws", 1) + conversation["websocket"]
    async with connect(ws_url, origin=base_url, open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "hello", "secret": conversation["secret"], "last_seq": 0}))
        assert json.loads(await ws.recv(10))["type"] == "ready"
        exchange = Exchange()
        started = time.perf_counter()
        await ws.send(json.dumps({"type": "message", "content": question, "client_id": f"q-{started}"}))
        while True:
            frame = json.loads(await ws.recv(timeout))
            exchange.frames.append(frame)
            exchange.times.append(time.perf_counter() - started)
            if frame["type"] == "done" or frame["type"] == "error":
                return exchange
