from django.contrib import admin

from chat.models import Conversation, Message, Rating


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ("seq", "role", "state", "content", "completion_tokens", "ttft_ms", "tokens_per_s", "created_at")
    readonly_fields = fields
    can_delete = False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("id", "customer_name", "customer_email", "status", "language", "region", "created_at")
    list_filter = ("status", "language")
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
