"""The API keys themselves, for keys with the `admin` scope: list them and revoke one. Staff create keys in the admin.

A key's secret is never shown here (nor stored anywhere): only its prefix, which names it.
"""

from django.http import HttpRequest
from ninja import Path, Query, Router

from chat.api import selectors
from chat.api.auth import admin_auth
from chat.api.errors import ApiError
from chat.api.keys import api_key_revoke
from chat.api.pagination import PageIn, paginate
from chat.api.read_schemas import ApiKeyOut, ApiKeyPage
from chat.api.schemas import ErrorOut

router = Router(auth=admin_auth, tags=["api-keys"])

ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 429: ErrorOut}


@router.get("/api-keys", response={200: ApiKeyPage, **ERRORS}, summary="List API keys")
def api_keys_list(request: HttpRequest, paging: Query[PageIn]):
    """Every key, revoked ones included, newest first."""
    return paginate(request, selectors.api_keys_all(), paging)


@router.post(
    "/api-keys/{prefix}/revoke", response={200: ApiKeyOut, **ERRORS, 404: ErrorOut}, summary="Revoke an API key"
)
def api_key_revoke_view(
    request: HttpRequest, prefix: str = Path(..., pattern=r"^[0-9a-f]{1,16}$", description="The key's prefix.")
):
    """Stop the key from working, at once and for good. Revoking a revoked key changes nothing."""
    key = selectors.api_key_find(prefix=prefix)
    if key is None:
        raise ApiError(404, "not_found", "There is no API key with this prefix.")
    return api_key_revoke(key_id=key.pk)
