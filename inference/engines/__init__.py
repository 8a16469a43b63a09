"""Engine adapters, chosen by settings and loaded lazily, once per process and name.

The bot always uses the default engine (INFERENCE_ENGINE and the other INFERENCE_* settings). INFERENCE_ENGINES
names further engines, each a few INFERENCE_* settings changed from the default's, for the staff playground and
the OpenAI-compatible API's `model` field, e.g. `{"qwen-gpu": {"engine": "openai", "base_url": "http://vllm:8000/v1",
"model": "Qwen/Qwen3-4B-Instruct-2507"}}`.
"""

import threading

from django.conf import settings
from django.utils.module_loading import import_string

from inference.engines.base import Engine, EngineError, RequestRejected

__all__ = [
    "DEFAULT_ENGINE",
    "Engine",
    "EngineError",
    "RequestRejected",
    "engine_get",
    "engine_is_remote",
    "engine_names",
    "engine_reset",
]

# Short names for the adapters that ship with the project; any other value is a dotted path.
ENGINE_ALIASES = {
    "llamacpp": "inference.engines.llamacpp.LlamaCppEngine",
    "vllm": "inference.engines.vllm.VllmEngine",
    "openai": "inference.engines.openai.OpenAIEngine",
}
DEFAULT_ENGINE = "default"

_engines: dict[str, Engine] = {}
_engine_lock = threading.Lock()


class EngineSettings:
    """Django's settings with some INFERENCE_* values replaced: what one named engine is built from."""

    def __init__(self, base, overrides: dict):
        self._base = base
        self._overrides = {f"INFERENCE_{key.upper()}": value for key, value in overrides.items()}

    def __getattr__(self, name: str):
        if name in self._overrides:
            return self._overrides[name]
        return getattr(self._base, name)


def engine_names() -> list[str]:
    """The engines that can be asked for by name: the default first."""
    return [DEFAULT_ENGINE, *[name for name in settings.INFERENCE_ENGINES if name != DEFAULT_ENGINE]]


def engine_get(name: str | None = None) -> Engine:
    """The process-wide engine of that name (None: the default), created on first use. KeyError if unknown."""
    name = name or DEFAULT_ENGINE
    engine = _engines.get(name)
    if engine is None:
        if name != DEFAULT_ENGINE and name not in settings.INFERENCE_ENGINES:
            raise KeyError(name)
        with _engine_lock:
            engine = _engines.get(name)
            if engine is None:
                overrides = {} if name == DEFAULT_ENGINE else settings.INFERENCE_ENGINES[name]
                config = EngineSettings(settings, overrides)
                path = ENGINE_ALIASES.get(config.INFERENCE_ENGINE, config.INFERENCE_ENGINE)
                engine = _engines[name] = import_string(path).from_settings(config)
    return engine


def engine_is_remote(name: str | None = None) -> bool:
    """Whether that engine is served by another process, so its health is a cheap request (no model is loaded)."""
    name = name or DEFAULT_ENGINE
    overrides = {} if name == DEFAULT_ENGINE else settings.INFERENCE_ENGINES[name]
    config = EngineSettings(settings, overrides)
    return import_string(ENGINE_ALIASES.get(config.INFERENCE_ENGINE, config.INFERENCE_ENGINE)).remote


def engine_reset() -> None:
    """Forget the process-wide engines (tests, settings changes); the next call builds new ones."""
    with _engine_lock:
        for engine in _engines.values():
            engine.close()
        _engines.clear()
