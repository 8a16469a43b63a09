import pytest

from inference.params import sampling_params_build
from inference.types import SamplingParams


def test_defaults_come_from_settings(settings):
    settings.INFERENCE_MAX_TOKENS, settings.INFERENCE_TEMPERATURE = 200, 0.5
    params = sampling_params_build(settings)
    assert params == SamplingParams(max_tokens=200, temperature=0.5, top_p=0.9, frequency_penalty=0.3)


def test_overrides_are_clamped_to_safe_bounds(settings):
    settings.INFERENCE_MAX_TOKENS_LIMIT, settings.INFERENCE_MAX_MODEL_LEN = 1024, 4096
    params = sampling_params_build(
        settings, {"temperature": 9, "top_p": 0, "frequency_penalty": -7, "max_tokens": 10**9, "unknown": 1}
    )
    assert params == SamplingParams(max_tokens=1024, temperature=2.0, top_p=0.05, frequency_penalty=-2.0)
    assert sampling_params_build(settings, {"max_tokens": -3}).max_tokens == 1


def test_max_tokens_leaves_half_the_window_for_the_prompt(settings):
    settings.INFERENCE_MAX_TOKENS_LIMIT, settings.INFERENCE_MAX_MODEL_LEN = 4096, 1000
    assert sampling_params_build(settings, {"max_tokens": 900}).max_tokens == 500


@pytest.mark.parametrize("bad", ["0.5", True, [1]])
def test_non_numeric_overrides_are_refused(settings, bad):
    with pytest.raises(ValueError, match="temperature must be a number"):
        sampling_params_build(settings, {"temperature": bad})
