from django import forms
from django.contrib import admin, messages
from django.templatetags.static import static
from django.utils.html import format_html

from chat.api.keys import api_key_create, api_key_revoke, scopes_clean
from chat.models import ApiKey, Message, Rating, Site, SiteHours


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


class ReadOnlyAdmin(admin.ModelAdmin):
    """What customers and the bot wrote is a record: staff read it here, and change it only through the console."""

    def has_add_permission(self, request) -> bool:
        return False

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ("conversation", "seq", "role", "state", "completion_tokens", "ttft_ms", "tokens_per_s")
    list_filter = ("role", "state", "engine")


@admin.register(Rating)
class RatingAdmin(ReadOnlyAdmin):
    list_display = ("conversation", "score", "created_at")
    list_filter = ("score",)


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=ApiKey.Scope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ("name", "scopes", "rate_limit_per_minute")

    def clean_scopes(self) -> list[str]:
        try:
            return scopes_clean(self.cleaned_data["scopes"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc


class ApiKeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() in ("active", "revoked"):
            return queryset.filter(revoked_at__isnull=self.value() == "active")
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are made by chat.api.keys.api_key_create: the secret is shown once, on the page after saving."""

    form = ApiKeyForm
    list_display = ("name", "key", "scope_list", "created_by", "created_at", "last_used_at", "active")
    list_filter = (ApiKeyStatusFilter,)
    list_select_related = ("created_by",)
    search_fields = ("name", "prefix")
    readonly_fields = ("key", "created_by", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("name", "scopes", "rate_limit_per_minute")
        return ("name", "key", "scopes", "rate_limit_per_minute", *self.readonly_fields[1:])

    @admin.display(description="Key")
    def key(self, key: ApiKey) -> str:
        return f"hd_{key.prefix}_…"

    @admin.display(description="Scopes")
    def scope_list(self, key: ApiKey) -> str:
        return ", ".join(key.scopes)

    @admin.display(description="Active", boolean=True, ordering="revoked_at")
    def active(self, key: ApiKey) -> bool:
        return key.is_active

    def save_model(self, request, obj: ApiKey, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created, raw = api_key_create(
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            created_by=request.user,
            rate_limit_per_minute=form.cleaned_data["rate_limit_per_minute"],
        )
        # The admin goes on with `obj` (the log entry, the redirect): make it the key that was created.
        obj.__dict__.update({k: v for k, v in created.__dict__.items() if k != "_state"})
        obj._state.adding = False
        messages.warning(
            request,
            format_html("The new API key is <code>{}</code>. Copy it now: it will not be shown again.", raw),
        )

    # Revoking changes the keys: a user who may only view them must not (the admin offers an action to whoever
    # may run it, and refuses it to anyone else).
    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request, queryset) -> None:
        for key in queryset:
            api_key_revoke(key_id=key.pk)
        messages.success(request, f"Revoked {queryset.count()} API key(s); they stop working at once.")
