"""Fixtures shared by every app's tests."""

import asyncio
import asyncio.runners

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


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    """Each test gets its own channel layer instance. channels caches one per process, and a channels-redis layer
    keeps asyncio locks bound to the event loop that first used them: a receive a test's consumer left holding its
    lock broke every later test's socket with "bound to a different event loop"."""
    from channels.layers import channel_layers

    yield
    channel_layers.backends.clear()


@pytest.fixture(scope="session")
def artifacts_dir():
    path = django_settings.BASE_DIR / "artifacts"
    path.mkdir(exist_ok=True)
    return path


def _cancel_all_tasks_until_done(loop) -> None:
    """asyncio.runners._cancel_all_tasks, cancelling again until every task has finished (for at most 30 s).

    A channels-redis receive that a test's consumer leaves running can swallow one cancellation: redis-py's blocking
    read turns it into a timeout and channels-redis reads again. The stock teardown cancels once, then waits for
    ever (seen as a rare hang after a socket test). Cancelling again reaches the next read.
    """
    tasks = asyncio.all_tasks(loop)
    if tasks:

        async def settle() -> None:
            pending = set(tasks)
            for _ in range(60):
                for task in pending:
                    task.cancel()
                _done, pending = await asyncio.wait(pending, timeout=0.5)
                if not pending:
                    return

        loop.run_until_complete(settle())
    _stock_cancel_all_tasks(loop)  # reports what the tasks raised, as before


_stock_cancel_all_tasks = asyncio.runners._cancel_all_tasks
asyncio.runners._cancel_all_tasks = _cancel_all_tasks_until_done
