"""Project-level endpoints."""

import hmac

from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django_prometheus.exports import ExportToDjangoView

LOOPBACK = {"127.0.0.1", "::1"}


@require_GET
def healthz(request) -> JsonResponse:
    """Liveness and database reachability, for load balancers and docker healthchecks."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any database failure makes the instance unhealthy
        return JsonResponse({"ok": False, "database": str(exc)[:200]}, status=503)
    return JsonResponse({"ok": True})


@require_GET
def metrics(request) -> HttpResponse:
    """Prometheus metrics: with METRICS_TOKEN set, for `Authorization: Bearer <token>`; without, loopback only."""
    token = settings.METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        allowed = hmac.compare_digest(sent.encode(), token.encode())
    else:
        allowed = request.META.get("REMOTE_ADDR") in LOOPBACK
    if not allowed:
        return HttpResponse("metrics need METRICS_TOKEN as a bearer token\n", status=403, content_type="text/plain")
    return ExportToDjangoView(request)


@require_GET
@login_required
@permission_required("helpdesk.use_console", raise_exception=True)
def console(request) -> HttpResponse:
    """The agents' live console: queue, conversation, replies, notes, hand back and resolve."""
    return render(request, "helpdesk/console.html")
