"""Content-Security-Policy for every HTML page the helpdesk serves (console, playground, reports, admin, sign-in,
the hosted chat page, the API docs).

Django 5.2 has no CSP of its own; this is the one header, set by a middleware. The pages' scripts are files under
/static/ (no inline script or on* handler anywhere in the templates), so `script-src 'self'` lets them run and
stops a script injected into a page (stored XSS in a message, say) from running. `frame-ancestors 'none'` is the
modern form of X-Frame-Options: DENY, which stays for older browsers. Styles keep 'unsafe-inline': the widget's
Shadow DOM styles and Django admin's style attributes need it, and styles cannot run code.

The widget's own script (static/chat/widget.js) runs in other companies' pages, under their policy, not this one:
it needs `script-src` to allow this host and `connect-src` to allow its https and wss addresses there (README).
"""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings


def _policy_add(response) -> None:
    if "Content-Security-Policy" in response:
        return  # a view that set its own knows better
    if not response.get("Content-Type", "").startswith("text/html"):
        return  # JSON, CSV, static files: nothing a browser would run a script in
    response["Content-Security-Policy"] = settings.CONTENT_SECURITY_POLICY


class ContentSecurityPolicyMiddleware:
    """Adds settings.CONTENT_SECURITY_POLICY to HTML responses."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(self.get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        response = self.get_response(request)
        _policy_add(response)
        return response

    async def __acall__(self, request):
        response = await self.get_response(request)
        _policy_add(response)
        return response
