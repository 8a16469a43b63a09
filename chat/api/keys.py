"""API keys: created and revoked by staff, shown once, stored as a SHA-256 hash, checked on every API request."""

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from chat.models import ApiKey

KEY_PREFIX = "hd_"
# last_used_at is written at most this often per key, so busy keys do not cost a write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiKeyRefused(Exception):
    """A key that does not open the API; `code` is machine-readable."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _hash(raw: str) -> str:
    # A random 256-bit secret needs no slow hash: nothing about it can be guessed from a fast one.
    return hashlib.sha256(raw.encode()).hexdigest()


def scopes_clean(scopes) -> list[str]:
    """The scopes as stored, or ValueError naming what is wrong."""
    if not isinstance(scopes, list | tuple) or not scopes:
        raise ValueError("Choose at least one scope.")
    unknown = sorted(set(scopes) - set(ApiKey.Scope.values))
    if unknown:
        raise ValueError(f"Unknown scopes: {', '.join(unknown)}; use {', '.join(ApiKey.Scope.values)}.")
    return [scope for scope in ApiKey.Scope.values if scope in scopes]


def acts_as_check(*, scopes, acts_as) -> None:
    """ValueError unless a key with these scopes acts as someone when it must: agent actions are taken in a staff
    member's name, with their permissions (checked on every request, by the staff side)."""
    if ApiKey.Scope.AGENT in scopes and acts_as is None:
        raise ValueError("A key with the agent scope acts as a staff member: choose who (acts as).")


@transaction.atomic
def api_key_create(
    *, name: str, scopes, created_by=None, rate_limit_per_minute: int | None = None, acts_as=None
) -> tuple[ApiKey, str]:
    """A new key. Returns it with the raw key, which is never stored and cannot be shown again. A key with the agent
    scope needs `acts_as` (ValueError otherwise)."""
    scopes = scopes_clean(scopes)
    acts_as_check(scopes=scopes, acts_as=acts_as)
    prefix = secrets.token_hex(4)
    raw = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        name=name,
        prefix=prefix,
        key_hash=_hash(raw),
        scopes=scopes,
        created_by=created_by,
        rate_limit_per_minute=rate_limit_per_minute,
        acts_as=acts_as,
    )
    return key, raw


@transaction.atomic
def api_key_revoke(*, key_id: int) -> ApiKey:
    """Stop a key from working, at once and for good (its conversations and history stay)."""
    key = ApiKey.objects.select_for_update().get(pk=key_id)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


def api_key_authenticate(raw: str) -> ApiKey:
    """The active key `raw` is, with its last use recorded; ApiKeyRefused if it is not one."""
    parts = raw.split("_") if isinstance(raw, str) and raw.startswith(KEY_PREFIX) else []
    if len(parts) < 3:
        raise ApiKeyRefused("invalid_api_key", "That is not an API key of this helpdesk.")
    key = ApiKey.objects.filter(prefix=parts[1]).first()
    if key is None or not hmac.compare_digest(key.key_hash, _hash(raw)):
        raise ApiKeyRefused("invalid_api_key", "That API key is not valid.")
    if key.revoked_at is not None:
        raise ApiKeyRefused("api_key_revoked", "That API key was revoked.")
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key
