"""How many database queries the hot paths make: a customer message, the widget's settings, a reply's storage, the
agents' queue and the "can anyone answer?" check. The counts are exact, so a new query on these paths is a choice
someone makes on purpose (and writes down here), never an accident of a loop."""

from contextlib import contextmanager

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat import services
from chat.models import Site

pytestmark = pytest.mark.django_db

SHOP = "https://shop.example.com"


@contextmanager
def queries_exactly(expected: int):  # also used by helpdesk's tests
    """The block runs `expected` SQL statements (savepoints of nested atomic blocks aside)."""
    with CaptureQueriesContext(connection) as captured:
        yield
    statements = [q["sql"] for q in captured.captured_queries if q["sql"].split()[0] not in ("SAVEPOINT", "RELEASE")]
    assert len(statements) == expected, "\n".join(statements)


@pytest.fixture
def site():
    return Site.objects.create(name="Shop", allowed_origins=SHOP)


@pytest.fixture
def no_reply(monkeypatch):
    monkeypatch.setattr("chat.services.replies.reply_enqueue", lambda **kw: None)


def test_a_customer_message_takes_three_queries(site, no_reply, django_capture_on_commit_callbacks):
    conversation, _ = services.conversation_start(site=site)
    # The conversation and its site under the row lock, the sequence number, the message.
    with queries_exactly(3), django_capture_on_commit_callbacks(execute=True):
        services.message_post_customer(conversation_id=conversation.id, content="Where is my parcel?")
    # A resend with the same client id: the lock and the lookup that finds it.
    services.message_post_customer(conversation_id=conversation.id, content="again", client_id="c1")
    with queries_exactly(2):
        services.message_post_customer(conversation_id=conversation.id, content="again", client_id="c1")


def test_the_widget_settings_take_three_queries_however_many_agents(client, site):
    from helpdesk.models import AgentPresence

    for n in range(5):
        agent = get_user_model().objects.create_user(f"agent{n}")
        AgentPresence.objects.create(user=agent, status="online", connections=1, capacity=0)
    # The site, its hours, and one query for whether any agent has room.
    with queries_exactly(3):
        response = client.get(f"/widget/v1/sites/{site.key}", HTTP_ORIGIN=SHOP)
    assert response.status_code == 200 and response.json()["availability"]["agents_online"] is False


def test_storing_a_first_reply_takes_five_queries(site, no_reply, django_capture_on_commit_callbacks):
    conversation, _ = services.conversation_start(site=site)
    message, _ = services.message_post_customer(conversation_id=conversation.id, content="hello")
    reply = services.reply_start(customer_message_id=message.pk)
    stats = services.ReplyStats(engine="fake", prompt_tokens=9, completion_tokens=3, ttft_ms=40, tokens_per_s=50.0)
    # The reply's conversation, the row lock, the reply as it is now (a handoff may have withdrawn it), the update;
    # the first reply also stores the bot's first response time on the conversation (a reports figure).
    with queries_exactly(5), django_capture_on_commit_callbacks(execute=True):
        services.reply_complete(reply_id=reply.pk, content="Hi!", stats=stats)
