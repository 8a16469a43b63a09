"""Engine adapters, chosen by the INFERENCE_ENGINE setting and loaded lazily, once per process."""

import threading

from django.conf import settings
from django.utils.module_loading import import_string

from inference.engines.base import Engine, EngineError

__all__ = ["Engine", "EngineError", "engine_get", "engine_reset"]

# Short names for the adapters that ship with the project; any other value is a dotted path.
ENGINE_ALIASES = {
    "llamacpp": "inference.engines.llamacpp.LlamaCppEngine",
    "vllm": "inference.engines.vllm.VllmEngine",
    "openai": "inference.engines.openai.OpenAIEngine",
}

_engine: Engine | None = None
_engine_lock = threading.Lock()


def engine_get() -> Engine:
    """The process-wide engine, created on first use from the settings."""
    global _engine
    if _engine is None:
        with _engine_lock:
            if _engine is None:
                path = ENGINE_ALIASES.get(settings.INFERENCE_ENGINE, settings.INFERENCE_ENGINE)
                _engine = import_string(path).from_settings(settings)
    return _engine


def engine_reset() -> None:
    """Forget the process-wide engine (tests, settings changes); the next call builds a new one."""
    global _engine
    with _engine_lock:
        if _engine is not None:
            _engine.close()
        _engine = None
