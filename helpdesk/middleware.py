"""Middleware of the project."""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from whitenoise.middleware import WhiteNoiseMiddleware


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
