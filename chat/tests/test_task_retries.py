"""A reply task whose database or Redis is down is tried again later instead of being acknowledged and dropped."""

import pytest
import redis.exceptions
from django.db import OperationalError

from chat import reply, tasks


@pytest.mark.parametrize(
    "outage",
    [OperationalError("connection refused"), redis.exceptions.ConnectionError("Error 111 connecting to redis:6379")],
)
def test_a_reply_task_during_an_outage_is_retried_not_dropped(monkeypatch, outage):
    """The customer's message is stored and acknowledged: failing its reply for good would leave it unanswered."""
    calls = []

    def down(**kwargs):
        calls.append(kwargs)
        raise outage

    monkeypatch.setattr(reply, "reply_generate", down)
    tasks.reply_generate_task.apply(args=(42,))  # eager: the retries run at once instead of after their countdown
    # Tried again (before: once, then acknowledged and gone), as often as the outage retries allow.
    assert len(calls) == 1 + tasks.OUTAGE_RETRY["max_retries"]
    assert calls[-1] == {"customer_message_id": 42, "overrides": None, "queued_at": None}


def test_a_bug_in_a_reply_task_is_not_retried(monkeypatch):
    calls = []

    def broken(**kwargs):
        calls.append(kwargs)
        raise KeyError("a bug")

    monkeypatch.setattr(reply, "reply_generate", broken)
    assert tasks.reply_generate_task.apply(args=(42,)).state == "FAILURE" and len(calls) == 1
