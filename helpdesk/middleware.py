"""Middleware of the project."""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from whitenoise.middleware import WhiteNoiseMiddleware

from chat.http import proxy_trusted
from chat.outages import backend_unavailable, unavailable_response


class AsyncWhiteNoiseMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise that lets async views stay async.

    WhiteNoise's middleware is sync-only, so under ASGI Django runs the rest of every request, async views
    included, through sync_to_async and back: each request holds a thread of its own for as long as it runs, and a
    streaming response (SSE from the API) holds it until the stream ends. This serves static files the same way and
    passes everything else on without leaving the event loop, so open streams cost no threads.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response=None, settings=None):
        kwargs = {} if settings is None else {"settings": settings}
        super().__init__(get_response, **kwargs)
        if iscoroutinefunction(self.get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request):
        static_file = self.find_file(request.path_info) if self.autorefresh else self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)
        return await self.get_response(request)


FORWARDED_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST", "HTTP_FORWARDED")


class UntrustedForwardedHeadersMiddleware:
    """Drops the X-Forwarded-* headers of requests that do not come from one of TRUSTED_PROXIES.

    Anyone can send them: believed from anyone, X-Forwarded-Proto would pass a plain request as HTTPS (secure
    cookies, SECURE_PROXY_SSL_HEADER) and X-Forwarded-For would pick the address that rate limits count. First in
    the chain, so nothing after it can read them by mistake.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(self.get_response):
            markcoroutinefunction(self)

    def _clean(self, request) -> None:
        if any(name in request.META for name in FORWARDED_HEADERS) and not proxy_trusted(
            request.META.get("REMOTE_ADDR", "")
        ):
            for name in FORWARDED_HEADERS:
                request.META.pop(name, None)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        self._clean(request)
        return self.get_response(request)

    async def __acall__(self, request):
        self._clean(request)
        return await self.get_response(request)


class BackendUnavailableMiddleware:
    """Answers 503 with Retry-After when a view fails because PostgreSQL or Redis is down, instead of a 500.

    JSON in the API's format for the REST API and the widget, a plain page for people (chat.outages). Django's
    connections reconnect by themselves (CONN_HEALTH_CHECKS), so the same request succeeds once the backend is back.
    Failures outside views (a middleware's own query) reach `helpdesk.views.server_error`, which answers the same.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(self.get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self.get_response(request)

    async def __acall__(self, request):
        return await self.get_response(request)

    def process_exception(self, request, exception):
        if backend_unavailable(exception):
            return unavailable_response(request, exception)
        return None
