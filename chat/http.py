"""HTTP helpers shared by every JSON endpoint (the widget's, the REST API's, the staff pages'): one error shape
and the client's address."""

from django.conf import settings
from django.http import HttpRequest, JsonResponse


def json_error(status: int, code: str, message: str, **extra) -> JsonResponse:
    """`{"error": {"code", "message", ...extra}}` with `status`; `retry_after` also becomes the Retry-After header."""
    response = JsonResponse({"error": {"code": code, "message": message, **extra}}, status=status)
    if "retry_after" in extra:
        response["Retry-After"] = str(extra["retry_after"])
    return response


class BadRequest(Exception):
    """Raised under a JSON view to answer with this error."""

    def __init__(self, status: int, code: str, message: str, **extra):
        super().__init__(message)
        self.response = json_error(status, code, message, **extra)


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or the entry NUM_PROXIES hops back in X-Forwarded-For."""
    if settings.NUM_PROXIES:
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        if hops:
            return hops[-min(settings.NUM_PROXIES, len(hops))]
    return request.META.get("REMOTE_ADDR", "")
