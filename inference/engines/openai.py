"""Any OpenAI-compatible chat server (vLLM's, llama.cpp's, ...) over HTTP, streaming by Server-Sent Events.

The server batches; this adapter only keeps one pooled HTTP client, safe to share between threads. Closing a
stream early closes its HTTP response, and vLLM's server aborts the request when its client goes away.
"""

import json
import logging
import threading
from collections.abc import Iterator, Sequence

import httpx

from inference.engines.base import Engine, EngineError, RequestRejected
from inference.types import ChatTurn, Delta, Health, SamplingParams

logger = logging.getLogger(__name__)

# Tokens a chat template adds around each message, for servers that can only count plain text.
TEMPLATE_TOKENS_PER_MESSAGE = 8
# Seconds a health request may take: readiness probes ask it and must answer quickly.
HEALTH_TIMEOUT_S = 2.0


class OpenAIEngine(Engine):
    """Streams from `{base_url}/chat/completions`; counts tokens with the server's own tokenizer endpoint."""

    name = "openai"
    remote = True

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        max_model_len: int,
        api_key: str = "",
        timeout_s: float = 120,
        count_timeout_s: float = 10,
    ):
        if not base_url:
            raise EngineError("INFERENCE_BASE_URL must name the server, e.g. http://vllm:8000/v1")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._max_model_len = max_model_len
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # Connecting is quick or hopeless; reads may wait for a busy server up to the generation timeout.
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s, connect=5.0))
        self._count_timeout_s = count_timeout_s  # a hung server must not hold the prompt up past the first-token wait
        self._counter = None  # the token-counting method this server supports, found on first use
        self._counter_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> "OpenAIEngine":
        return cls(
            base_url=settings.INFERENCE_BASE_URL,
            model=settings.INFERENCE_SERVED_MODEL_NAME or settings.INFERENCE_MODEL,
            max_model_len=settings.INFERENCE_MAX_MODEL_LEN,
            api_key=settings.INFERENCE_API_KEY,
            timeout_s=settings.INFERENCE_GENERATION_TIMEOUT,
            count_timeout_s=settings.INFERENCE_FIRST_TOKEN_TIMEOUT,
        )

    @property
    def model_name(self) -> str:
        return self.model or self.name

    @property
    def max_model_len(self) -> int:
        return self._max_model_len

    @property
    def _server_root(self) -> str:
        return self.base_url.removesuffix("/v1")

    # Token counting: vLLM's /tokenize applies the chat template (exact); llama-cpp-python's server counts text.

    def _count_vllm(self, messages: list[dict]) -> int:
        response = self._client.post(
            f"{self._server_root}/tokenize",
            json={"model": self.model, "messages": messages},
            timeout=self._count_timeout_s,
        )
        response.raise_for_status()
        return int(response.json()["count"])

    def _count_llamacpp(self, messages: list[dict]) -> int:
        text = "\n".join(m["content"] for m in messages)
        response = self._client.post(
            f"{self._server_root}/extras/tokenize/count", json={"input": text}, timeout=self._count_timeout_s
        )
        response.raise_for_status()
        return int(response.json()["count"]) + TEMPLATE_TOKENS_PER_MESSAGE * len(messages)

    def count_tokens(self, turns: Sequence[ChatTurn]) -> int:
        messages = [{"role": t.role, "content": t.content} for t in turns]
        try:
            if self._counter is not None:
                return self._counter(messages)
            with self._counter_lock:
                for counter in (self._count_vllm, self._count_llamacpp):
                    try:
                        count = counter(messages)
                    except (httpx.HTTPStatusError, KeyError, ValueError):
                        continue  # not this server's endpoint; try the next kind
                    self._counter = counter
                    return count
        except httpx.HTTPError as exc:  # down, hung or failing: no point trying another endpoint
            raise EngineError(f"{self.base_url} could not count tokens: {exc!r}") from exc
        raise EngineError(f"{self.base_url} offers no tokenizer endpoint (/tokenize or /extras/tokenize/count)")

    def stream(self, turns: Sequence[ChatTurn], params: SamplingParams) -> Iterator[Delta]:
        prompt_tokens = self.count_tokens(turns)
        room = self._max_model_len - prompt_tokens
        if room <= 0:
            raise RequestRejected(
                f"prompt of {prompt_tokens} tokens does not fit the {self._max_model_len}-token context"
            )
        body = {
            "model": self.model,
            "messages": [{"role": t.role, "content": t.content} for t in turns],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": min(params.max_tokens, room),
            "temperature": params.temperature,
            "top_p": params.top_p,
            "frequency_penalty": params.frequency_penalty,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        chunks, finish_reason, usage = 0, None, None
        try:
            with self._client.stream("POST", f"{self.base_url}/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    detail = response.read().decode(errors="replace")[:300]
                    # 400, 413, 422: this request's body (its length, say); anything else is the server's state.
                    error = RequestRejected if response.status_code in (400, 413, 422) else EngineError
                    raise error(f"{self.base_url} answered HTTP {response.status_code}: {detail}")
                for event in _sse_events(response.iter_lines()):
                    if event.get("usage"):
                        usage = event["usage"]
                    for choice in event.get("choices") or ():
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            chunks += 1
                            yield Delta(text=text)
                        finish_reason = choice.get("finish_reason") or finish_reason
        except httpx.HTTPError as exc:
            raise EngineError(f"{self.base_url} failed: {exc!r}") from exc
        if finish_reason is None:
            raise EngineError(f"{self.base_url} ended the stream without a finish reason")
        yield Delta(
            finish_reason=finish_reason,
            prompt_tokens=(usage or {}).get("prompt_tokens") or prompt_tokens,
            # Servers that send no usage stream one token per chunk.
            completion_tokens=(usage or {}).get("completion_tokens") or chunks,
        )

    def health(self) -> Health:
        try:
            response = self._client.get(f"{self.base_url}/models", timeout=HEALTH_TIMEOUT_S)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            return Health(ok=False, detail=repr(exc))
        return Health(ok=True, info={"models": [m.get("id") for m in response.json().get("data", [])]})

    def close(self) -> None:
        self._client.close()


def _sse_events(lines: Iterator[str]) -> Iterator[dict]:
    """The JSON payloads of a Server-Sent Events stream, until `data: [DONE]`."""
    for line in lines:
        if not line.startswith("data:"):
            continue  # comments, keep-alives, event names
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            event = json.loads(data)
        except ValueError as exc:
            raise EngineError(f"malformed event from the server: {data[:200]!r}") from exc
        if "error" in event:
            raise EngineError(f"the server reported an error: {str(event['error'])[:300]}")
        yield event
