from django.contrib import admin
from django.templatetags.static import static
from django.utils.html import format_html

from chat.models import Conversation, Message, Rating, Site, SiteHours


class SiteHoursInline(admin.TabularInline):
    model = SiteHours
    extra = 0


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ("name", "key", "is_active", "bot_enabled", "language", "created_at")
    readonly_fields = ("key", "embed_code")
    inlines = [SiteHoursInline]
    fieldsets = (
        (None, {"fields": ("name", "is_active", "key", "embed_code", "allowed_origins")}),
        ("Widget", {"fields": ("theme_color", "language", "welcome_message", "welcome_message_zh")}),
        ("Pre-chat form", {"fields": ("prechat_name", "prechat_email")}),
        ("Who answers", {"fields": ("bot_enabled", "timezone")}),
        ("Limits", {"fields": ("conversations_per_ip", "conversations_window_hours", "messages_per_minute")}),
    )

    @admin.display(description="Embed code")
    def embed_code(self, site: Site) -> str:
        if not site.pk:
            return "Save the site to get its embed code."
        src = self.request_base + static("chat/widget.js")
        return format_html(
            '<code>&lt;script src="{}" data-site-key="{}" async&gt;&lt;/script&gt;</code>', src, site.key
        )

    def get_form(self, request, obj=None, **kwargs):
        self.request_base = request.build_absolute_uri("/").rstrip("/")
        return super().get_form(request, obj, **kwargs)


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ("seq", "role", "state", "content", "completion_tokens", "ttft_ms", "tokens_per_s", "created_at")
    readonly_fields = fields
    can_delete = False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("id", "site", "customer_name", "customer_email", "status", "language", "region", "created_at")
    list_filter = ("status", "site", "language")
    search_fields = ("id", "customer_name", "customer_email")
    readonly_fields = ("id", "last_seq", "created_at", "updated_at")
    exclude = ("secret_hash",)
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("conversation", "seq", "role", "state", "completion_tokens", "ttft_ms", "tokens_per_s")
    list_filter = ("role", "state", "engine")
    readonly_fields = ("conversation", "seq", "in_reply_to", "created_at", "completed_at")


@admin.register(Rating)
class RatingAdmin(admin.ModelAdmin):
    list_display = ("conversation", "score", "created_at")
    list_filter = ("score",)
