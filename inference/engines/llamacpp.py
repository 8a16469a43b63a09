"""llama.cpp in-process through llama-cpp-python: the embedded default engine.

A `Llama` object evaluates one sequence at a time and is not safe to call from two threads at once, so the
engine keeps a small pool of instances (INFERENCE_INSTANCES, default 1) and each generation borrows one.
More requests than instances wait their turn. For real concurrency on a CPU, run llama.cpp's own server
with parallel slots behind the `openai` adapter; on a GPU, use vLLM.
"""

import logging
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from inference.engines.base import SMALL_MODEL_BYTES, Engine, EngineError, RequestRejected, model_bytes
from inference.model_files import bundled_model_path
from inference.types import ChatTurn, Delta, Health, SamplingParams

logger = logging.getLogger(__name__)


class LlamaCppEngine(Engine):
    """Runs a GGUF model with llama.cpp inside this process."""

    name = "llamacpp"

    def __init__(self, *, model_path: Path, n_ctx: int = 4096, n_threads: int = 0, instances: int = 1):
        if not model_path.is_file():
            raise EngineError(f"model file not found: {model_path}")
        self.model_path = model_path
        self._n_ctx = n_ctx
        self._n_threads = n_threads or os.cpu_count() or 1
        self._instances: queue.Queue = queue.Queue()
        self._created = 0
        self._wanted = max(1, instances)
        self._create_lock = threading.Lock()
        # A vocabulary-only instance tokenizes (count_tokens) without touching the generating ones.
        self._tokenizer = self._load(vocab_only=True)
        self._tokenizer_lock = threading.Lock()
        self._formatter = self._chat_formatter(self._tokenizer)
        # The first generating instance is loaded now, so a bad file fails at start, not on the first customer.
        self._instances.put(self._new_instance())

    @classmethod
    def from_settings(cls, settings) -> "LlamaCppEngine":
        path = Path(settings.INFERENCE_MODEL) if settings.INFERENCE_MODEL else bundled_model_path()
        return cls(
            model_path=path,
            n_ctx=settings.INFERENCE_MAX_MODEL_LEN,
            n_threads=settings.INFERENCE_THREADS,
            instances=settings.INFERENCE_INSTANCES,
        )

    @property
    def model_name(self) -> str:
        return self.model_path.stem

    @property
    def trusted_with_facts(self) -> bool:
        return model_bytes(self.model_path) >= SMALL_MODEL_BYTES

    @property
    def max_model_len(self) -> int:
        return self._n_ctx

    def _load(self, **kwargs):
        from llama_cpp import Llama

        try:
            return Llama(
                model_path=str(self.model_path), n_ctx=self._n_ctx, n_threads=self._n_threads, verbose=False, **kwargs
            )
        except (ValueError, RuntimeError) as exc:
            raise EngineError(f"llama.cpp could not load {self.model_path}: {exc}") from exc

    def _new_instance(self):
        with self._create_lock:
            self._created += 1
        logger.info("loading %s with llama.cpp (n_ctx=%s, threads=%s)", self.model_path, self._n_ctx, self._n_threads)
        return self._load()

    @staticmethod
    def _chat_formatter(llama):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise EngineError("the GGUF file has no chat template (tokenizer.chat_template)")
        model = llama._model
        eos_id, bos_id = llama.token_eos(), llama.token_bos()
        return Jinja2ChatFormatter(
            template=template,
            eos_token=model.token_get_text(eos_id) if eos_id != -1 else "",
            bos_token=model.token_get_text(bos_id) if bos_id != -1 else "",
        )

    def _borrow(self):
        """An idle instance; a new one while fewer than INFERENCE_INSTANCES exist, else wait for one."""
        try:
            return self._instances.get_nowait()
        except queue.Empty:
            pass
        with self._create_lock:
            grow = self._created < self._wanted
        return self._new_instance() if grow else self._instances.get()

    def _prompt(self, turns: Sequence[ChatTurn]) -> tuple[str, list[int]]:
        rendered = self._formatter(messages=[{"role": t.role, "content": t.content} for t in turns])
        with self._tokenizer_lock:
            tokens = self._tokenizer.tokenize(rendered.prompt.encode("utf-8"), add_bos=False, special=True)
        return rendered.prompt, tokens

    def count_tokens(self, turns: Sequence[ChatTurn]) -> int:
        return len(self._prompt(turns)[1])

    def stream(self, turns: Sequence[ChatTurn], params: SamplingParams) -> Iterator[Delta]:
        _, prompt_tokens = self._prompt(turns)
        room = self._n_ctx - len(prompt_tokens)
        if room <= 0:
            raise RequestRejected(f"prompt of {len(prompt_tokens)} tokens does not fit the {self._n_ctx}-token context")
        generated = 0

        def count_tokens(input_ids, _logits) -> bool:
            # llama.cpp calls this after sampling each token with the prompt plus the tokens before it (and once
            # more at the end with the evaluated ones): an exact completion count without re-tokenizing.
            nonlocal generated
            generated = max(generated, len(input_ids) - len(prompt_tokens) + 1)
            return False

        from llama_cpp import StoppingCriteriaList

        llama = self._borrow()
        finish_reason = None
        max_tokens = min(params.max_tokens, room)
        try:
            chunks = llama.create_completion(
                prompt_tokens,
                max_tokens=max_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                frequency_penalty=params.frequency_penalty,
                stop=[self._formatter.eos_token, *params.stop],
                stopping_criteria=StoppingCriteriaList([count_tokens]),
                stream=True,
            )
            for chunk in chunks:
                choice = chunk["choices"][0]
                if choice["text"]:
                    yield Delta(text=choice["text"])
                finish_reason = choice.get("finish_reason") or finish_reason
        except EngineError:
            raise
        except Exception as exc:  # llama.cpp surfaces its failures as assorted exceptions
            raise EngineError(f"llama.cpp failed: {exc}") from exc
        finally:
            self._instances.put(llama)
        # The callback's last call can see one token more than was sampled (a reply cut inside a multi-byte
        # character, seen with Chinese): never report more than the limit allowed.
        yield Delta(
            finish_reason=finish_reason or "stop",
            prompt_tokens=len(prompt_tokens),
            completion_tokens=min(generated, max_tokens),
        )

    def health(self) -> Health:
        return Health(ok=True, info={"model": self.model_path.name, "n_ctx": self._n_ctx, "instances": self._created})

    def close(self) -> None:
        """Free the idle instances and the tokenizer (call when no generation is running)."""
        while True:
            try:
                self._instances.get_nowait().close()
            except queue.Empty:
                break
        self._tokenizer.close()
