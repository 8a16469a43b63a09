"""Project-level endpoints and the staff pages that are not the console's socket or the playground."""

import hmac
import re
import sys

from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views import defaults
from django.views.decorators.http import require_GET, require_POST
from django_prometheus.exports import ExportToDjangoView

from chat.http import client_ip
from chat.outages import backend_unavailable, unavailable_response
from helpdesk import health, selectors
from knowledge.services import article_draft_create

LOOPBACK = {"127.0.0.1", "::1"}
GAP_PERIODS = (7, 30, 90)  # days the knowledge-gaps page can look back
GAP_LANGUAGES = (("en", "English"), ("zh", "中文"))
DRAFT_TITLE_MAX = 120


@require_GET
def healthz(request) -> JsonResponse:
    """Liveness: the process answers. No dependency is checked, so an outage elsewhere never gets it restarted."""
    return JsonResponse({"ok": True})


@require_GET
def readyz(request) -> JsonResponse:
    """Readiness: each dependency "ok" or "down" (no error text); 503 while a required one is down."""
    result = health.readiness()
    response = JsonResponse(result, status=200 if result["ready"] else 503)
    response["Cache-Control"] = "no-store"
    return response


def server_error(request) -> HttpResponse:
    """handler500: an unexpected error outside any view; a backend outage still answers 503 (chat.outages)."""
    exc = sys.exc_info()[1]  # Django calls this inside its handling of the exception
    if exc is not None and backend_unavailable(exc):
        return unavailable_response(request, exc)
    return defaults.server_error(request)


@require_GET
def metrics(request) -> HttpResponse:
    """Prometheus metrics: with METRICS_TOKEN set, for `Authorization: Bearer <token>`; without, loopback only."""
    token = settings.METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        allowed = hmac.compare_digest(sent.encode(), token.encode())
    else:
        allowed = client_ip(request) in LOOPBACK  # behind a proxy on this host, its client's address
    if not allowed:
        return HttpResponse("metrics need METRICS_TOKEN as a bearer token\n", status=403, content_type="text/plain")
    return ExportToDjangoView(request)


@require_GET
@login_required
@permission_required("helpdesk.use_console", raise_exception=True)
def console(request) -> HttpResponse:
    """The agents' live console: queue, conversation, replies, notes, hand back and resolve."""
    return render(request, "helpdesk/console.html")


@require_GET
@login_required
@permission_required("knowledge.view_article", raise_exception=True)
def knowledge_gaps(request) -> HttpResponse:
    """What customers asked that the bot could not answer, grouped by question, with links to the conversations."""
    days = int(request.GET["days"]) if request.GET.get("days") in {str(d) for d in GAP_PERIODS} else 30
    language = request.GET.get("language", "").lower()
    if not re.fullmatch(r"[a-z]{2,3}", language):
        language = ""
    gaps = selectors.knowledge_gaps(days=days, language=language)
    context = {
        "gaps": gaps,
        "days": days,
        "language": language,
        "periods": GAP_PERIODS,
        "languages": GAP_LANGUAGES,
        "can_draft": request.user.has_perm("knowledge.add_article"),
        "handoffs_max": selectors.GAP_HANDOFFS_MAX,
    }
    return render(request, "helpdesk/gaps.html", context)


@require_POST
@login_required
@permission_required("knowledge.add_article", raise_exception=True)
def knowledge_gap_draft(request, conversation_id) -> HttpResponse:
    """An unpublished article from an agent's answer in a resolved conversation, opened in the admin for review."""
    answer = selectors.knowledge_gap_answer(conversation_id=conversation_id)
    if answer is None:
        raise Http404("No such conversation.")
    if not answer["resolved"] or not answer["answers"]:
        return HttpResponse(
            "Only a resolved conversation in which an agent answered can become a draft article.\n",
            status=409,
            content_type="text/plain; charset=utf-8",
        )
    question = answer["question"]
    title = question if len(question) <= DRAFT_TITLE_MAX else question[: DRAFT_TITLE_MAX - 1].rstrip() + "…"
    article = article_draft_create(
        title=title,
        body="\n\n".join(answer["answers"]),
        language=answer["language"],
        site=answer["site"],
    )
    return redirect("admin:knowledge_article_change", article.pk)
