"""The playground's retrieval test: staff see the passages a question finds (scores, threshold) and how the bot would
answer it, computed by the pipeline's knowledge step (chat.grounding.plan) without running a model."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from chat import strings
from chat.models import Site
from inference.engines import engine_reset
from knowledge.services import ArticleInput, article_save

pytestmark = pytest.mark.django_db

URL = "/playground/retrieval"

RETURNS = """## Return window

You can return items within 30 days of delivery for a full refund.

## Return shipping costs

Return shipping costs $6.90 per order for small items that ship in a parcel box.
"""

ZH_RETURNS = """## 退货运费

非质量问题退货，退货运费为每单15元。

## 退货期限

签收后30天内可申请退货。
"""

UK_GIFTS = """## Gift wrapping

We wrap gifts for £4 per order in the UK shop.
"""


@pytest.fixture(autouse=True)
def articles(settings):
    settings.KNOWLEDGE_SEMANTIC = False  # lexical scores only: no embedding model is loaded
    settings.KNOWLEDGE_ANSWER_MODE = "auto"
    uk = Site.objects.create(name="UK shop", allowed_origins="https://uk.shop.example")
    article_save(data=ArticleInput(slug="returns", title="Returns and refunds", body=RETURNS, tags=["returns"]))
    article_save(data=ArticleInput(slug="zh-returns", title="退货与退款", body=ZH_RETURNS, language="zh-CN"))
    article_save(data=ArticleInput(slug="uk-gifts", title="Gift wrapping", body=UK_GIFTS, site=uk.key))
    return uk


def ask(client, **body):
    return client.post(URL, json.dumps(body), content_type="application/json")


def test_an_english_question_shows_its_passages_the_threshold_and_the_extractive_answer(admin_client, settings):
    response = ask(admin_client, question="How much does return shipping cost?", language="en", mode="extractive")

    assert response.status_code == 200
    data = response.json()
    assert (data["language"], data["threshold"], data["searched"]) == ("en", settings.KNOWLEDGE_MIN_SCORE, True)
    assert (data["outcome"], data["outcome_label"], data["mode"], data["handed_off"]) == (
        "extractive",
        "extractive",
        "extractive",
        False,
    )
    best = data["passages"][0]
    assert (best["title"], best["heading"], best["relevant"], best["used"]) == (
        "Returns and refunds",
        "Return shipping costs",
        True,
        True,
    )
    assert "$6.90" in best["snippet"] and best["score"] >= data["threshold"] and best["lexical"] > 0
    assert best["semantic"] is None  # semantic search is off in this test
    scores = [p["score"] for p in data["passages"]]
    assert scores == sorted(scores, reverse=True)
    assert all(p["relevant"] == (p["score"] >= data["threshold"]) for p in data["passages"])
    assert "Returns and refunds" in data["answer"] and "$6.90" in data["answer"]  # no model needed
    assert data["sources"][0]["slug"] == "returns"


def test_a_chinese_question_in_generative_mode_leaves_the_answer_to_the_model(admin_client):
    response = ask(admin_client, question="退货运费多少钱？", language="zh", mode="generative")

    data = response.json()
    assert response.status_code == 200
    assert (data["language"], data["outcome"], data["mode"], data["answer"], data["needs_model"]) == (
        "zh",
        "generative",
        "generative",
        None,
        True,
    )
    assert data["passages"][0]["title"] == "退货与退款" and "15元" in data["passages"][0]["snippet"]
    assert data["passages"][0]["used"] and data["passages"][0]["relevant"]
    assert "model writes the answer" in data["note"] and "chat panel" in data["note"]


def test_a_chinese_question_is_searched_in_chinese_whatever_language_was_chosen(admin_client):
    data = ask(admin_client, question="退货运费多少钱", language="en", mode="extractive").json()

    assert (data["language_requested"], data["language"]) == ("en", "zh")
    assert data["outcome"] == "extractive" and "15元" in data["answer"]


def test_an_unrelated_question_is_no_knowledge_and_handed_off(admin_client, settings):
    data = ask(admin_client, question="Do you sell telescopes for astronomy?", language="en", mode="extractive").json()

    assert (data["outcome"], data["outcome_label"], data["handed_off"]) == (
        "no_knowledge",
        "no knowledge → handed off",
        True,
    )
    assert all(not p["relevant"] for p in data["passages"])
    assert data["answer"] == strings.text("no_knowledge", "en")


def test_a_question_about_the_customers_own_order_is_handed_off_without_searching(admin_client):
    data = ask(admin_client, question="Where is my order #48213?", language="en").json()

    assert (data["outcome"], data["outcome_label"], data["searched"], data["passages"]) == (
        "customer_specific",
        "customer-specific → handed off",
        False,
        [],
    )


def test_small_talk_needs_no_search(admin_client):
    data = ask(admin_client, question="thanks!", language="en", mode="extractive").json()

    assert (data["outcome"], data["outcome_label"], data["searched"]) == ("small_talk", "small talk", False)
    assert data["answer"] == strings.text("small_talk_thanks", "en")


def test_previous_turns_are_read_as_the_context_of_a_follow_up(admin_client):
    data = ask(
        admin_client,
        question="and how long do I have?",
        previous=["I want to return a lamp", "", "  "],
        language="en",
        mode="extractive",
    ).json()

    assert data["context"] == ["I want to return a lamp"]
    assert data["passages"][0]["title"] == "Returns and refunds"


def test_a_sites_own_articles_are_searched_only_for_that_site(admin_client, articles):
    question = {"question": "Do you offer gift wrapping?", "language": "en", "mode": "extractive"}

    everywhere = ask(admin_client, **question).json()
    for_uk = ask(admin_client, **question, site=articles.key).json()

    assert "Gift wrapping" not in [p["title"] for p in everywhere["passages"]]
    assert for_uk["passages"][0]["title"] == "Gift wrapping" and for_uk["outcome"] == "extractive"


def test_auto_mode_follows_the_engines_size(admin_client, fake_engine):
    data = ask(admin_client, question="How much does return shipping cost?", language="en", mode="auto").json()

    assert data["mode"] == "generative" and data["outcome"] == "generative"
    assert data["mode_reason"].startswith("auto:") and "trusted with facts" in data["mode_reason"]
    assert fake_engine.calls == []  # nothing was generated


def test_auto_mode_without_a_model_is_extractive(admin_client, settings):
    settings.INFERENCE_MODEL = "/nonexistent/no-model-here.gguf"
    engine_reset()
    try:
        data = ask(admin_client, question="How much does return shipping cost?", language="en", mode="auto").json()
    finally:
        engine_reset()

    assert data["mode"] == "extractive" and data["mode_reason"].startswith("auto: no model could be loaded")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"question": ""}, "Write a question"),
        ({"question": "   \n "}, "Write a question"),
        ({"question": "x" * 2001}, "limit is 2,000"),
        ({"question": "returns", "previous": ["y" * 2001]}, "previous turn is longer"),
        ({"question": "returns", "site": "no-such-site"}, "No site has the key"),
        ({"question": "returns", "engine": "nope"}, "No engine named"),
    ],
)
def test_a_question_that_cannot_be_asked_is_a_400_with_the_reason(admin_client, body, message):
    response = ask(admin_client, **body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_question" and message in error["message"]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[]",
        b'{"question": 5}',
        b'{"question": "a", "mode": "x"}',
        b'{"question": "a", "previous": "one line"}',
    ],
)
def test_a_malformed_request_is_a_400_not_a_500(admin_client, raw):
    response = admin_client.post(URL, raw, content_type="application/json")

    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"


def test_only_staff_may_run_the_retrieval_test(client):
    assert ask(client, question="returns").status_code == 401
    get_user_model().objects.create_user("shopper", password="pw-shop-123")
    client.login(username="shopper", password="pw-shop-123")
    response = ask(client, question="returns")
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert client.get("/playground/").status_code == 403  # signed in, without the playground permission


def test_the_retrieval_test_needs_the_csrf_token(django_user_model):
    user = django_user_model.objects.create_user("staff1", password="pw-staff-123", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="use_playground"))
    client = Client(enforce_csrf_checks=True)
    client.login(username="staff1", password="pw-staff-123")
    assert ask(client, question="returns", mode="extractive").status_code == 403
    client.get("/playground/")  # sets the CSRF cookie, as the page does for its script
    token = client.cookies["csrftoken"].value
    response = client.post(
        URL, json.dumps({"question": "returns", "mode": "extractive"}), "application/json", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 200


def test_the_playground_page_has_the_retrieval_panel_with_the_sites(admin_client, articles):
    page = admin_client.get("/playground/").content.decode()

    assert 'id="rt-form"' in page and 'id="rt-passages"' in page
    assert f'<option value="{articles.key}">UK shop ({articles.key})</option>' in page
    assert 'maxlength="2000"' in page
