"""The one interface every inference engine implements."""

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path

from inference.types import ChatTurn, Delta, Health, SamplingParams

# Models smaller than this on disk (SmolLM2-135M is 0.1 GB; Qwen3-4B is 8 GB) are not trusted to restate facts.
SMALL_MODEL_BYTES = 1_000_000_000


def model_bytes(path: Path) -> int:
    """A model's size on disk: the file, or a folder's weight files."""
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".gguf", ".pt"))
    return 0


class EngineError(Exception):
    """The engine could not produce (the rest of) a reply."""


class RequestRejected(EngineError):
    """This request cannot be answered (its prompt does not fit the window, the server refused its body), while
    the engine itself is well: one customer's message must not mark the bot as down for everyone."""


class Engine(ABC):
    """A chat model that streams replies. Implementations must be safe to call from many threads at once."""

    #: Short name shown in logs, metrics and stored with each message.
    name: str = "engine"
    #: Served by another process (a server over HTTP): building it loads nothing and health() is one quick request.
    remote: bool = False

    @classmethod
    @abstractmethod
    def from_settings(cls, settings) -> "Engine":
        """Build the engine from Django settings."""

    @abstractmethod
    def stream(self, turns: Sequence[ChatTurn], params: SamplingParams) -> Iterator[Delta]:
        """Yield the reply as deltas; the last delta carries finish_reason and token counts. Raises EngineError."""

    @abstractmethod
    def count_tokens(self, turns: Sequence[ChatTurn]) -> int:
        """Number of prompt tokens these turns take, with the engine's own tokenizer and chat template."""

    @abstractmethod
    def health(self) -> Health:
        """Whether the engine is ready to serve."""

    @property
    def model_name(self) -> str:
        """The model this engine serves, as shown to staff and API clients."""
        return self.name

    @property
    def trusted_with_facts(self) -> bool:
        """Whether answers may be written by this model from passages (generative mode); small models quote instead."""
        return True

    @property
    @abstractmethod
    def max_model_len(self) -> int:
        """The context window in tokens."""

    def close(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release the engine's resources (the default holds none)."""
