"""Settings for the test suite: the production shape (PostgreSQL, Redis channel layer, Celery), isolated names."""

import os
import tempfile

# Parallel test processes (pytest-xdist, `make test-fast`) each get a Redis database of their own, since tests clear
# the cache (FLUSHDB): gw0 uses 9, gw1 10, and so on. Set here rather than defaulted: workers inherit the
# environment of the process that started them. Their names (queue, channel prefix, test database) differ too.
# TEST_REDIS_DB moves the first database (two developers' runs on one Redis at once: 9 and 1, say).
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_REDIS_DB = int(os.environ.get("TEST_REDIS_DB", "9"))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/helpdesk")
os.environ["REDIS_URL"] = f"{os.environ.get('TEST_REDIS_SERVER', 'redis://127.0.0.1:6379')}/{_REDIS_DB + _WORKER}"

from helpdesk.settings import *  # noqa: E402, F403

# Queue and channel-layer names of this test run, so parallel runs and a dev server on the same Redis don't mix.
_RUN = f"test{os.getpid()}"
CELERY_TASK_DEFAULT_QUEUE = f"helpdesk-{_RUN}"
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"asgi-{_RUN}"  # noqa: F405
CACHES["default"]["KEY_PREFIX"] = f"helpdesk-{_RUN}"  # noqa: F405
CHAT_HELLO_TIMEOUT = 2.0
# An agent's reply is emailed to an away customer after this delay (chat.email): short, so an in-process timer never
# outlives a test that waits for its tasks (in_process_wait).
EMAIL_REPLY_DELAY = 0.2
# Attachments of this run in a directory of their own, shared with the server processes it starts (they inherit the
# environment), so an upload to one process is found by another.
MEDIA_ROOT = os.environ.setdefault("HELPDESK_TEST_MEDIA_ROOT", tempfile.mkdtemp(prefix="helpdesk-media-"))
# The test database too, so two test runs on one machine (a developer's and an editor's) never collide.
DATABASES["default"]["TEST"] = {"NAME": f"test_helpdesk_{_RUN}"}  # noqa: F405

# The fast loop (`make test-fast`, HELPDESK_TEST_FAST=1) starts no server process, so the passwords it makes need
# only this process to check them: a fast hasher instead of 1,000,000 PBKDF2 rounds per user. The configured model
# points nowhere, so a test that reaches the real engine through the settings fails here (it belongs in the slow set).
if os.environ.get("HELPDESK_TEST_FAST"):
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    INFERENCE_MODEL = "/nonexistent/the-fast-loop-has-no-model.gguf"
