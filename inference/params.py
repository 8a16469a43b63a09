"""Sampling parameters: deployment defaults from settings, per-request overrides clamped to safe bounds."""

from collections.abc import Mapping

from inference.types import SamplingParams

# (lowest, highest) accepted for each override; values outside are clamped, not refused.
BOUNDS = {
    "temperature": (0.0, 2.0),
    "top_p": (0.05, 1.0),
    "frequency_penalty": (-2.0, 2.0),
}


def sampling_params_build(settings, overrides: Mapping | None = None) -> SamplingParams:
    """SamplingParams from the INFERENCE_* settings, with `overrides` (from a request) clamped into bounds.

    max_tokens is held between 1 and INFERENCE_MAX_TOKENS_LIMIT, and never above half the context window, so a
    prompt always keeps room. Non-numeric overrides raise ValueError naming the field.
    """
    values = {
        "max_tokens": settings.INFERENCE_MAX_TOKENS,
        "temperature": settings.INFERENCE_TEMPERATURE,
        "top_p": settings.INFERENCE_TOP_P,
        "frequency_penalty": settings.INFERENCE_FREQUENCY_PENALTY,
    }
    for name, value in (overrides or {}).items():
        if name not in values or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number")
        values[name] = value
    for name, (low, high) in BOUNDS.items():
        values[name] = min(max(float(values[name]), low), high)
    ceiling = max(1, min(settings.INFERENCE_MAX_TOKENS_LIMIT, settings.INFERENCE_MAX_MODEL_LEN // 2))
    values["max_tokens"] = min(max(int(values["max_tokens"]), 1), ceiling)
    return SamplingParams(**values)
