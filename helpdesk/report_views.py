"""The managers' reports pages: the figures and their charts, the drill-down lists behind them, a read-only
transcript, and the CSV export.

Managers and admins (`helpdesk.view_reports`) see every agent's conversations; an agent (`helpdesk.use_console`)
sees the same pages narrowed to the conversations assigned to them. The figures come from helpdesk.reports, which
aggregates them in the database; this module only checks access and lays them out.
"""

import datetime
import itertools
import re
from urllib.parse import urlencode

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from chat.models import Conversation, HandoffReason, Message, Site
from helpdesk import reports, selectors

CHANNEL_LABELS = dict(reports.CHANNELS)
PRESET_DAYS = (7, 30, 90)
# The reasons as the handoff chart's axis names them (the tooltip and the tables say the whole label).
REASON_SHORT = {
    HandoffReason.MODEL_DEFERRED: "Model deferred",
    HandoffReason.CUSTOMER_REQUEST: "Customer request",
    HandoffReason.ENGINE_FAILURE: "Engine failure",
    HandoffReason.NO_KNOWLEDGE: "No knowledge",
    HandoffReason.BOT_OFF: "Bot off",
    HandoffReason.OFFLINE_MESSAGE: "Offline message",
}
EXPORT_BATCH = 500  # CSV lines per chunk when the export streams from an async server
# What a transcript's "back" link keeps of the drill-down list it was opened from.
BACK_PARAMS = ("since", "until", "site", "agent", "language", "channel", "metric", "value", "page")
# Messages per page of a transcript: a conversation of 20,000 messages is read a page at a time, never whole.
TRANSCRIPT_PAGE = 200


# --- Access ---


def _own_agent_id(user) -> int | None:
    """None: the user sees every agent's figures; an id: only their own; PermissionDenied: no reports at all."""
    if user.has_perm("helpdesk.view_reports"):
        return None
    if user.has_perm("helpdesk.use_console"):
        return user.pk
    raise PermissionDenied


# --- Formatting ---


def duration_text(seconds: float | None) -> str:
    """A duration as people say it: "4.2 s", "2 min 5 s", "3 h 10 min", "2 d 4 h"; "—" when there is none."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.1f} s"
    total = round(seconds)
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        parts = [(days, "d"), (hours, "h")]
    elif hours:
        parts = [(hours, "h"), (minutes, "min")]
    elif minutes:
        parts = [(minutes, "min"), (secs, "s")]
    else:
        parts = [(secs, "s")]
    return " ".join(f"{n} {unit}" for n, unit in parts if n) or "0 s"


def _pct_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%".replace(".0%", "%")


def _avg_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}".rstrip("0").rstrip(".")


def _local(moment: datetime.datetime | None, filters: reports.Filters) -> str:
    return timezone.localtime(moment, filters.tz).strftime("%Y-%m-%d %H:%M") if moment else "—"


# --- Links ---


def _query(filters: reports.Filters, metric: str | None = None, value=None) -> str:
    params = filters.query()
    if metric:
        params["metric"] = metric
        if value is not None:
            params["value"] = str(value)
    return urlencode(params)


def drill_url(filters: reports.Filters, metric: str, value=None) -> str:
    """The drill-down list of the conversations a figure counts."""
    return f"{reverse('reports-conversations')}?{_query(filters, metric, value)}"


def _export_url(filters: reports.Filters, metric: str | None = None, value=None) -> str:
    return f"{reverse('reports-export')}?{_query(filters, metric, value)}"


# --- The report page ---


def _form_values(params, filters: reports.Filters | None) -> dict:
    """What the filter form shows: the filters in use, or what was sent when it could not be used."""
    if filters is None:
        return {name: params.get(name, "") for name in ("since", "until", "site", "agent", "language", "channel")}
    return {
        "since": filters.since.isoformat(),
        "until": filters.until.isoformat(),
        "site": str(filters.site.pk) if filters.site else "",
        "agent": str(filters.agent_id or ""),
        "language": filters.language,
        "channel": filters.channel,
    }


def _choices(own_agent_id: int | None) -> dict:
    agents = [] if own_agent_id else list(selectors.console_users().order_by("username").values_list("pk", "username"))
    return {
        "sites": list(Site.objects.order_by("name").values_list("pk", "name")),
        "agents": [(str(pk), name) for pk, name in agents],
        "languages": reports.LANGUAGES,
        "channels": reports.CHANNELS,
    }


def _presets(params, filters: reports.Filters | None, today: datetime.date) -> list[dict]:
    """Links to the last 7, 30 and 90 days with the other filters kept."""
    kept = {name: params[name] for name in ("site", "agent", "language", "channel") if params.get(name)}
    presets = []
    for days in PRESET_DAYS:
        since = today - datetime.timedelta(days - 1)
        query = urlencode({"since": since.isoformat(), "until": today.isoformat(), **kept})
        current = filters is not None and (filters.since, filters.until) == (since, today)
        presets.append({"label": f"Last {days} days", "url": f"?{query}", "current": current})
    return presets


DURATION_ROWS = (
    ("bot_first_response_s", "First response, bot", "bot_replied"),
    ("human_first_response_s", "First response, human (after handoff)", "human_replied"),
    ("queue_wait_s", "Queue wait before a claim", "claimed"),
    ("resolution_s", "Resolution time, calendar", "resolved"),
    ("resolution_business_s", "Resolution time, business hours", "resolved"),
)


def _figures(filters: reports.Filters, data: dict) -> dict:
    """The report laid out for the page: every figure with its text and the link to its drill-down."""
    durations = data["durations"]
    csat, bot, handoff = data["csat"], data["bot"], data["handoff"]

    def timing(field: str, label: str, metric: str) -> dict:
        figure = durations[field]
        return {
            "label": label,
            "n": figure["n"],
            "p50": duration_text(figure["p50"]),
            "p90": duration_text(figure["p90"]),
            "avg": duration_text(figure["avg"]),
            "url": drill_url(filters, metric),
        }

    timings = [timing(*row) for row in DURATION_ROWS]
    reasons = [
        {
            "reason": reason,
            "label": label,
            "short": REASON_SHORT.get(reason, label),
            "n": n,
            "pct": _pct_text(pct),
            "url": drill_url(filters, "handoff_reason", reason),
        }
        for reason, label, n, pct in handoff["reasons"]
    ]
    return {
        "total": data["total"],
        "total_url": drill_url(filters, "conversations"),
        "timings": timings,
        "bot_first": timings[0],
        "human_first": timings[1],
        "queue": timings[2],
        "resolution": timings[3],
        "csat": {
            "positive_pct": _pct_text(csat["positive_pct"]),
            "positive": csat["positive"],
            "positive_url": drill_url(filters, "csat_positive"),
            "rated": csat["rated"],
            "rated_url": drill_url(filters, "rated"),
            "average": _avg_text(csat["average"]),
            "asked": csat["asked"],
            "response_rate_pct": _pct_text(csat["response_rate_pct"]),
            "distribution": [
                {"score": score, "n": n, "url": drill_url(filters, "rating", score)}
                for score, n in reversed(csat["distribution"])
            ],
            "bot": {
                "rated": csat["bot"]["rated"],
                "positive_pct": _pct_text(csat["bot"]["positive_pct"]),
                "average": _avg_text(csat["bot"]["average"]),
                "url": drill_url(filters, "rated_bot"),
            },
            "agents": [
                {
                    "name": agent["name"],
                    "rated": agent["rated"],
                    "positive_pct": _pct_text(agent["positive_pct"]),
                    "average": _avg_text(agent["average"]),
                    "url": drill_url(filters, "rated_agent", agent["id"]),
                }
                for agent in csat["agents"]
            ],
        },
        "bot": {
            "resolved": bot["resolved"],
            "resolved_pct": _pct_text(bot["resolved_pct"]),
            "confirmed": bot["confirmed"],
            "resolved_url": drill_url(filters, "bot_resolved"),
            "confirmed_url": drill_url(filters, "bot_confirmed"),
            "assumed": bot["assumed"],
            "assumed_url": drill_url(filters, "bot_assumed"),
            "reopened": bot["reopened"],
            "reopened_url": drill_url(filters, "reopened"),
        },
        "handoff": {
            "count": handoff["count"],
            "pct": _pct_text(handoff["pct"]),
            "url": drill_url(filters, "handed_off"),
            "reasons": reasons,
        },
        "hours": [
            {
                "label": f"{hour:02d}:00",
                "title": f"{hour:02d}:00–{hour + 1:02d}:00",
                "n": n,
                "url": drill_url(filters, "hour", hour),
            }
            for hour, n in enumerate(data["volume"]["hours"])
        ],
        "weekdays": [
            {"label": reports.WEEKDAY_NAMES[day - 1], "n": n, "url": drill_url(filters, "weekday", day)}
            for day, n in enumerate(data["volume"]["weekdays"], start=1)
        ],
        "load": [
            {
                "name": row["name"],
                "claimed": row["claimed"],
                "average_concurrent": f"{row['average_concurrent']:.2f}",
                "peak_concurrent": row["peak_concurrent"],
                "url": drill_url(filters, "agent", row["id"]),
            }
            for row in data["load"]
        ],
    }


def _charts(figures: dict) -> dict:
    """The charts' data for reports.js (through json_script): labels, values and each bar's drill-down."""

    def chart(points: list[dict], label: str, name: str) -> dict:
        return {
            "labels": [point[label] for point in points],
            "titles": [point.get("title", point[label]) for point in points],
            "values": [point["n"] for point in points],
            "urls": [point["url"] for point in points],
            "name": name,
        }

    ratings = list(reversed(figures["csat"]["distribution"]))
    return {
        "hours": chart(
            [{**point, "short": point["label"][:2]} for point in figures["hours"]], "short", "Conversations"
        ),
        "weekdays": chart(
            [{**point, "short": point["label"][:3], "title": point["label"]} for point in figures["weekdays"]],
            "short",
            "Conversations",
        ),
        "ratings": chart([{**point, "label": f"{point['score']} ★"} for point in ratings], "label", "Ratings"),
        "reasons": chart(
            [{**reason, "title": reason["label"]} for reason in figures["handoff"]["reasons"]], "short", "Handoffs"
        ),
    }


@require_GET
@login_required
def report_page(request) -> HttpResponse:
    """The reports page: filters, every figure with its drill-down, the charts and the definitions."""
    own_agent_id = _own_agent_id(request.user)
    context = {"own": own_agent_id is not None, "definitions": reports.DEFINITIONS, **_choices(own_agent_id)}
    today = timezone.localdate()
    try:
        filters = reports.filters_parse(request.GET, today=today, own_agent_id=own_agent_id)
    except reports.ReportError as exc:
        context.update(error=str(exc), form=_form_values(request.GET, None), presets=_presets(request.GET, None, today))
        return render(request, "helpdesk/reports.html", context, status=400)
    figures = _figures(filters, reports.report(filters))
    context.update(
        filters=filters,
        form=_form_values(request.GET, filters),
        figures=figures,
        charts=_charts(figures),
        export_url=_export_url(filters),
        presets=_presets(request.GET, filters, today),
    )
    return render(request, "helpdesk/reports.html", context)


# --- The drill-down list ---


def _rating_comment(conversation) -> str:
    rating = getattr(conversation, "rating", None)
    return rating.comment if rating and rating.comment else ""


FIGURE_COLUMNS = {
    "bot_replied": ("Bot first response", lambda c, f: duration_text(c.bot_first_response_s)),
    "human_replied": ("Human first response", lambda c, f: duration_text(c.human_first_response_s)),
    "claimed": ("Queue wait", lambda c, f: duration_text(c.queue_wait_s)),
    "resolved": (
        "Resolution (business hours)",
        lambda c, f: f"{duration_text(c.resolution_s)} ({duration_text(c.resolution_business_s)})",
    ),
    "rated": ("Comment", lambda c, f: _rating_comment(c)),
    "csat_positive": ("Comment", lambda c, f: _rating_comment(c)),
    "rating": ("Comment", lambda c, f: _rating_comment(c)),
    "rated_bot": ("Comment", lambda c, f: _rating_comment(c)),
    "rated_agent": ("Comment", lambda c, f: _rating_comment(c)),
    "bot_confirmed": ("Confirmed by", lambda c, f: "rating" if (c.score or 0) >= 4 else "the customer's message"),
    "bot_assumed": ("Last message", lambda c, f: _local(c.last_message_at, f)),
    "reopened": ("Reopened", lambda c, f: f"{c.reopened_count}×"),
    "handed_off": ("First handoff", lambda c, f: _local(c.first_handoff_at, f)),
    "handoff_reason": ("First handoff", lambda c, f: _local(c.first_handoff_at, f)),
    "hour": ("Day and hour", lambda c, f: timezone.localtime(c.created_at, f.tz).strftime("%a %H:%M")),
    "weekday": ("Day and hour", lambda c, f: timezone.localtime(c.created_at, f.tz).strftime("%a %H:%M")),
    "agent": ("Claimed", lambda c, f: _local(c.claimed_at, f)),
}


def _username(user_id: int | None) -> str:
    if not user_id:
        return ""
    return get_user_model().objects.filter(pk=user_id).values_list("username", flat=True).first() or f"#{user_id}"


def _row(conversation: Conversation, filters: reports.Filters, figure) -> dict:
    return {
        "id": conversation.pk,
        "created": _local(conversation.created_at, filters),
        "customer": conversation.customer_name or "Customer",
        "email": conversation.customer_email,
        "site": conversation.site.name if conversation.site_id else "—",
        "channel": CHANNEL_LABELS.get(conversation.channel, conversation.channel),
        "status": conversation.get_status_display(),
        "status_code": conversation.status,
        "agent": conversation.assignee.get_username() if conversation.assignee_id else "—",
        "reason": conversation.get_handoff_reason_display() if conversation.handoff_reason else "—",
        "rating": conversation.score,
        "figure": figure[1](conversation, filters) if figure else "",
    }


@require_GET
@login_required
def report_conversations(request) -> HttpResponse:
    """The conversations behind one figure (`metric`, `value`), exactly those it counts, 100 a page."""
    own_agent_id = _own_agent_id(request.user)
    metric, value = request.GET.get("metric") or "conversations", request.GET.get("value")
    try:
        filters = reports.filters_parse(request.GET, own_agent_id=own_agent_id)
        rows = reports.drill_down(filters, metric, value).select_related("rating")
    except reports.ReportError as exc:
        return render(request, "helpdesk/reports_conversations.html", {"error": str(exc)}, status=400)
    page = Paginator(rows, reports.DRILL_PAGE).get_page(request.GET.get("page"))
    figure = FIGURE_COLUMNS.get(metric)
    query = _query(filters, metric, value)
    context = {
        "own": own_agent_id is not None,
        "filters": filters,
        "title": reports.drill_title(metric, value),
        "metric": metric,
        "page": page,
        "rows": [_row(conversation, filters, figure) for conversation in page.object_list],
        "figure_label": figure[0] if figure else "",
        "query": query,
        "report_url": f"{reverse('reports')}?{urlencode(filters.query())}",
        "export_url": _export_url(filters, metric, value),
        "agent_label": _username(filters.agent_id),
        "channel_label": CHANNEL_LABELS.get(filters.channel, ""),
        "language_label": dict(reports.LANGUAGES).get(filters.language, ""),
    }
    return render(request, "helpdesk/reports_conversations.html", context)


# --- One transcript ---


def _report_columns(conversation: Conversation) -> list[tuple[str, str]]:
    def moment(value):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else "—"

    return [
        ("Created", moment(conversation.created_at)),
        ("First customer message", moment(conversation.first_customer_message_at)),
        ("Bot first response", duration_text(conversation.bot_first_response_s)),
        ("First handoff", moment(conversation.first_handoff_at)),
        ("Handoff reason", conversation.get_handoff_reason_display() if conversation.handoff_reason else "—"),
        ("Claimed", moment(conversation.claimed_at)),
        ("Queue wait", duration_text(conversation.queue_wait_s)),
        ("Human first response", duration_text(conversation.human_first_response_s)),
        ("Resolved", moment(conversation.resolved_at)),
        ("Resolution time", duration_text(conversation.resolution_s)),
        ("Resolution, business hours", duration_text(conversation.resolution_business_s)),
        ("Reopened", str(conversation.reopened_count)),
        ("Customer confirmed", "yes" if conversation.customer_confirmed else "no"),
        ("Last message", moment(conversation.last_message_at)),
    ]


@require_GET
@login_required
def report_transcript(request, conversation_id) -> HttpResponse:
    """A conversation read-only: every message (private notes apart), its rating, ticket and report columns."""
    own_agent_id = _own_agent_id(request.user)
    rows = Conversation.objects.select_related("site", "assignee", "ticket", "rating")
    if own_agent_id is not None:
        rows = rows.filter(assignee_id=own_agent_id)
    conversation = rows.filter(pk=conversation_id).first()
    if conversation is None:
        raise Http404("No such conversation among yours.")
    messages = Message.objects.filter(conversation=conversation).select_related("author").order_by("seq")
    # `messages` is this page's own parameter: `page` belongs to the list the transcript was opened from.
    messages_page = Paginator(messages, TRANSCRIPT_PAGE).get_page(request.GET.get("messages"))
    back = {key: value for key, value in request.GET.items() if key in BACK_PARAMS}
    back_url = f"{reverse('reports-conversations')}?{urlencode(back)}" if back.get("metric") else reverse("reports")
    context = {
        "conversation": conversation,
        "messages": messages_page,
        "messages_query": urlencode(back),
        "rating": getattr(conversation, "rating", None),
        "ticket": getattr(conversation, "ticket", None),
        "channel": CHANNEL_LABELS.get(conversation.channel, conversation.channel),
        "columns": _report_columns(conversation),
        "back_url": back_url,
        "tz_name": timezone.get_current_timezone_name(),
    }
    return render(request, "helpdesk/reports_transcript.html", context)


# --- The CSV export ---


async def _async_chunks(lines):
    """The export's lines, read in batches in the request's database thread: daphne streams them as they come
    rather than reading the whole export into memory first (as it does with a plain iterator)."""
    next_batch = sync_to_async(lambda: "".join(itertools.islice(lines, EXPORT_BATCH)), thread_sensitive=True)
    while chunk := await next_batch():
        yield chunk


@require_GET
@login_required
def report_export(request) -> HttpResponse:
    """The conversations of the report (or of one figure, with `metric` and `value`) as CSV, one row each."""
    own_agent_id = _own_agent_id(request.user)
    metric, value = request.GET.get("metric"), request.GET.get("value")
    try:
        filters = reports.filters_parse(request.GET, own_agent_id=own_agent_id)
        rows = reports.drill_down(filters, metric, value) if metric else reports.conversations(filters)
    except reports.ReportError as exc:
        return HttpResponse(f"{exc}\n", status=400, content_type="text/plain; charset=utf-8")
    lines = reports.export_csv(rows)
    content = _async_chunks(lines) if isinstance(request, ASGIRequest) else lines
    name = "-".join(
        part
        for part in ("conversations", filters.since.isoformat(), filters.until.isoformat(), metric, value)
        if part and re.fullmatch(r"[\w-]{1,40}", part)
    )
    response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response
