"""Project-level endpoints."""

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def healthz(request) -> JsonResponse:
    """Liveness and database reachability, for load balancers and docker healthchecks."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any database failure makes the instance unhealthy
        return JsonResponse({"ok": False, "database": str(exc)[:200]}, status=503)
    return JsonResponse({"ok": True})
