"""Server processes for the end-to-end tests: the production shape on the test database, and a browser."""

import io
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection

from tests import stack


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stack-logs")


@pytest.fixture(scope="session")
def production_env(django_db_setup, django_db_blocker) -> dict:
    """The environment of the production shape, pointed at the test database and this run's queue and prefix.

    Answers are generative (production with a capable model: the model writes from the passages, streamed a sentence
    at a time through the fact guard), so the transport tests still stream a model's reply; greedy decoding keeps
    the small model's choices (answer, defer to a person, a number the guard holds back) the same from run to run.
    Extractive answers have a server of their own (`extractive_server`).

    One thread per llama.cpp instance: on a small shared machine, threads spinning against another process's slow
    the model down several times over (a 64-token answer: 11 s with one thread, 58 s with two); and two instances,
    so that two conversations are answered at once rather than one after the other.
    """
    with django_db_blocker.unblock():
        db = connection.settings_dict
    return stack.process_env(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        CELERY_QUEUE=settings.CELERY_TASK_DEFAULT_QUEUE,
        CHANNEL_LAYER_PREFIX=settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
        CACHE_KEY_PREFIX=settings.CACHES["default"]["KEY_PREFIX"],
        # Attachments in this run's own directory (tests/settings.py), written by daphne and read by the tests.
        MEDIA_ROOT=settings.MEDIA_ROOT,
        GENERATION_BACKEND="celery",
        INFERENCE_MAX_TOKENS="96",
        INFERENCE_TEMPERATURE="0",
        INFERENCE_THREADS="1",
        INFERENCE_INSTANCES="2",
        KNOWLEDGE_ANSWER_MODE="generative",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        WEBHOOK_BACKOFF_BASE="0.5",
        WEBHOOK_BACKOFF_MAX="2",
        # The tests' webhook receiver listens on 127.0.0.1, which production refuses.
        WEBHOOK_ALLOW_PRIVATE_NETWORKS="1",
    )


@pytest.fixture(scope="session")
def celery_worker_process(production_env, logs_dir):
    worker = stack.start_worker(production_env, logs_dir)
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def production_server(production_env, celery_worker_process, logs_dir):
    web, base_url = stack.start_web(production_env, logs_dir)
    yield base_url
    web.stop()


@pytest.fixture(scope="session")
def extractive_server(production_env, logs_dir):
    """A daphne on the same database and Redis answering in extractive mode (the default with the bundled model:
    the article's sentences, no model writing), generating replies in its own process: no second Celery worker,
    which would take the generative worker's jobs on a shared queue (the mode is read where replies are made)."""
    env = {**production_env, "KNOWLEDGE_ANSWER_MODE": "extractive", "GENERATION_BACKEND": "inprocess"}
    web, base_url = stack.start_web(env, logs_dir, name="daphne-extractive")
    yield base_url
    web.stop()


@pytest.fixture
def demo_knowledge(transactional_db):
    """The demo knowledge base (knowledge/demo: English and Chinese articles) in the database the servers use: the
    bot answers only from it (the database is emptied between end-to-end tests, so each imports it)."""
    out = io.StringIO()
    call_command("kb_import", str(settings.BASE_DIR / "knowledge" / "demo"), stdout=out)
    assert " 0 refused" in out.getvalue(), out.getvalue()


@pytest.fixture
def site(transactional_db, demo_knowledge):
    """A widget site, with the demo knowledge base (the database is emptied between end-to-end tests, so each makes
    its own)."""
    from chat.availability import BOT_FAILING_KEY
    from chat.models import Site

    # Nor does an engine failure in an earlier test (the bot then counts as failing for two minutes, in Redis) put
    # this test's widget offline.
    cache.delete(BOT_FAILING_KEY)

    return Site.objects.create(name="Acme shop", prechat_name="optional", prechat_email="optional")


@pytest.fixture
async def browser():
    """Debian's Chromium driven by Playwright's async API (its own browser download cannot work offline)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=stack.chromium_path(),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        await browser.close()
