"""The company's knowledge: articles, the passages they are split into for retrieval, and the index's version."""

from django.db import models


class Article(models.Model):
    """A help-center article, written in Markdown, in one language, for every site or for one (a market)."""

    slug = models.SlugField(max_length=120, unique=True, help_text="Stable name; re-imports update by it.")
    title = models.CharField(max_length=200)
    body = models.TextField(help_text="Markdown. Headings and paragraphs become the passages the bot retrieves.")
    language = models.CharField(max_length=8, default="en", help_text="Base language: en, zh, ...", db_index=True)
    tags = models.JSONField(default=list, blank=True)
    site = models.CharField(
        max_length=32, blank=True, default="", help_text="A site's key for a market's own facts; empty for every site."
    )
    url = models.URLField(max_length=500, blank=True, help_text="The public page, linked under the bot's answers.")
    is_faq = models.BooleanField(
        "curated answer",
        default=False,
        help_text="The body is a complete answer: returned as written, without the model, when it matches closely.",
    )
    published = models.BooleanField(default=True, db_index=True)
    source = models.CharField(max_length=32, blank=True, help_text="Where it came from: import, admin, gap.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["language", "title"]

    def __str__(self) -> str:
        return f"{self.title} ({self.language})"


class Passage(models.Model):
    """A piece of an article (a section's paragraph, with the article's title and heading), as retrieval sees it."""

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="passages")
    position = models.PositiveIntegerField()
    heading = models.CharField(max_length=300, blank=True)
    text = models.TextField(help_text="Plain text, as quoted to customers.")
    # The text's search terms, space-separated (Chinese segmented by jieba, English stemmed): the full-text index.
    tokens = models.TextField()
    # The sentence embedding (float32, L2-normalised), when semantic search is on.
    embedding = models.BinaryField(null=True, blank=True)

    class Meta:
        ordering = ["article", "position"]
        constraints = [models.UniqueConstraint(fields=["article", "position"], name="passage_position_unique")]

    def __str__(self) -> str:
        return f"{self.article.slug}#{self.position}"


class IndexVersion(models.Model):
    """One row whose value changes whenever the published passages change: processes rebuild their caches then."""

    version = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"knowledge index version {self.version}"
