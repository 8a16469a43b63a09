"""The async-capable WhiteNoise: static files either way, async views reached without a thread."""

import threading

from asgiref.sync import iscoroutinefunction
from django.http import HttpResponse
from django.test import RequestFactory

from helpdesk.middleware import AsyncWhiteNoiseMiddleware

STATIC = "/static/chat/widget.js"


def test_sync_stack_serves_static_files_and_passes_the_rest_on(settings):
    # Find files through the finders, without collectstatic (a clean clone has no staticfiles/).
    settings.WHITENOISE_AUTOREFRESH = settings.WHITENOISE_USE_FINDERS = True
    middleware = AsyncWhiteNoiseMiddleware(lambda request: HttpResponse("view"))
    assert not iscoroutinefunction(middleware)
    assert b"HelpdeskWidget" in b"".join(middleware(RequestFactory().get(STATIC)).streaming_content)
    assert middleware(RequestFactory().get("/api/v1/chat")).content == b"view"


async def test_async_stack_stays_on_the_event_loop(settings):
    settings.WHITENOISE_AUTOREFRESH = settings.WHITENOISE_USE_FINDERS = True
    seen = []

    async def view(request):
        seen.append(threading.current_thread())
        return HttpResponse("async view")

    middleware = AsyncWhiteNoiseMiddleware(view)
    assert iscoroutinefunction(middleware)
    response = await middleware(RequestFactory().get("/v1/models"))
    assert response.content == b"async view" and seen == [threading.current_thread()]
    static = await middleware(RequestFactory().get(STATIC))
    assert static.status_code == 200 and static["Content-Type"].startswith("text/javascript")
