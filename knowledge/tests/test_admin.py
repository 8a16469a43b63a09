"""Staff manage articles in the admin: every save is validated and indexed by knowledge.services, the preview renders
Markdown without running HTML, and publishing tells every process's retrieval cache."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from knowledge import services
from knowledge.models import Article, IndexVersion, Passage
from knowledge.retrieval import retrieve
from knowledge.services import ArticleInput

pytestmark = pytest.mark.django_db

BODY = """## Return shipping

Return shipping costs **$6.90** per order, see [the label page](https://shop.example/labels).

<script>alert("xss")</script>

<img src=x onerror=alert(1)> and [a trap](javascript:alert(1))
"""


@pytest.fixture(autouse=True)
def lexical(settings):
    settings.KNOWLEDGE_SEMANTIC = False  # the admin is the subject here, not the embeddings


@pytest.fixture
def admin_client() -> Client:
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def article() -> Article:
    return services.article_save(data=ArticleInput(slug="returns", title="Returns", body=BODY, tags=["returns"]))[0]


def form_data(**changes) -> dict:
    data = {
        "title": "Returns",
        "slug": "returns",
        "language": "en",
        "site": "",
        "tags": "returns, refunds",
        "url": "",
        "is_faq": "",
        "published": "on",
        "body": "## Return window\n\nYou can return items within 30 days.\n\n## Refunds\n\nRefunds take 5 days.",
    }
    return {**data, **changes}


def test_the_article_list_shows_articles_with_their_passage_count(admin_client, article):
    services.article_save(
        data=ArticleInput(slug="zh-returns", title="退货与退款", body="退货期限15天。", language="zh")
    )
    response = admin_client.get("/admin/knowledge/article/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "Returns" in page and "退货与退款" in page and "returns" in page
    assert f'<td class="field-passage_count">{article.passages.count()}</td>' in page
    assert "Curated answer" in page  # the is_faq column, by its name


def test_the_article_list_filters_by_language_and_searches_bodies(admin_client, article):
    services.article_save(
        data=ArticleInput(slug="zh-returns", title="退货与退款", body="退货期限15天。", language="zh")
    )
    page = admin_client.get("/admin/knowledge/article/?language=zh").content.decode()
    assert "退货与退款" in page and ">Returns<" not in page
    page = admin_client.get("/admin/knowledge/article/?q=6.90").content.decode()
    assert ">Returns<" in page and "退货与退款" not in page


def test_the_change_page_previews_markdown_and_escapes_html(admin_client, article):
    response = admin_client.get(f"/admin/knowledge/article/{article.pk}/change/")
    page = response.content.decode()
    assert response.status_code == 200
    preview = page[page.index('<div class="knowledge-preview">') :]
    assert "<h2>Return shipping</h2>" in preview and "<strong>$6.90</strong>" in preview
    assert '<a href="https://shop.example/labels" rel="noopener nofollow">the label page</a>' in preview
    assert "&lt;script&gt;alert(&quot;xss&quot;)&lt;/script&gt;" in preview
    assert "&lt;img src=x onerror=alert(1)&gt;" in preview
    assert "<script>alert" not in page and "<img src=x" not in page and 'href="javascript:' not in page


def test_the_change_page_lists_the_passages_as_retrieval_sees_them(admin_client, article):
    page = admin_client.get(f"/admin/knowledge/article/{article.pk}/change/").content.decode()
    passage = article.passages.first()
    assert "Passages, as retrieval sees them" in page
    assert f"<td>{len(passage.tokens.split())}</td>" in page
    assert "Return shipping costs $6.90 per order, see the label page (https://shop.example/labels)." in page
    assert "&lt;script&gt;" in page  # a passage's text is escaped too


def test_adding_an_article_in_the_admin_indexes_its_passages(admin_client):
    response = admin_client.post("/admin/knowledge/article/add/", form_data(tags="returns，退货, refunds"))
    assert response.status_code == 302
    article = Article.objects.get(slug="returns")
    assert (article.source, article.tags) == ("admin", ["returns", "退货", "refunds"])
    assert [(p.heading, p.text) for p in article.passages.all()] == [
        ("Return window", "You can return items within 30 days."),
        ("Refunds", "Refunds take 5 days."),
    ]
    assert retrieve("How long do refunds take?", language="en").best.slug == "returns"


def test_editing_an_article_in_the_admin_re_indexes_it(admin_client, article):
    version = IndexVersion.objects.get().version
    body = "## Return shipping\n\nReturn shipping costs $7.50 per order."
    response = admin_client.post(
        f"/admin/knowledge/article/{article.pk}/change/", form_data(body=body, language="en-GB")
    )
    assert response.status_code == 302
    article.refresh_from_db()
    assert article.language == "en" and article.tags == ["returns", "refunds"]  # the tag's base, the text as a list
    assert [p.text for p in article.passages.all()] == ["Return shipping costs $7.50 per order."]
    assert not Passage.objects.filter(text__contains="$6.90").exists()
    assert IndexVersion.objects.get().version > version
    assert "$7.50" in retrieve("How much does return shipping cost?", language="en").best.text


def test_the_tags_field_shows_the_tags_comma_separated(admin_client, article):
    page = admin_client.get(f"/admin/knowledge/article/{article.pk}/change/").content.decode()
    assert 'name="tags" value="returns"' in page


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"language": "english"}, "language &#x27;english&#x27; is not a language code such as en or zh"),
        ({"body": "   "}, "This field is required."),
        ({"slug": "returns and more"}, "Enter a valid “slug”"),
        ({"url": "ftp://shop.example/returns"}, "url &#x27;ftp://shop.example/returns&#x27; is not an http(s) address"),
        ({"url": "not a url"}, "Enter a valid URL."),
    ],
)
def test_an_invalid_article_is_shown_back_with_its_error_and_not_saved(admin_client, changes, message):
    response = admin_client.post("/admin/knowledge/article/add/", form_data(**changes))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Article.objects.exists() and not Passage.objects.exists()


def test_an_invalid_edit_keeps_the_stored_article_and_its_passages(admin_client, article):
    passages = list(article.passages.values_list("id", flat=True))
    response = admin_client.post(f"/admin/knowledge/article/{article.pk}/change/", form_data(language="english"))
    assert response.status_code == 200 and "is not a language code" in response.content.decode()
    article.refresh_from_db()
    assert article.language == "en" and article.body == BODY.strip()
    assert list(article.passages.values_list("id", flat=True)) == passages


def test_a_slug_already_used_is_refused(admin_client, article):
    response = admin_client.post("/admin/knowledge/article/add/", form_data(title="Other"))
    assert response.status_code == 200 and "Article with this Slug already exists." in response.content.decode()
    assert Article.objects.count() == 1


def test_staff_without_knowledge_permissions_are_refused(article):
    user = get_user_model().objects.create_user("agent", "agent@example.com", "pw", is_staff=True)
    client = Client()
    client.force_login(user)
    for path in ("/admin/knowledge/article/", f"/admin/knowledge/article/{article.pk}/change/"):
        assert client.get(path).status_code == 403
    assert client.post(f"/admin/knowledge/article/{article.pk}/change/", form_data(body="Hacked.")).status_code == 403
    assert Article.objects.get().body == BODY.strip()


def test_staff_who_may_only_view_articles_are_not_offered_the_publish_actions(article):
    user = get_user_model().objects.create_user("reader", "reader@example.com", "pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_article"))
    client = Client()
    client.force_login(user)
    page = client.get("/admin/knowledge/article/").content.decode()
    assert "Returns" in page and 'value="publish"' not in page and 'value="unpublish"' not in page

    client.post("/admin/knowledge/article/", {"action": "unpublish", "_selected_action": [article.pk]})
    assert Article.objects.get().published


def test_the_publish_actions_change_published_and_bump_the_index_version(admin_client, article):
    other = services.article_save(data=ArticleInput(slug="hours", title="Hours", body="Open daily from 9 to 5."))[0]
    assert retrieve("How much does return shipping cost?", language="en").best.slug == "returns"
    version = IndexVersion.objects.get().version

    response = admin_client.post(
        "/admin/knowledge/article/", {"action": "unpublish", "_selected_action": [article.pk, other.pk]}, follow=True
    )
    assert "Unpublished 2 article(s)" in response.content.decode()
    assert not Article.objects.filter(published=True).exists()
    assert IndexVersion.objects.get().version > version
    assert retrieve("How much does return shipping cost?", language="en").best is None

    version = IndexVersion.objects.get().version
    response = admin_client.post(
        "/admin/knowledge/article/", {"action": "publish", "_selected_action": [article.pk]}, follow=True
    )
    assert "Published 1 article(s)" in response.content.decode()
    assert set(Article.objects.filter(published=True).values_list("slug", flat=True)) == {"returns"}
    assert IndexVersion.objects.get().version > version
    assert retrieve("How much does return shipping cost?", language="en").best.slug == "returns"


def test_deleting_an_article_in_the_admin_removes_it_from_retrieval(admin_client, article):
    assert retrieve("How much does return shipping cost?", language="en").best.slug == "returns"
    response = admin_client.post(f"/admin/knowledge/article/{article.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Article.objects.exists() and not Passage.objects.exists()
    assert retrieve("How much does return shipping cost?", language="en").best is None


def test_passages_and_the_index_version_are_not_edited_in_the_admin(admin_client):
    page = admin_client.get("/admin/").content.decode()
    assert "Knowledge base" in page and "/admin/knowledge/article/" in page
    assert "/admin/knowledge/passage/" not in page and "/admin/knowledge/indexversion/" not in page
    assert admin_client.get("/admin/knowledge/passage/").status_code == 404
