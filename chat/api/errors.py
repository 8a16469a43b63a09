"""Every API error is `{"error": {"code", "message"}}` with a 4xx status (5xx only for the server's own faults)."""

import logging

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, JsonResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from chat.http import json_error
from chat.outages import backend_unavailable, unavailable_response

logger = logging.getLogger(__name__)

STATUS_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class ApiError(Exception):
    """Raised anywhere under an API view to answer with this error."""

    def __init__(self, status: int, code: str, message: str, **extra):
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def response(self) -> JsonResponse:
        return json_error(self.status, self.code, self.message, **self.extra)


def _validation_details(errors: list[dict]) -> list[dict]:
    details = []
    for error in errors:
        # ninja puts where the value came from first ("body", "query", "path"); clients want the field.
        # ("body", "<parameter>", "field", ...) for a JSON body: the parameter's name means nothing to clients.
        location = [str(part) for part in error.get("loc", ())]
        skip = 2 if location[:1] == ["body"] and len(location) > 2 else 1
        details.append({"field": ".".join(location[skip:] or location), "message": error.get("msg", "invalid")})
    return details


def exception_handlers_install(api: NinjaAPI) -> None:
    """Make every error of `api` answer in the one error format."""

    @api.exception_handler(ApiError)
    def api_error(request: HttpRequest, exc: ApiError) -> JsonResponse:
        return exc.response()

    @api.exception_handler(ValidationError)
    def validation_error(request: HttpRequest, exc: ValidationError) -> JsonResponse:
        details = _validation_details(exc.errors)
        fields = ", ".join(d["field"] for d in details if d["field"]) or "the request"
        return json_error(400, "invalid_request", f"Invalid value for {fields}.", details=details)

    @api.exception_handler(AuthenticationError)
    def authentication_error(request: HttpRequest, exc: AuthenticationError) -> JsonResponse:
        return json_error(401, "missing_api_key", "Send an API key as `Authorization: Bearer <key>`.")

    @api.exception_handler(HttpError)
    def http_error(request: HttpRequest, exc: HttpError) -> JsonResponse:
        return json_error(exc.status_code, STATUS_CODES.get(exc.status_code, "error"), str(exc.message))

    @api.exception_handler(Http404)
    def not_found(request: HttpRequest, exc: Http404) -> JsonResponse:
        return json_error(404, "not_found", "There is nothing at this address.")

    @api.exception_handler(RequestDataTooBig)
    def too_large(request: HttpRequest, exc: RequestDataTooBig) -> JsonResponse:
        # Django's own cap (DATA_UPLOAD_MAX_MEMORY_SIZE), for a body that got past the ASGI limit (helpdesk.limits),
        # or a server without it: the client's fault, so 413, not the 500 of an unexpected error.
        return json_error(413, "payload_too_large", "The request body is too large.")

    @api.exception_handler(Exception)
    def server_error(request: HttpRequest, exc: Exception) -> JsonResponse:
        if backend_unavailable(exc):  # PostgreSQL or Redis down for now: come back, rather than a server fault
            return unavailable_response(request, exc)
        logger.exception("API request %s %s failed", request.method, request.path)
        return json_error(500, "internal_error", "The server failed to answer; the error is logged.")


def api_not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Unknown addresses under the API's prefixes answer in the API's format, not with an HTML page."""
    return json_error(404, "not_found", f"No API endpoint at {request.path}.")
