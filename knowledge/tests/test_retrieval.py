"""Retrieval: the passages that answer a customer's turn, in the customer's language and market, with nothing returned
when nothing is relevant. Lexical by default here; the cases marked so run again with semantic search on."""

import pytest

from knowledge import services
from knowledge.models import Article, Passage
from knowledge.retrieval import retrieve
from knowledge.services import ArticleInput

pytestmark = pytest.mark.django_db

# Each market has its own facts: the US store's return shipping costs $6.90, the Chinese store's 15元.
ARTICLES = [
    ArticleInput(
        slug="returns",
        title="Returns and refunds",
        language="en",
        tags=["returns", "refunds"],
        body="""## Return window

You can return most items within 30 days of delivery for a full refund.

## Return shipping costs

Return shipping costs $6.90 per order. Returns are free when the item arrived damaged.""",
    ),
    ArticleInput(
        slug="shipping",
        title="Shipping and delivery",
        language="en",
        tags=["shipping", "delivery", "express"],
        body="""## Standard shipping

Standard shipping takes 5-7 business days and costs $7.95 per order.

## Express shipping

Express delivers in 2 business days for $24.95 per order.""",
    ),
    ArticleInput(
        slug="warranty",
        title="Product warranty",
        language="en",
        tags=["warranty"],
        body="Furniture comes with a 2 year warranty against manufacturing defects.",
    ),
    # Created before the returns article, so it wins ties between the two (retrieval breaks them by passage id).
    ArticleInput(
        slug="zh-shipping",
        title="配送与运费",
        language="zh",
        tags=["配送", "运费", "包邮"],
        body="""## 标准快递

标准快递3至5天送达，运费为每单10元。

## 包邮

订单实付金额满299元即可包邮。""",
    ),
    ArticleInput(
        slug="zh-returns",
        title="退货与退款",
        language="zh",
        tags=["退货", "退款", "退货运费"],
        body="""## 退货期限

商品支持签收后15天内退货。

## 退货运费

非质量问题退货，小件商品的退货运费为每单15元，由顾客承担。""",
    ),
    ArticleInput(
        slug="uk-returns",
        title="Returns in the UK",
        language="en",
        site="uk",
        body="UK customers drop their parcel at any Royal Mail post office, free of charge.",
    ),
    ArticleInput(
        slug="gift-cards",
        title="Gift cards",
        language="en",
        published=False,
        body="Gift cards never expire and can be spent online or in our stores.",
    ),
]


@pytest.fixture
def kb(request, settings) -> dict[str, int]:
    """The articles above, indexed with semantic search on or off (embeddings are computed when they are indexed)."""
    settings.KNOWLEDGE_SEMANTIC = getattr(request, "param", False)
    return {data.slug: services.article_save(data=data, source="test")[0].pk for data in ARTICLES}


both_modes = pytest.mark.parametrize("kb", [False, True], ids=["lexical", "semantic"], indirect=True)


def slugs(result) -> list[str]:
    return [hit.slug for hit in result.hits]


@both_modes
def test_an_english_question_finds_the_english_article(kb):
    result = retrieve("How much does return shipping cost?", language="en")
    assert result.language == "en"
    assert result.best is not None and result.best.slug == "returns"
    assert "$6.90" in result.best.text


@both_modes
@pytest.mark.parametrize(
    ("question", "slug", "fact"),
    [("买多少钱包邮？", "zh-shipping", "299元"), ("退货运费多少钱？", "zh-returns", "15元")],
)
def test_a_chinese_question_finds_the_chinese_article(kb, question, slug, fact):
    result = retrieve(question, language="zh")
    assert result.language == "zh"
    assert result.best is not None and result.best.slug == slug
    assert fact in result.best.text


@both_modes
def test_a_chinese_question_in_an_english_conversation_searches_the_chinese_articles(kb):
    result = retrieve("退货运费多少钱？", language="en")
    assert result.language == "zh"
    assert result.best is not None and result.best.slug == "zh-returns"
    assert not {"returns", "shipping"} & set(slugs(result))


def test_a_language_without_articles_falls_back_to_the_configured_one(kb, settings):
    settings.KNOWLEDGE_FALLBACK_LANGUAGE = "en"
    result = retrieve("How much does return shipping cost?", language="fr")
    assert result.language == "en" and result.best.slug == "returns"


def test_a_sites_own_article_is_found_only_for_that_site(kb):
    question = "Can I drop my return at a Royal Mail post office?"
    assert retrieve(question, language="en", site="uk").best.slug == "uk-returns"
    for site in ("", "us"):
        assert "uk-returns" not in slugs(retrieve(question, language="en", site=site))


def test_articles_for_every_site_are_found_for_any_site(kb):
    for site in ("", "uk", "us"):
        assert retrieve("How much does return shipping cost?", language="en", site=site).best.slug == "returns"


def test_an_unpublished_article_is_never_found_until_it_is_published(kb):
    question = "Do gift cards expire?"
    assert "gift-cards" not in slugs(retrieve(question, language="en"))
    assert retrieve(question, language="en").best is None

    services.articles_publish(ids=[kb["gift-cards"]], published=True)
    assert retrieve(question, language="en").best.slug == "gift-cards"

    services.articles_publish(ids=[kb["gift-cards"]], published=False)
    assert "gift-cards" not in slugs(retrieve(question, language="en"))


def test_a_follow_up_is_read_with_the_earlier_turn(kb):
    result = retrieve("and for express?", language="en", context=["How long does standard shipping take?"])
    assert result.best is not None and result.best.slug == "shipping"
    assert result.best.heading == "Express shipping"


@both_modes
def test_the_earlier_turn_decides_between_articles_that_match_the_follow_up_alike(kb):
    def returns_rank_and_score(result) -> tuple[int, float]:
        rank = slugs(result).index("zh-returns")
        return rank, result.hits[rank].score

    alone = retrieve("运费谁出？", language="zh")
    followed = retrieve("运费谁出？", language="zh", context=["我想退货"])

    assert alone.hits[0].slug == "zh-shipping"  # 运费 is in both articles: alone, shipping wins
    assert followed.best is not None and followed.best.slug == "zh-returns"
    assert returns_rank_and_score(followed)[1] > returns_rank_and_score(alone)[1]


@both_modes
@pytest.mark.parametrize(
    ("question", "language"),
    [("what is the weather in Paris", "en"), ("Who won the football match yesterday?", "en"), ("今天天气怎么样", "zh")],
)
def test_an_unrelated_question_finds_nothing_relevant(kb, question, language):
    result = retrieve(question, language=language)
    assert result.best is None and result.relevant == []


def test_a_question_of_stop_words_only_finds_nothing(kb):
    result = retrieve("Hi, can you tell me how?", language="en")
    assert result.query_terms == () and result.hits == [] and result.best is None


@both_modes
def test_scores_are_between_zero_and_one(kb, settings):
    questions = ["How much does return shipping cost?", "and for express?", "warranty", "what is the weather"]
    hits = [hit for q in questions for hit in retrieve(q, language="en", context=["shipping"]).hits]
    hits += [hit for q in ["退货运费多少钱？", "包邮"] for hit in retrieve(q, language="zh").hits]
    assert hits
    for hit in hits:
        assert 0.0 <= hit.score <= 1.0 and 0.0 <= hit.lexical <= 1.0
        if settings.KNOWLEDGE_SEMANTIC:
            assert hit.semantic is not None and 0.0 <= hit.semantic <= 1.0
        else:
            assert hit.semantic is None and hit.score == hit.lexical
    assert any(hit.lexical == 1.0 for hit in hits)  # every term of "warranty" is in its article


def test_hits_come_best_first(kb):
    result = retrieve("How much does return shipping cost?", language="en")
    scores = [hit.score for hit in result.hits]
    assert scores == sorted(scores, reverse=True) and len(result.hits) <= 5


@both_modes
def test_an_edited_article_is_found_with_its_new_text(kb):
    assert "$6.90" in retrieve("How much does return shipping cost?", language="en").best.text

    edited = next(a for a in ARTICLES if a.slug == "returns")
    body = edited.body.replace("$6.90", "$7.50")
    services.article_save(data=ArticleInput(**{**edited.__dict__, "body": body}))

    result = retrieve("How much does return shipping cost?", language="en")
    assert "$7.50" in result.best.text
    assert not any("$6.90" in hit.text for hit in result.hits)


def test_a_new_article_is_found_without_restarting(kb):
    assert retrieve("Do you sell sofa covers?", language="en").best is None
    services.article_save(
        data=ArticleInput(slug="covers", title="Sofa covers", body="We sell washable sofa covers for every sofa.")
    )
    assert retrieve("Do you sell sofa covers?", language="en").best.slug == "covers"


def test_a_deleted_article_is_no_longer_found(kb):
    services.articles_delete(ids=[kb["warranty"]])
    assert "warranty" not in slugs(retrieve("How long is the warranty?", language="en"))


@pytest.mark.parametrize("kb", [True], ids=["semantic"], indirect=True)
def test_a_passage_committed_after_the_cache_was_built_waits_for_the_next_version(kb):
    assert retrieve("How long is the warranty?", language="en").best.slug == "warranty"
    # Another process's save, between this process's version check and its full-text query: the row is there, the
    # version this process read is not yet the new one.
    warranty = Article.objects.get(slug="warranty")
    Passage.objects.create(article=warranty, position=1, text="Warranty claims by email.", tokens="warranti claim")

    result = retrieve("How do I make a warranty claim?", language="en")
    assert result.best is not None and result.best.slug == "warranty"
    assert all(hit.text != "Warranty claims by email." for hit in result.hits)
