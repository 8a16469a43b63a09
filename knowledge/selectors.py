"""Reads of the knowledge base for the other apps."""

from knowledge.models import Article


def article_body(article_id: int) -> str | None:
    """An article's Markdown body as written (a curated answer is returned whole)."""
    return Article.objects.filter(pk=article_id).values_list("body", flat=True).first()
