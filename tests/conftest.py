"""Server processes for the end-to-end tests: the production shape on the test database, and a browser."""

from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests import stack


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stack-logs")


@pytest.fixture(scope="session")
def production_env(django_db_setup, django_db_blocker) -> dict:
    """The environment of the production shape, pointed at the test database and this run's queue and prefix."""
    with django_db_blocker.unblock():
        db = connection.settings_dict
    return stack.process_env(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        CELERY_QUEUE=settings.CELERY_TASK_DEFAULT_QUEUE,
        CHANNEL_LAYER_PREFIX=settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
        CACHE_KEY_PREFIX=settings.CACHES["default"]["KEY_PREFIX"],
        GENERATION_BACKEND="celery",
        INFERENCE_MAX_TOKENS="96",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        WEBHOOK_BACKOFF_BASE="0.5",
        WEBHOOK_BACKOFF_MAX="2",
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


@pytest.fixture
def site(transactional_db):
    """A widget site (the database is emptied between end-to-end tests, so each makes its own)."""
    from chat.models import Site

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
