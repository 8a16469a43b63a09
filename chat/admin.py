from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.templatetags.static import static
from django.utils.html import format_html

from chat.api.keys import acts_as_check, api_key_create, api_key_revoke, scopes_clean
from chat.models import ApiKey, EmailSuppression, Message, Rating, Site, SiteHours


class SiteHoursInline(admin.TabularInline):
    model = SiteHours
    extra = 0


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ("name", "key", "is_active", "bot_enabled", "language", "created_at")
    readonly_fields = ("key", "embed_code", "identity_secret_shown")
    inlines = [SiteHoursInline]
    fieldsets = (
        (None, {"fields": ("name", "is_active", "key", "embed_code", "allowed_origins")}),
        ("Widget", {"fields": ("theme_color", "language", "welcome_message", "welcome_message_zh")}),
        ("Pre-chat form", {"fields": ("prechat_name", "prechat_email")}),
        ("Who answers", {"fields": ("bot_enabled", "timezone")}),
        ("Limits", {"fields": ("conversations_per_ip", "conversations_window_hours", "messages_per_minute")}),
        ("Verified identity", {"fields": ("identity_secret_shown",)}),
    )

    @admin.display(description="Identity secret")
    def identity_secret_shown(self, site: Site) -> str:
        if not site.pk:
            return "Save the site to get its identity secret."
        return format_html(
            "<code>{}</code><div class='help'>Keep it on your server. For a signed-in user, add data-user-id, "
            "data-user-name, data-user-email and data-user-hash (the hex HMAC-SHA256 of the user id under this "
            "secret) to the script tag: see the README, Verified identity.</div>",
            site.identity_secret,
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


@admin.register(EmailSuppression)
class EmailSuppressionAdmin(admin.ModelAdmin):
    """Addresses that get no email (they unsubscribed): deleting one lets the helpdesk email it again."""

    list_display = ("email", "reason", "created_at")
    search_fields = ("email",)
    readonly_fields = ("created_at",)


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=ApiKey.Scope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ("name", "scopes", "acts_as", "rate_limit_per_minute")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Only an active member can act; the agent API also checks, on every request, that they may use the console.
        self.fields["acts_as"].queryset = get_user_model().objects.filter(is_active=True).order_by("username")

    def clean_scopes(self) -> list[str]:
        try:
            return scopes_clean(self.cleaned_data["scopes"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean(self):
        cleaned = super().clean()
        if "scopes" in cleaned:
            try:
                acts_as_check(scopes=cleaned["scopes"], acts_as=cleaned.get("acts_as"))
            except ValueError as exc:
                self.add_error("acts_as", str(exc))
        return cleaned


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
    list_display = ("name", "key", "scope_list", "acts_as", "created_by", "created_at", "last_used_at", "active")
    list_filter = (ApiKeyStatusFilter,)
    list_select_related = ("created_by", "acts_as")
    search_fields = ("name", "prefix")
    readonly_fields = ("key", "created_by", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("name", "scopes", "acts_as", "rate_limit_per_minute")
        return ("name", "key", "scopes", "acts_as", "rate_limit_per_minute", *self.readonly_fields[1:])

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
            acts_as=form.cleaned_data["acts_as"],
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
