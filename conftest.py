"""Fixtures shared by every app's tests."""

import pytest
from django.conf import settings as django_settings

from inference.engines import engine_reset


@pytest.fixture
def fake_engine(settings):
    """Use the spec'd fake engine of the tests (inference/tests/fakes.py) for this test, in-process."""
    from inference.tests.fakes import FakeEngine

    settings.INFERENCE_ENGINE = "inference.tests.fakes.FakeEngine"
    engine_reset()
    FakeEngine.script = None
    FakeEngine.calls = []
    yield FakeEngine
    FakeEngine.script = None
    engine_reset()


@pytest.fixture
def ungrounded(monkeypatch):
    """Skip the pipeline's knowledge step (chat.grounding.plan): the fake engine answers customers on its own.

    For tests of the engine's side of the pipeline (streaming, deadlines, the handoff signal, fallbacks, sockets),
    which would otherwise hand every question to a person for want of articles. The knowledge step has its own
    tests (chat/tests/test_grounded_generation.py, knowledge/tests), and production never skips it.
    """
    from chat import grounding

    monkeypatch.setattr(grounding, "plan", lambda **kwargs: None)


@pytest.fixture
def in_process_generation(settings):
    """Generate replies in this process's thread pool instead of Celery; wait for them before the test ends."""
    from chat.dispatch import in_process_wait

    settings.GENERATION_BACKEND = "inprocess"
    yield settings
    assert in_process_wait(timeout=30), "in-process tasks still running 30 s after the test"


@pytest.fixture(scope="session")
def artifacts_dir():
    path = django_settings.BASE_DIR / "artifacts"
    path.mkdir(exist_ok=True)
    return path
