"""The knowledge-gaps page: the questions the bot could not answer, grouped by their text, for staff who may read
articles; and a draft article made from an agent's answer, for those who may add them."""

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from chat import services
from chat.models import Conversation, HandoffReason, Site
from chat.tests.test_queries import queries_exactly
from helpdesk.selectors import knowledge_gaps, question_normalize
from knowledge.models import Article

pytestmark = pytest.mark.django_db

URL = "/console/gaps/"


@pytest.fixture(autouse=True)
def no_embeddings(settings):
    settings.KNOWLEDGE_SEMANTIC = False  # a draft is indexed without loading the embedding model


@pytest.fixture(autouse=True)
def no_reply(monkeypatch):
    monkeypatch.setattr("chat.services.replies.reply_enqueue", lambda **kw: None)


@pytest.fixture
def agent():
    user = get_user_model().objects.create_user("agent1", password="pw-agent-123")
    user.user_permissions.add(Permission.objects.get(codename="use_console"))
    return user


def staff(username: str, *codenames: str):
    user = get_user_model().objects.create_user(username, password="pw-staff-123", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="knowledge", codename__in=codenames))
    return user


@pytest.fixture
def reader(client):
    staff("reader", "view_article")
    client.login(username="reader", password="pw-staff-123")
    return client


@pytest.fixture
def editor(client):
    staff("editor", "view_article", "add_article", "change_article")
    client.login(username="editor", password="pw-staff-123")
    return client


def handed_off(question: str, *, reason=HandoffReason.NO_KNOWLEDGE, language="en", site=None, point_at=True):
    """A conversation whose customer asked `question` and was handed off (the handoff names the message)."""
    conversation, _ = services.conversation_start(language=language, site=site)
    message, _ = services.message_post_customer(conversation_id=conversation.id, content=question)
    services.conversation_hand_off(
        conversation_id=conversation.id, reason=reason, message_id=message.id if point_at else None
    )
    return conversation


def answered(conversation, agent, *replies: str, resolve=True):
    services.conversation_assign(conversation_id=conversation.id, agent=agent, expected_status="queued")
    for reply in replies:
        services.message_post_agent(conversation_id=conversation.id, agent=agent, content=reply)
    if resolve:
        services.conversation_resolve(conversation_id=conversation.id, agent=agent)
    return conversation


def test_questions_are_normalised_by_case_whitespace_and_trailing_punctuation():
    assert question_normalize("  Can I  return\na SOFA?! ") == "can i return a sofa"
    assert question_normalize("可以退沙发吗？") == "可以退沙发吗"
    assert question_normalize("…") == ""


def test_two_conversations_with_the_same_question_are_one_row_with_both_links(reader):
    first = handed_off("Can I return a sofa?")
    second = handed_off("can i  return a SOFA", reason=HandoffReason.CUSTOMER_REQUEST, language="en-GB")
    other = handed_off("Do you ship to Mars?", reason=HandoffReason.MODEL_DEFERRED)
    handed_off("My parcel is late", reason=HandoffReason.ENGINE_FAILURE)  # not a knowledge gap

    response = reader.get(URL)

    assert response.status_code == 200
    groups = response.context["gaps"]["groups"]
    assert [(g["question"], g["count"]) for g in groups] == [("can i return a SOFA", 2), ("Do you ship to Mars?", 1)]
    sofa = groups[0]
    assert sofa["languages"] == ["en"]
    assert set(sofa["reasons"]) == {"Nothing relevant is known", "The customer asked for a person"}
    assert [c["id"] for c in sofa["conversations"]] == [second.id, first.id]  # newest first
    assert sofa["last_seen"] == Conversation.objects.get(pk=second.id).handed_off_at
    page = response.content.decode()
    for conversation in (first, second, other):
        assert f'href="/admin/chat/conversation/{conversation.id}/change/"' in page
    assert "My parcel is late" not in page


def test_without_a_pointed_message_the_question_is_the_last_customer_message_before_the_handoff(reader):
    conversation, _ = services.conversation_start()
    services.message_post_customer(conversation_id=conversation.id, content="hello")
    services.message_post_customer(conversation_id=conversation.id, content="Can I pay with crypto?")
    services.conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.CUSTOMER_REQUEST)

    groups = reader.get(URL).context["gaps"]["groups"]

    assert [g["question"] for g in groups] == ["Can I pay with crypto?"]


def test_the_period_and_language_filters(reader):
    handed_off("Can I return a sofa?")
    handed_off("可以退沙发吗？", language="zh-CN")
    old = handed_off("Do you price match?")
    Conversation.objects.filter(pk=old.id).update(handed_off_at=timezone.now() - datetime.timedelta(days=40))

    def questions(query: str) -> list[str]:
        return sorted(g["question"] for g in reader.get(URL + query).context["gaps"]["groups"])

    assert questions("") == ["Can I return a sofa?", "可以退沙发吗？"]  # 30 days by default
    assert questions("?days=90") == ["Can I return a sofa?", "Do you price match?", "可以退沙发吗？"]
    assert questions("?days=7&language=zh") == ["可以退沙发吗？"]
    assert questions("?days=90&language=en") == ["Can I return a sofa?", "Do you price match?"]
    assert questions("?days=1000&language=<script>") == ["Can I return a sofa?", "可以退沙发吗？"]  # ignored


def test_the_gaps_are_read_in_one_query_however_many_conversations(agent):
    for n in range(6):
        conversation = handed_off(f"Question number {n % 3}?", point_at=n % 2 == 0)
        if n < 2:
            answered(conversation, agent, "An answer.")

    with queries_exactly(1):
        gaps = knowledge_gaps(days=30)

    assert [g["count"] for g in gaps["groups"]] == [2, 2, 2] and gaps["handoffs"] == 6
    assert sum(c["draftable"] for g in gaps["groups"] for c in g["conversations"]) == 2


def test_only_the_newest_handoffs_are_read(reader):
    for n in range(3):
        handed_off(f"Question {n}")

    gaps = knowledge_gaps(days=30, limit=2)

    assert [g["question"] for g in gaps["groups"]] == ["Question 2", "Question 1"] and gaps["truncated"]


def test_the_page_is_refused_without_the_permission_to_view_articles(client):
    assert client.get(URL)["Location"].startswith("/accounts/login/")
    staff("nobody")
    client.login(username="nobody", password="pw-staff-123")
    assert client.get(URL).status_code == 403
    assert 'href="/console/gaps/"' not in client.get("/playground/").content.decode()


def test_the_staff_nav_links_the_page_for_those_who_may_see_it(reader):
    page = reader.get(URL).content.decode()

    assert 'href="/console/gaps/" aria-current="page">Knowledge gaps</a>' in page


def test_drafting_from_a_resolved_conversation_makes_an_unpublished_article_with_the_agents_answer(editor, agent):
    site = Site.objects.create(name="Shop", allowed_origins="https://shop.example")
    question = "Can I return a sofa after 40 days? " + "It was delivered late and the box was damaged. " * 4
    conversation = handed_off(question, language="en-US", site=site)
    answered(conversation, agent, "Yes: furniture can be returned within 60 days.", "Pickup costs $49.")
    page = editor.get(URL).content.decode()
    draft_url = f"/console/gaps/{conversation.id}/draft"
    assert f'action="{draft_url}"' in page and "Draft an article from this conversation" in page

    response = editor.post(draft_url)

    article = Article.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/admin/knowledge/article/{article.pk}/change/"
    assert article.published is False and article.source == "gap"
    assert article.body == "Yes: furniture can be returned within 60 days.\n\nPickup costs $49."
    assert len(article.title) == 120 and article.title.startswith("Can I return a sofa after 40 days?")
    assert article.title.endswith("…")
    assert (article.language, article.site) == ("en", site.key)
    assert article.passages.exists()  # indexed, ready once published
    assert editor.get(response["Location"]).status_code == 200  # the admin opens it for review


def test_no_draft_button_or_draft_without_the_permission_to_add_articles(reader, agent):
    conversation = answered(handed_off("Can I return a sofa?"), agent, "Yes, within 60 days.")
    assert "Draft an article" not in reader.get(URL).content.decode()

    response = reader.post(f"/console/gaps/{conversation.id}/draft")

    assert response.status_code == 403 and not Article.objects.exists()


def test_a_conversation_an_agent_has_not_answered_and_resolved_cannot_become_a_draft(editor, agent):
    unanswered = handed_off("Can I return a sofa?")
    open_one = answered(handed_off("Do you ship to Mars?"), agent, "No.", resolve=False)
    page = editor.get(URL).content.decode()
    assert "Draft an article" not in page

    for conversation in (unanswered, open_one):
        assert editor.post(f"/console/gaps/{conversation.id}/draft").status_code == 409
    assert editor.post("/console/gaps/00000000-0000-0000-0000-000000000000/draft").status_code == 404
    assert editor.get(f"/console/gaps/{unanswered.id}/draft").status_code == 405
    assert not Article.objects.exists()


def test_the_draft_button_needs_the_csrf_token(agent):
    staff("editor2", "view_article", "add_article")
    conversation = answered(handed_off("Can I return a sofa?"), agent, "Yes, within 60 days.")
    client = Client(enforce_csrf_checks=True)
    client.login(username="editor2", password="pw-staff-123")

    assert client.post(f"/console/gaps/{conversation.id}/draft").status_code == 403
    assert not Article.objects.exists()
