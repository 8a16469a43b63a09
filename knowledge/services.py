"""Writes to the knowledge base: articles saved and indexed (split into passages, terms and embeddings), the
import's upserts, and drafts from conversations. Only these functions write knowledge's models."""

import re
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_slug
from django.db import transaction
from django.db.models import F, PositiveBigIntegerField, Value
from django.db.models.functions import Greatest

from inference.language import language_base
from knowledge import semantic
from knowledge.models import Article, IndexVersion, Passage
from knowledge.text import jieba_words_add, markdown_sections, terms


class ArticleInvalid(ValueError):
    """An article that cannot be saved as given (the message says why, for the person who wrote it)."""


@dataclass(frozen=True)
class ArticleInput:
    slug: str
    title: str
    body: str
    language: str = "en"
    tags: list[str] = field(default_factory=list)
    site: str = ""
    url: str = ""
    is_faq: bool = False
    published: bool = True


def article_input_check(data: ArticleInput) -> None:
    """Raise ArticleInvalid naming the first problem of an article about to be saved."""
    problems = []
    try:
        validate_slug(data.slug)
    except ValidationError:
        problems.append(f"slug {data.slug!r} may hold only letters, digits, - and _")
    if len(data.slug) > 120:
        problems.append("slug is longer than 120 characters")
    if not data.title.strip() or len(data.title) > 200:
        problems.append("title is missing or longer than 200 characters")
    if not data.body.strip():
        problems.append("body is empty")
    if not re.fullmatch(r"[a-z]{2,3}", data.language):
        problems.append(f"language {data.language!r} is not a language code such as en or zh")
    if data.url:
        try:
            URLValidator(schemes=["http", "https"])(data.url)
        except ValidationError:
            problems.append(f"url {data.url!r} is not an http(s) address")
    if len(data.site) > 32:
        problems.append("site is longer than 32 characters (a site's key)")
    if problems:
        raise ArticleInvalid("; ".join(problems))


def index_version_bump() -> None:
    """Tell every process that the published passages changed (in the caller's transaction)."""
    # At least the time in microseconds, not just + 1: a number a process may have cached already never comes back
    # (after a rolled-back bump, an emptied table or a restored backup, + 1 would repeat it for other passages).
    now = time.time_ns() // 1000
    bumped = Greatest(F("version") + 1, Value(now), output_field=PositiveBigIntegerField())
    if not IndexVersion.objects.filter(pk=1).update(version=bumped):
        # The first bump (or the first after the table was emptied): an upsert, as two may race to create the row.
        IndexVersion.objects.bulk_create(
            [IndexVersion(pk=1, version=now)], update_conflicts=True, unique_fields=["id"], update_fields=["version"]
        )


_vocabulary_loaded = False


def vocabulary_learn(words: list[str] | None = None) -> None:
    """Teach the segmenter every article's title and tags (once per process) and `words`, before segmenting.

    Passages indexed by different processes, or before and after an article added a word, must be segmented with
    the same dictionary, or a term of one ("退货运费") never meets the same words cut otherwise (退 / 货运 / 运费).
    """
    global _vocabulary_loaded
    if not _vocabulary_loaded:
        known = []
        for title, tags in Article.objects.values_list("title", "tags").iterator(chunk_size=2000):
            known.extend([title, *(tags or [])])
        jieba_words_add(known)
        _vocabulary_loaded = True
    jieba_words_add(words or [])


@transaction.atomic
def article_index(article: Article) -> int:
    """Split the article into passages and index them (terms, and embeddings when semantic search is on)."""
    vocabulary_learn([article.title, *article.tags])
    sections = markdown_sections(article.body)
    article.passages.all().delete()
    passages = [
        Passage(
            article=article,
            position=position,
            heading=section.heading[:300],
            text=section.text,
            tokens=" ".join(terms(f"{article.title}\n{section.heading}\n{section.text}")),
        )
        for position, section in enumerate(sections)
    ]
    if settings.KNOWLEDGE_SEMANTIC and passages:
        vectors = semantic.embed([f"{article.title}. {p.heading}. {p.text}" for p in passages])
        for passage, vector in zip(passages, vectors, strict=True):
            passage.embedding = semantic.to_bytes(vector)
    Passage.objects.bulk_create(passages)
    index_version_bump()
    return len(passages)


def articles_reindex() -> int:
    """Index every article again with the segmenter's whole vocabulary (after words were added, or an upgrade);
    returns how many passages there are now."""
    vocabulary_learn()
    passages = 0
    for article in Article.objects.order_by("pk").iterator(chunk_size=200):
        passages += article_index(article)
    return passages


@transaction.atomic
def article_save(*, data: ArticleInput, source: str = "admin") -> tuple[Article, str]:
    """Create or update the article with this slug and index it; returns it and created, updated or unchanged."""
    data = ArticleInput(**{**data.__dict__, "language": language_base(data.language)})
    article_input_check(data)
    fields = {
        "title": data.title.strip(),
        "body": data.body.strip(),
        "language": data.language,
        "tags": [t.strip() for t in data.tags if t.strip()],
        "site": data.site.strip(),
        "url": data.url.strip(),
        "is_faq": data.is_faq,
        "published": data.published,
    }
    article = Article.objects.select_for_update().filter(slug=data.slug).first()
    if article is None:
        article = Article.objects.create(slug=data.slug, source=source, **fields)
        article_index(article)
        return article, "created"
    if all(getattr(article, name) == value for name, value in fields.items()):
        return article, "unchanged"
    for name, value in fields.items():
        setattr(article, name, value)
    article.save()
    article_index(article)
    return article, "updated"


@transaction.atomic
def article_indexed_save(article: Article) -> Article:
    """Save an article edited in a form (the admin) and index it."""
    data = ArticleInput(
        slug=article.slug,
        title=article.title,
        body=article.body,
        language=language_base(article.language),
        tags=list(article.tags or []),
        site=article.site,
        url=article.url,
        is_faq=article.is_faq,
        published=article.published,
    )
    article_input_check(data)
    article.language = data.language
    article.save()
    article_index(article)
    return article


@transaction.atomic
def articles_publish(*, ids: list[int], published: bool) -> int:
    """Publish or unpublish articles; returns how many changed."""
    changed = Article.objects.filter(pk__in=ids).exclude(published=published).update(published=published)
    if changed:
        index_version_bump()
    return changed


@transaction.atomic
def articles_delete(*, ids: list[int]) -> int:
    """Delete articles and their passages; returns how many articles were deleted."""
    deleted = Article.objects.filter(pk__in=ids).delete()[1].get(Article._meta.label, 0)
    if deleted:
        index_version_bump()
    return deleted


@transaction.atomic
def articles_unpublish_except(*, slugs: set[str]) -> list[str]:
    """Unpublish every published article whose slug is not in `slugs`; returns their slugs."""
    stale = list(Article.objects.filter(published=True).exclude(slug__in=slugs).values_list("slug", flat=True))
    if stale:
        Article.objects.filter(slug__in=stale).update(published=False)
        index_version_bump()
    return stale


@transaction.atomic
def article_draft_create(*, title: str, body: str, language: str, site: str = "", source: str = "gap") -> Article:
    """An unpublished article for staff to review and publish (e.g. from an agent's answer to a knowledge gap)."""
    base = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60] or "draft"
    slug, n = f"draft-{base}", 1
    while Article.objects.filter(slug=slug).exists():
        n += 1
        slug = f"draft-{base}-{n}"
    article = Article.objects.create(
        slug=slug,
        title=title[:200] or "Draft",
        body=body,
        language=language_base(language) or "en",
        site=site,
        published=False,
        source=source,
    )
    article_index(article)
    return article
