"""Settings for the test suite: the production shape (PostgreSQL, Redis channel layer, Celery), isolated names."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/helpdesk")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/9")

from helpdesk.settings import *  # noqa: F403

# Queue and channel-layer names of this test run, so parallel runs and a dev server on the same Redis don't mix.
_RUN = f"test{os.getpid()}"
CELERY_TASK_DEFAULT_QUEUE = f"helpdesk-{_RUN}"
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"asgi-{_RUN}"  # noqa: F405
CACHES["default"]["KEY_PREFIX"] = f"helpdesk-{_RUN}"  # noqa: F405
CHAT_HELLO_TIMEOUT = 2.0
# The test database too, so two test runs on one machine (a developer's and an editor's) never collide.
DATABASES["default"]["TEST"] = {"NAME": f"test_helpdesk_{_RUN}"}  # noqa: F405
