"""Who may call the API: an API key with the endpoint's scope, within the per-IP and per-key rate limits.

Limits are fixed one-minute windows in the shared cache (Redis in production), so every server process counts
together. The per-IP limit is checked first, so guessing keys is limited too.
"""

from django.conf import settings
from django.http import HttpRequest
from ninja.security import HttpBearer

from chat import ratelimit
from chat.api.errors import ApiError
from chat.api.keys import ApiKeyRefused, api_key_authenticate
from chat.http import client_ip
from chat.metrics import RATE_LIMITED
from chat.models import ApiKey

WINDOW_S = 60


def _limit(key: str, limit: int, who: str) -> None:
    verdict = ratelimit.hit(key, limit=limit, window_s=WINDOW_S)
    if not verdict.allowed:
        RATE_LIMITED.labels(channel="api", limit=key.split(":")[1]).inc()
        raise ApiError(
            429,
            "rate_limited",
            f"Too many requests {who}: the limit is {limit} per minute. Retry after {verdict.retry_after} s.",
            retry_after=verdict.retry_after,
        )


class ApiKeyAuth(HttpBearer):
    """`Authorization: Bearer <key>` (what OpenAI clients send) or `X-API-Key: <key>`, needing `scope`."""

    def __init__(self, scope: str):
        super().__init__()
        self.scope = scope

    def __call__(self, request: HttpRequest) -> ApiKey:
        _limit(f"api:ip:{client_ip(request)}", settings.API_RATE_LIMIT_PER_IP, "from your address")
        header = request.headers.get("Authorization", "")
        raw = header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("X-API-Key", "").strip()
        if not raw:
            raise ApiError(401, "missing_api_key", "Send an API key as `Authorization: Bearer <key>`.")
        return self.authenticate(request, raw)

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey:
        try:
            key = api_key_authenticate(token)
        except ApiKeyRefused as exc:
            raise ApiError(401, exc.code, str(exc)) from exc
        if not key.allows(self.scope):
            raise ApiError(403, "insufficient_scope", f"This API key lacks the {self.scope!r} scope.")
        limit = key.rate_limit_per_minute or settings.API_RATE_LIMIT_PER_KEY
        _limit(f"api:key:{key.pk}", limit, "with this API key")
        return key


chat_auth = ApiKeyAuth(ApiKey.Scope.CHAT)
read_auth = ApiKeyAuth(ApiKey.Scope.READ)
admin_auth = ApiKeyAuth(ApiKey.Scope.ADMIN)
