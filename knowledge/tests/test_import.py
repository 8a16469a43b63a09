"""`kb_import`: Markdown files with front matter and CSV files become articles; a broken file is refused with its
reason while the others land, re-imports update by slug, and `--replace` never unpublishes because of a refused file."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from knowledge import services
from knowledge.importer import ImportError_, knowledge_import
from knowledge.models import Article, IndexVersion, Passage

pytestmark = pytest.mark.django_db

RETURNS = """---
title: Returns and refunds
language: en
tags: returns, refunds
url: https://shop.example/help/returns
---

## Return window

You can return items within 30 days of delivery.

## Return shipping

Return shipping costs $6.90 per order.
"""

ZH_RETURNS = """---
title: 退货与退款
language: zh-CN
tags: 退货，退款，退货运费
faq: yes
---

## 退货运费

非质量问题退货，退货运费为每单15元。
"""

ARTICLES_CSV = """title,language,body,tags,slug,site
Shipping,en,"## Standard shipping

Standard shipping takes 5-7 business days.","shipping, delivery",shipping,
Gift wrap,en,We wrap gifts for $5.,gifts,,uk
"""


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "kb"
    write(root, "returns.md", RETURNS)
    write(root, "zh/zh-returns.md", ZH_RETURNS)
    write(root, "more.csv", ARTICLES_CSV)
    write(root, "notes.txt", "not an article: ignored")
    return root


def test_a_folder_of_markdown_and_csv_files_creates_its_articles_with_passages(folder):
    report = knowledge_import(folder)

    assert sorted(report.created) == ["gift-wrap", "returns", "shipping", "zh-returns"]
    assert report.refused == [] and report.updated == [] and report.unchanged == []
    returns = Article.objects.get(slug="returns")
    assert (returns.title, returns.language, returns.tags, returns.url, returns.is_faq, returns.source) == (
        "Returns and refunds",
        "en",
        ["returns", "refunds"],
        "https://shop.example/help/returns",
        False,
        "import",
    )
    assert [(p.heading, p.text) for p in returns.passages.all()] == [
        ("Return window", "You can return items within 30 days of delivery."),
        ("Return shipping", "Return shipping costs $6.90 per order."),
    ]
    zh = Article.objects.get(slug="zh-returns")
    # The language tag is reduced to its base, full-width commas separate tags, "yes" is true.
    assert (zh.language, zh.tags, zh.is_faq) == ("zh", ["退货", "退款", "退货运费"], True)
    assert "退货运费" in zh.passages.get().tokens.split()
    gift = Article.objects.get(slug="gift-wrap")  # the CSV row without a slug is named after its title
    assert (gift.site, gift.body) == ("uk", "We wrap gifts for $5.")
    assert Article.objects.get(slug="shipping").passages.get().heading == "Standard shipping"


def test_importing_again_changes_nothing_and_duplicates_nothing(folder):
    knowledge_import(folder)
    passages_before = set(Passage.objects.values_list("id", flat=True))
    version_before = IndexVersion.objects.get().version

    report = knowledge_import(folder)

    assert sorted(report.unchanged) == ["gift-wrap", "returns", "shipping", "zh-returns"]
    assert report.created == report.updated == report.refused == []
    assert Article.objects.count() == 4
    assert set(Passage.objects.values_list("id", flat=True)) == passages_before  # not even re-indexed
    assert IndexVersion.objects.get().version == version_before


def test_an_edited_file_updates_its_article_and_passages(folder):
    knowledge_import(folder)
    write(folder, "returns.md", RETURNS.replace("$6.90", "$7.50").replace("title: Returns", "title: Our returns"))

    report = knowledge_import(folder)

    assert report.updated == ["returns"] and len(report.unchanged) == 3
    returns = Article.objects.get(slug="returns")
    assert returns.title == "Our returns and refunds"
    assert [p.text for p in returns.passages.all()][-1] == "Return shipping costs $7.50 per order."
    assert not Passage.objects.filter(text__contains="$6.90").exists()
    assert Article.objects.count() == 4


def test_replace_unpublishes_the_articles_that_are_not_in_the_folder(folder):
    knowledge_import(folder)
    (folder / "returns.md").unlink()

    report = knowledge_import(folder, replace=True)

    assert report.unpublished == ["returns"] and not report.replace_skipped
    assert not Article.objects.get(slug="returns").published
    assert set(Article.objects.filter(published=True).values_list("slug", flat=True)) == {
        "zh-returns",
        "shipping",
        "gift-wrap",
    }


BAD_FILES = {
    "no-front-matter.md": ("# Title\n\nBody.", "no front matter"),
    "no-title.md": ("---\nlanguage: en\n---\n\nBody.", "title is missing"),
    "bad-language.md": ("---\ntitle: Hours\nlanguage: english\n---\n\nBody.", "language 'english' is not a language"),
    "unclosed.md": ("---\ntitle: Hours\nlanguage: en\n\nBody.", "not closed"),
    "latin1.md": ("---\ntitle: Café\nlanguage: en\n---\n\nCafé.".encode("latin-1"), "not UTF-8"),
    "unknown-key.md": ("---\ntitle: Hours\nlanguage: en\nauthor: me\n---\n\nBody.", "front matter line 4"),
    "bad-faq.md": ("---\ntitle: Hours\nlanguage: en\nfaq: maybe\n---\n\nBody.", "faq must be true or false"),
    "empty-body.md": ("---\ntitle: Hours\nlanguage: en\n---\n", "body is empty"),
    "returns2.md": (RETURNS.replace("language: en", "language: en\nslug: returns"), "is already used by"),
    "bad-header.csv": ("name,language,text\nHours,en,Open daily.\n", "lacks the column(s) body, title"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_a_bad_file_is_refused_with_its_reason_while_the_good_files_land(folder, name):
    content, reason = BAD_FILES[name]
    write(folder, name, content)

    report = knowledge_import(folder)

    assert len(report.refused) == 1
    source, why = report.refused[0]
    assert source == name and reason in why
    assert sorted(report.created) == ["gift-wrap", "returns", "shipping", "zh-returns"]
    # Nothing half-imported: a refused file leaves no article and no passages behind.
    assert Article.objects.count() == 4
    assert Passage.objects.filter(article__slug=Path(name).stem).count() == 0


def test_a_bad_csv_row_is_refused_with_its_row_number_and_the_other_rows_land(folder):
    write(folder, "more.csv", ARTICLES_CSV + "Hours,,Open daily.,,,\n")
    report = knowledge_import(folder)
    assert report.refused == [("more.csv:4", "language is missing")]  # the 3rd record (row 1 is the header)
    assert Article.objects.filter(slug__in=["shipping", "gift-wrap"]).count() == 2


def test_with_replace_a_refused_file_means_nothing_is_unpublished(folder):
    knowledge_import(folder)
    (folder / "returns.md").unlink()
    write(folder, "broken.md", "no front matter")

    report = knowledge_import(folder, replace=True)

    assert report.replace_skipped and report.unpublished == []
    assert Article.objects.filter(published=False).count() == 0
    assert "nothing unpublished because of the refused files" in report.summary()


def test_an_article_whose_indexing_fails_leaves_no_row_behind(folder, monkeypatch):
    index = services.article_index

    def index_failing_for_returns(article):
        if article.slug == "returns":
            Passage.objects.create(article=article, position=0, text="half", tokens="half")
            raise services.ArticleInvalid("the indexer failed")
        return index(article)

    monkeypatch.setattr(services, "article_index", index_failing_for_returns)
    report = knowledge_import(folder)

    assert report.refused == [("returns.md", "the indexer failed")]
    assert not Article.objects.filter(slug="returns").exists()
    assert not Passage.objects.filter(text="half").exists()
    assert Article.objects.count() == 3


def test_a_missing_path_or_a_file_of_another_kind_cannot_be_imported(tmp_path):
    with pytest.raises(ImportError_, match="does not exist"):
        knowledge_import(tmp_path / "nowhere")
    with pytest.raises(ImportError_, match="neither a Markdown"):
        knowledge_import(write(tmp_path, "notes.txt", "hello"))


def test_one_markdown_file_can_be_imported_alone(tmp_path):
    report = knowledge_import(write(tmp_path, "returns.md", RETURNS))
    assert report.created == ["returns"]


def run_command(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("kb_import", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_command_prints_its_summary(folder):
    out, err = run_command(str(folder))
    assert "4 created, 0 updated, 0 unchanged, 0 unpublished, 0 refused" in out and err == ""

    (folder / "returns.md").unlink()
    out, _ = run_command(str(folder), "--replace")
    assert "unpublished returns" in out and "0 created, 0 updated, 3 unchanged, 1 unpublished, 0 refused" in out


def test_the_command_names_each_refused_file_and_fails(folder):
    write(folder, "broken.md", "no front matter")
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="1 file"):
        call_command("kb_import", str(folder), "--replace", stdout=out, stderr=err)
    assert "refused broken.md: no front matter" in err.getvalue()
    assert "4 created" in out.getvalue() and "nothing unpublished" in out.getvalue()
    assert Article.objects.count() == 4


def test_the_command_refuses_a_path_that_does_not_exist(tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        run_command(str(tmp_path / "nowhere"))


def test_if_empty_imports_only_into_an_empty_knowledge_base(folder, tmp_path):
    other = tmp_path / "other"
    write(other, "hours.md", "---\ntitle: Hours\nlanguage: en\n---\n\nOpen daily.")

    out, _ = run_command(str(folder), "--if-empty")
    assert "4 created" in out

    out, _ = run_command(str(other), "--if-empty")
    assert "nothing imported" in out
    assert not Article.objects.filter(slug="hours").exists()


DEMO = Path(__file__).resolve().parents[1] / "demo"


def test_the_demo_knowledge_base_imports_whole(settings):
    settings.KNOWLEDGE_SEMANTIC = False  # the passages are the subject here, not their embeddings
    report = knowledge_import(DEMO, replace=True)

    assert report.refused == [] and len(report.created) == 18
    assert Article.objects.filter(language="en").count() == 9
    assert Article.objects.filter(language="zh").count() == 9
    assert not Article.objects.filter(passages__isnull=True).exists()
    assert all(a.title and a.url.startswith("https://") for a in Article.objects.all())
    assert len(knowledge_import(DEMO).unchanged) == 18


def test_reindexing_segments_every_passage_with_the_whole_knowledge_bases_words():
    # Indexed before any article taught the segmenter "报关单号", the first article's passage cuts it up.
    first, _ = services.article_save(
        data=services.ArticleInput(slug="customs", title="清关", body="请提供报关单号以便查询。", language="zh")
    )
    before = set(Passage.objects.get(article=first).tokens.split())
    services.article_save(
        data=services.ArticleInput(slug="glossary", title="报关单号", body="报关单号是海关给的编号。", language="zh")
    )
    out = StringIO()
    call_command("kb_reindex", stdout=out)
    after = set(Passage.objects.get(article=first).tokens.split())
    assert "报关单号" in after and "报关单号" not in before
    assert "2 articles indexed again" in out.getvalue()
