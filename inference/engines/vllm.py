"""vLLM's AsyncLLM inside this process (a Celery worker), one engine per process shared by every generation.

Many requests in flight in one engine is what lets PagedAttention and continuous batching work, so there is no
lock here: each `stream()` call submits its request to the engine's event loop and receives deltas through a
queue. The engine and its output handler live on one dedicated event-loop thread, created with the engine (its
ZMQ sockets bind to the loop that runs at creation). Run Celery with the threads pool: prefork children are
daemonic and cannot start vLLM's EngineCore process.
"""

import asyncio
import logging
import os
import queue
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from inference.engines.base import SMALL_MODEL_BYTES, Engine, EngineError, RequestRejected, model_bytes
from inference.types import ChatTurn, Delta, Health, SamplingParams

logger = logging.getLogger(__name__)

_END = object()


class VllmEngine(Engine):
    """Serves a Hugging Face model folder with vLLM's AsyncLLM."""

    name = "vllm"

    def __init__(
        self,
        *,
        model: str,
        max_model_len: int,
        gpu_memory_utilization: float = 0.9,
        dtype: str = "auto",
        quantization: str = "",
        enforce_eager: bool = False,
        served_name: str = "",
    ):
        if not Path(model).is_dir():
            raise EngineError(f"vLLM needs a local Hugging Face model folder; not found: {model}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights never come from a hub at run time
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.model = model
        self.served_name = served_name or Path(model).name
        self._max_model_len = max_model_len
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vllm-engine-loop", daemon=True)
        self._thread.start()
        engine_args = {
            "model": model,
            "served_model_name": self.served_name,
            "max_model_len": max_model_len,
            "gpu_memory_utilization": gpu_memory_utilization,
            "dtype": dtype,
            "enforce_eager": enforce_eager,
            "quantization": quantization or None,
        }
        try:
            self._engine = asyncio.run_coroutine_threadsafe(self._create(engine_args), self._loop).result()
        except Exception as exc:
            self._loop.call_soon_threadsafe(self._loop.stop)
            raise EngineError(f"vLLM could not start: {exc!r}") from exc
        from transformers import AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(model)
        self._tokenizer_lock = threading.Lock()  # HF fast tokenizers are not safe across threads

    @staticmethod
    async def _create(engine_args: dict):
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        return AsyncLLM.from_engine_args(AsyncEngineArgs(**engine_args))

    @classmethod
    def from_settings(cls, settings) -> "VllmEngine":
        if not settings.INFERENCE_MODEL:
            raise EngineError("INFERENCE_MODEL must name a Hugging Face model folder for the vllm engine")
        return cls(
            model=settings.INFERENCE_MODEL,
            max_model_len=settings.INFERENCE_MAX_MODEL_LEN,
            gpu_memory_utilization=settings.INFERENCE_GPU_MEMORY_UTILIZATION,
            dtype=settings.INFERENCE_DTYPE,
            quantization=settings.INFERENCE_QUANTIZATION,
            enforce_eager=settings.INFERENCE_ENFORCE_EAGER,
            served_name=settings.INFERENCE_SERVED_MODEL_NAME,
        )

    @property
    def model_name(self) -> str:
        return self.served_name

    @property
    def trusted_with_facts(self) -> bool:
        return model_bytes(Path(self.model)) >= SMALL_MODEL_BYTES

    @property
    def max_model_len(self) -> int:
        return self._max_model_len

    def _prompt_ids(self, turns: Sequence[ChatTurn]) -> list[int]:
        messages = [{"role": t.role, "content": t.content} for t in turns]
        with self._tokenizer_lock:
            ids = self._tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if hasattr(ids, "keys"):  # transformers 5 returns a BatchEncoding
            ids = ids["input_ids"]
        return list(ids)

    def count_tokens(self, turns: Sequence[ChatTurn]) -> int:
        return len(self._prompt_ids(turns))

    def stream(self, turns: Sequence[ChatTurn], params: SamplingParams) -> Iterator[Delta]:
        from vllm import SamplingParams as VllmSamplingParams
        from vllm.sampling_params import RequestOutputKind

        prompt_ids = self._prompt_ids(turns)
        room = self._max_model_len - len(prompt_ids)
        if room <= 0:
            raise RequestRejected(
                f"prompt of {len(prompt_ids)} tokens does not fit the {self._max_model_len}-token context"
            )
        sampling = VllmSamplingParams(
            max_tokens=min(params.max_tokens, room),
            temperature=params.temperature,
            top_p=params.top_p,
            frequency_penalty=params.frequency_penalty,
            stop=list(params.stop) or None,
            output_kind=RequestOutputKind.DELTA,
        )
        request_id = uuid.uuid4().hex
        outputs: queue.Queue = queue.Queue()

        async def consume() -> None:
            try:
                async for output in self._engine.generate({"prompt_token_ids": prompt_ids}, sampling, request_id):
                    completion = output.outputs[0]
                    outputs.put((completion.text, len(completion.token_ids), completion.finish_reason))
            except BaseException as exc:  # EngineDeadError, cancellation: handed to the consuming thread
                outputs.put(exc)
            else:
                outputs.put(_END)

        future = asyncio.run_coroutine_threadsafe(consume(), self._loop)
        completion_tokens, finish_reason = 0, None
        try:
            while (item := outputs.get()) is not _END:
                if isinstance(item, BaseException):
                    raise EngineError(f"vLLM failed: {item!r}") from item
                text, tokens, finish = item
                completion_tokens += tokens
                finish_reason = finish or finish_reason
                if text:
                    yield Delta(text=text)
        finally:
            if not future.done():
                # The caller stopped early (customer gone, handoff, timeout): free the sequence's KV blocks now.
                asyncio.run_coroutine_threadsafe(self._engine.abort(request_id), self._loop)
        yield Delta(
            finish_reason=finish_reason or "stop", prompt_tokens=len(prompt_ids), completion_tokens=completion_tokens
        )

    def health(self) -> Health:
        errored = self._engine.errored
        return Health(ok=not errored, detail="engine dead" if errored else "", info={"model": self.served_name})

    def close(self) -> None:
        """Stop EngineCore from the engine's own loop thread (it must not be done elsewhere), then the loop."""

        async def shutdown() -> None:
            self._engine.shutdown()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
