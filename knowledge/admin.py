"""Staff write, preview and publish the knowledge base in Django's admin. Every save, publish and delete goes through
knowledge.services, so the passages retrieval reads are rebuilt with the article and every process notices."""

from django import forms
from django.contrib import admin
from django.db.models import Count
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from markdown_it import MarkdownIt

from inference.language import language_base
from knowledge import services
from knowledge.models import Article
from knowledge.services import ArticleInput, ArticleInvalid

# CommonMark with raw HTML off: a <script> in a body is shown as text, never run (the preview is stored content).
_markdown = MarkdownIt("commonmark", {"html": False})


def _link_open(self, tokens, idx, options, env) -> str:
    tokens[idx].attrSet("rel", "noopener nofollow")
    return self.renderToken(tokens, idx, options, env)


_markdown.add_render_rule("link_open", _link_open)


def markdown_html(body: str) -> str:
    """An article's Markdown as HTML that is safe to show: raw HTML escaped, unsafe link schemes dropped."""
    return _markdown.render(body)


def tags_parse(value: str) -> list[str]:
    """Comma-separated tags as a list, without blanks or repeats; a Chinese full-width comma separates too."""
    return list(dict.fromkeys(t.strip() for t in value.replace("，", ",").split(",") if t.strip()))


class ArticleForm(forms.ModelForm):
    tags = forms.CharField(
        required=False,
        help_text="Comma-separated. Chinese tags also teach the search its words (e.g. 包邮, 退货运费).",
    )
    url = forms.URLField(
        max_length=500, required=False, assume_scheme="https", label="URL", help_text=Article.url.field.help_text
    )

    class Meta:
        model = Article
        fields = ("slug", "title", "language", "site", "tags", "url", "is_faq", "published", "body")
        widgets = {"body": forms.Textarea(attrs={"rows": 24, "cols": 100})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial["tags"] = ", ".join(self.instance.tags or [])

    def clean_tags(self) -> list[str]:
        return tags_parse(self.cleaned_data.get("tags") or "")

    def clean_language(self) -> str:
        return language_base(self.cleaned_data.get("language") or "")

    def clean(self):
        cleaned = super().clean()
        if self.errors:  # a field's own error is shown beside it; the service's check needs every field
            return cleaned
        try:
            services.article_input_check(
                ArticleInput(
                    slug=cleaned["slug"],
                    title=cleaned["title"],
                    body=cleaned["body"],
                    language=cleaned["language"],
                    tags=cleaned["tags"],
                    site=cleaned.get("site") or "",
                    url=cleaned.get("url") or "",
                    is_faq=cleaned.get("is_faq", False),
                    published=cleaned.get("published", True),
                )
            )
        except ArticleInvalid as exc:
            raise forms.ValidationError(str(exc), code="article_invalid") from exc
        return cleaned


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    """Articles are saved by services.article_indexed_save, which splits them into passages and indexes them."""

    form = ArticleForm
    list_display = (
        "title",
        "language",
        "site",
        "tag_list",
        "is_faq",
        "published",
        "updated_at",
        "passage_count",
    )
    list_filter = ("language", "published", "is_faq", "site", "source")
    search_fields = ("title", "body", "slug")
    prepopulated_fields = {"slug": ("title",)}
    readonly_fields = ("preview", "passage_table", "source", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("title", "slug", "language", "site", "tags", "url", "is_faq", "published", "body")}),
        ("As customers and the bot see it", {"fields": ("preview", "passage_table")}),
        ("Record", {"fields": ("source", "created_at", "updated_at")}),
    )
    actions = ["publish", "unpublish"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(passages_total=Count("passages"))

    @admin.display(description="Tags")
    def tag_list(self, article: Article) -> str:
        return ", ".join(article.tags or [])

    @admin.display(description="Passages", ordering="passages_total")
    def passage_count(self, article: Article) -> int:
        return article.passages_total

    @admin.display(description="Preview")
    def preview(self, article: Article) -> str:
        if not article.pk:
            return "Save the article to preview it."
        # The renderer escapes raw HTML (html: False), so its output is the one string marked safe here.
        return format_html('<div class="knowledge-preview">{}</div>', mark_safe(markdown_html(article.body)))

    @admin.display(description="Passages, as retrieval sees them")
    def passage_table(self, article: Article) -> str:
        passages = list(article.passages.all()) if article.pk else []
        if not passages:
            return "No passages yet: they are made when the article is saved."
        rows = format_html_join(
            "",
            '<tr><td>{}</td><td>{}</td><td style="white-space: pre-line">{}</td><td>{}</td></tr>',
            ((p.position, p.heading, p.text, len(p.tokens.split())) for p in passages),
        )
        return format_html(
            "<table><thead><tr><th>#</th><th>Heading</th><th>Text</th><th>Terms</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )

    def save_model(self, request, obj: Article, form, change: bool) -> None:
        if not change and not obj.source:
            obj.source = "admin"
        services.article_indexed_save(obj)

    def delete_model(self, request, obj: Article) -> None:
        services.articles_delete(ids=[obj.pk])

    def delete_queryset(self, request, queryset) -> None:
        services.articles_delete(ids=list(queryset.values_list("pk", flat=True)))

    @admin.action(description="Publish selected articles", permissions=["change"])
    def publish(self, request, queryset) -> None:
        changed = services.articles_publish(ids=list(queryset.values_list("pk", flat=True)), published=True)
        self.message_user(request, f"Published {changed} article(s); the bot answers from them now.")

    @admin.action(description="Unpublish selected articles", permissions=["change"])
    def unpublish(self, request, queryset) -> None:
        changed = services.articles_publish(ids=list(queryset.values_list("pk", flat=True)), published=False)
        self.message_user(request, f"Unpublished {changed} article(s); the bot no longer answers from them.")
