"""ENGINE SIMULATOR, for load benches: an OpenAI-compatible chat server that is not a model.

Every chat completion gets the same plausible English reply: --tokens words (one per SSE chunk) of short sentences,
the first after --first-token-ms, then one every 1/--tokens-per-s seconds, to any number of streams at once (a plain
asyncio server, one task per stream). The product publishes a generated reply a sentence at a time, so the
sentences are short: at the default 40 tokens/s, about 10 a second, the frames per second of a fast engine's
stream; 400 tokens, a 10-second reply. A load bench then measures the helpdesk's own stack (daphne, the Redis
channel layer, the Celery worker, PostgreSQL) at a known engine speed, not a model's: no figure taken with it says
anything of a real engine.

It answers what inference/engines/openai.py asks, the way vLLM's server does:
  POST /v1/chat/completions   `stream: true`: Server-Sent Events (a role chunk, one word per chunk, a chunk with
                              finish_reason, a usage chunk when stream_options.include_usage, `data: [DONE]`);
                              otherwise the whole reply in one JSON answer after the same total time. max_tokens
                              under --tokens cuts the reply with finish_reason "length".
  POST /tokenize              vLLM's token counter, which the adapter tries first: {"count": n}, about 4 characters
                              a token
  GET  /v1/models             the one model, `engine-simulator` (the adapter's health check)
  GET  /health                200, as vLLM's
  GET  /sim/stats[?reset=1]   requests, streams open and their peak, and how late the word that completes the
                              first sentence left here (first_text_index): the simulator shares the CPU with the
                              stack, so its own lateness must not be counted as the stack's
The reply states no number, URL or email address and repeats no prompt wording, so the fact guard
(chat/grounding.py) passes every sentence of it, and it never contains the model's handoff signal
(inference/deferral.py).

    .venv/bin/python bench/engine_sim.py --port 8900 --tokens-per-s 40 --tokens 400 --first-token-ms 100
"""

import argparse
import asyncio
import json
import math
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

MODEL = "engine-simulator"
LABEL = "ENGINE SIMULATOR (not a model)"
CHARS_PER_TOKEN = 4

# Short sentences: the product publishes a generated reply a sentence at a time (chat.grounding.FactGate), so a
# sentence is a frame. 50 sentences, 200 words: the default 400 tokens are the text twice.
REPLY = (
    "Sure, I can help. Here is what to do. Open your account page. Choose the settings tab. Find the right "
    "section. Make your change there. Then press save. Settings are saved. It takes moments. A confirmation "
    "appears. It shows right away. We also email you. Check your inbox soon. Look in spam too. Nothing else is "
    "needed. The article explains more. It has clear steps. Each step is short. Take them in order. Skip none of "
    "them. The page may reload. That is expected. Sign in again if asked. Use your usual password. Your details "
    "stay safe. Nothing gets lost. Changes apply at once. You can undo them later. The same page allows it. "
    "Mobile works the same way. The app has this too. Menus look a bit different. The steps stay the same. Still "
    "stuck after that? Refresh and try again. A new browser helps too. Clearing the cache helps. Most issues end "
    "there. Help articles cover more. Search them any time. Tips are listed there. Guides open quickly. We read "
    "every message. Replies come quickly. Ask anything. Thanks for your patience. I hope this helps. Happy to "
    "help further. That is all for now. Have a great day."
)


def reply_tokens(count: int) -> list[str]:
    """`count` words of the reply, each but the first with its leading space, the sentences taken in turn; the last
    word ends a sentence (a count that cuts one short gets a full stop)."""
    words = REPLY.split()
    chosen = [words[i % len(words)] for i in range(count)]
    if chosen and chosen[-1][-1] not in ".?!":
        chosen[-1] += "."
    return [word if i == 0 else " " + word for i, word in enumerate(chosen)]


def first_text_index(tokens: list[str]) -> int:
    """The token whose arrival lets the product publish the first text: the first word after the first sentence's
    end (the sentence gate sees the sentence ended only then), or the last token for a reply of one sentence."""
    for i, token in enumerate(tokens[:-1]):
        if token[-1] in ".?!":
            return i + 1
    return len(tokens) - 1


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Simulator:
    """The reply's shape and what was served since the last reset."""

    tokens: int
    tokens_per_s: float
    first_token_s: float
    requests: int = 0
    streams_open: int = 0
    streams_peak: int = 0
    first_text_late_ms: list[float] = field(default_factory=list)

    def stats(self, reset: bool) -> dict:
        figures = {
            "engine": LABEL,
            "tokens": self.tokens,
            "tokens_per_s": self.tokens_per_s,
            "first_token_ms": self.first_token_s * 1000,
            "requests": self.requests,
            "streams_open": self.streams_open,
            "streams_peak": self.streams_peak,
            "first_text_late_ms": {
                "count": len(self.first_text_late_ms),
                "p50": round(percentile(self.first_text_late_ms, 50), 1),
                "p95": round(percentile(self.first_text_late_ms, 95), 1),
                "max": round(max(self.first_text_late_ms, default=0.0), 1),
            },
        }
        if reset:
            self.requests, self.streams_peak, self.first_text_late_ms = 0, self.streams_open, []
        return figures


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes

    @property
    def keep_alive(self) -> bool:
        return self.headers.get("connection", "").lower() != "close"

    def json(self) -> dict:
        try:
            data = json.loads(self.body or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}


async def request_read(reader: asyncio.StreamReader) -> Request | None:
    """One HTTP/1.1 request (Content-Length bodies only: what httpx sends), or None when the client is gone."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length") or 0))
    url = urlsplit(target)
    return Request(method, url.path, parse_qs(url.query), headers, body)


def response_head(status: int, content_type: str, *, length: int | None, keep_alive: bool) -> bytes:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}.get(status, "Error")
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}", "Server: engine-simulator"]
    lines.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def json_send(writer: asyncio.StreamWriter, request: Request, status: int, data: dict) -> None:
    body = json.dumps(data).encode()
    writer.write(response_head(status, "application/json", length=len(body), keep_alive=request.keep_alive) + body)
    await writer.drain()


def chunk(data: dict | str) -> bytes:
    """One SSE event as one HTTP chunk."""
    payload = ("data: " + (data if isinstance(data, str) else json.dumps(data)) + "\n\n").encode()
    return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"


def prompt_tokens(body: dict) -> int:
    messages = body.get("messages") or []
    text = "".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
    return max(1, len(text) // CHARS_PER_TOKEN) + 8 * len(messages)


class Server:
    def __init__(self, sim: Simulator):
        self.sim = sim
        self.loop = asyncio.get_running_loop()

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Requests one after the other on a kept-alive connection, until the client closes it."""
        try:
            while (request := await request_read(reader)) is not None:
                await self.route(request, writer)
                if not request.keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away mid-stream: the adapter closing a stream early
        finally:
            writer.close()

    async def route(self, request: Request, writer: asyncio.StreamWriter) -> None:
        self.sim.requests += 1
        if request.path in ("/health", "/healthz"):
            return await json_send(writer, request, 200, {"status": "ok", "engine": LABEL})
        if request.path == "/v1/models":
            model = {"id": MODEL, "object": "model", "owned_by": "engine-simulator"}
            return await json_send(writer, request, 200, {"object": "list", "data": [model]})
        if request.path == "/sim/stats":
            return await json_send(writer, request, 200, self.sim.stats(reset="reset" in request.query))
        if request.method != "POST":
            return await json_send(writer, request, 404, {"error": {"message": f"no {request.path}"}})
        body = request.json()
        if request.path == "/tokenize":
            return await json_send(writer, request, 200, {"count": prompt_tokens(body), "max_model_len": 1 << 20})
        if request.path == "/v1/chat/completions":
            if body.get("stream"):
                return await self.stream(request, body, writer)
            return await self.complete(request, body, writer)
        return await json_send(writer, request, 404, {"error": {"message": f"no {request.path}"}})

    def _reply(self, body: dict) -> tuple[list[str], str]:
        limit = body.get("max_tokens")
        count = self.sim.tokens if not isinstance(limit, int) or limit <= 0 else min(limit, self.sim.tokens)
        return reply_tokens(count), "stop" if count == self.sim.tokens else "length"

    async def _until(self, due: float) -> None:
        delay = due - self.loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def stream(self, request: Request, body: dict, writer: asyncio.StreamWriter) -> None:
        """The reply as OpenAI's chunks, each word due at an absolute time (no drift over a long reply)."""
        tokens, finish = self._reply(body)
        started, ident, created = self.loop.time(), f"chatcmpl-sim-{uuid.uuid4().hex[:12]}", int(time.time())
        base = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": MODEL}

        def event(delta: dict, finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
            return chunk({**base, "choices": [choice]})

        self.sim.streams_open += 1
        self.sim.streams_peak = max(self.sim.streams_peak, self.sim.streams_open)
        try:
            writer.write(response_head(200, "text/event-stream", length=None, keep_alive=request.keep_alive))
            writer.write(event({"role": "assistant", "content": ""}))
            await writer.drain()
            first_text = first_text_index(tokens)
            for i, token in enumerate(tokens):
                due = started + self.sim.first_token_s + i / self.sim.tokens_per_s
                await self._until(due)
                if i == first_text:
                    self.sim.first_text_late_ms.append(max(0.0, (self.loop.time() - due) * 1000))
                writer.write(event({"content": token}))
                await writer.drain()
            writer.write(event({}, finish))
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {"prompt_tokens": prompt_tokens(body), "completion_tokens": len(tokens)}
                usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
                writer.write(chunk({**base, "choices": [], "usage": usage}))
            writer.write(chunk("[DONE]") + b"0\r\n\r\n")
            await writer.drain()
        finally:
            self.sim.streams_open -= 1

    async def complete(self, request: Request, body: dict, writer: asyncio.StreamWriter) -> None:
        """Not streamed: the whole reply once the last word would have streamed."""
        tokens, finish = self._reply(body)
        await self._until(self.loop.time() + self.sim.first_token_s + (len(tokens) - 1) / self.sim.tokens_per_s)
        usage = {"prompt_tokens": prompt_tokens(body), "completion_tokens": len(tokens)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        choice = {"index": 0, "message": {"role": "assistant", "content": "".join(tokens)}, "finish_reason": finish}
        answer = {
            "id": f"chatcmpl-sim-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": MODEL,
            "choices": [choice],
            "usage": usage,
        }
        await json_send(writer, request, 200, answer)


async def serve(host: str, port: int, sim: Simulator) -> None:
    server = Server(sim)
    listener = await asyncio.start_server(server.connection, host, port, backlog=4096)
    bound = listener.sockets[0].getsockname()[1]
    print(
        f"{LABEL} listening on http://{host}:{bound}/v1: {sim.tokens} tokens at {sim.tokens_per_s:g} tok/s after "
        f"{sim.first_token_s * 1000:g} ms, model {MODEL!r}",
        flush=True,
    )
    async with listener:
        await listener.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--tokens", type=int, default=400, help="words in every reply")
    parser.add_argument("--tokens-per-s", type=float, default=40.0, help="words per second of each stream")
    parser.add_argument("--first-token-ms", type=float, default=100.0, help="delay before each stream's first word")
    args = parser.parse_args()
    if args.tokens < 1 or args.tokens_per_s <= 0 or args.first_token_ms < 0:
        parser.error("--tokens must be at least 1, --tokens-per-s above 0, --first-token-ms not negative")
    sim = Simulator(tokens=args.tokens, tokens_per_s=args.tokens_per_s, first_token_s=args.first_token_ms / 1000)
    try:
        asyncio.run(serve(args.host, args.port, sim))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
