"""Managers' reports: figures aggregated in the database from the conversations' report columns, each with the
drill-down that lists exactly the conversations it counts, and the per-conversation export.

Every figure is over the conversations *created* in the date range (in the report's time zone) in which the
customer wrote at least once, narrowed by the filters. The columns it reads are kept by chat's services
(chat.services.reporting); the definitions below are also written on the page.
"""

import csv
import dataclasses
import datetime
import io
import zoneinfo
from collections.abc import Callable, Iterator

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import (
    Aggregate,
    Avg,
    Case,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, ExtractHour, ExtractIsoWeekDay, Greatest, Least, TruncHour
from django.utils import timezone

from chat.models import Conversation, HandoffReason, Site

DEFAULT_DAYS = 30
# A bot conversation without a handoff counts as resolved by the bot once this long has passed without a message.
ASSUMED_AFTER = datetime.timedelta(hours=24)
CHANNELS = (("widget", "Widget"), ("api", "API"))
LANGUAGES = (("en", "English"), ("zh", "中文"))
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DRILL_PAGE = 100

DEFINITIONS = {
    "conversations": "Conversations created in the range in which the customer wrote at least once.",
    "bot_first_response": "From the customer's first message to the bot's first complete reply.",
    "human_first_response": "After a handoff: from the first handoff to the first agent message.",
    "queue_wait": "From the first handoff to the first claim by an agent.",
    "resolution": (
        "From creation to resolved, for conversations resolved now (a reopened one counts again when it is "
        "resolved again). Business hours count only the site's opening hours, in its time zone; a site without "
        "hours, and the API, count every hour."
    ),
    "csat": (
        "Share of ratings that are 4 or 5 stars; the average and the distribution of the stars; the response rate "
        "is ratings over conversations that were resolved (and so asked for a rating)."
    ),
    "bot_resolution": (
        "Conversations that ended without a handoff and in which the bot answered, less those reopened. Confirmed: "
        "the customer rated 4-5 or said it helped (thanks, that worked...). Assumed: not confirmed, and resolved or "
        "without a new message for 24 h. Reopened: the customer wrote to it again after it was resolved, or after "
        "24 h of silence."
    ),
    "handoff": "Conversations handed to the agents at least once, by the reason of the latest handoff.",
    "load": (
        "Per agent: conversations claimed; average concurrent conversations (time held, from the first claim to "
        "its resolution or hand-back, or to now, over the range); the peak held at once."
    ),
}


class ReportError(ValueError):
    """A filter the report cannot use (said to the user as a 400)."""


@dataclasses.dataclass(frozen=True)
class Filters:
    since: datetime.date
    until: datetime.date  # inclusive
    site: Site | None = None
    agent_id: int | None = None
    language: str = ""
    channel: str = ""
    tz_name: str = settings.TIME_ZONE

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.tz_name)

    @property
    def start(self) -> datetime.datetime:
        return datetime.datetime.combine(self.since, datetime.time(), self.tz)

    @property
    def end(self) -> datetime.datetime:
        return datetime.datetime.combine(self.until + datetime.timedelta(days=1), datetime.time(), self.tz)

    def query(self) -> dict[str, str]:
        """The filters as query-string parameters (for drill-down links and the export)."""
        params = {"since": self.since.isoformat(), "until": self.until.isoformat()}
        if self.site:
            params["site"] = str(self.site.pk)
        if self.agent_id:
            params["agent"] = str(self.agent_id)
        if self.language:
            params["language"] = self.language
        if self.channel:
            params["channel"] = self.channel
        return params


def _date(value: str, name: str) -> datetime.date:
    try:
        day = datetime.date.fromisoformat(value)
    except ValueError as exc:
        raise ReportError(f"{name} must be a date like 2026-01-31.") from exc
    if not 1970 <= day.year <= 2999:
        raise ReportError(f"{name} must be between 1970 and 2999.")
    return day


ID_MAX = 2**31 - 1  # the database's integer keys


def _id(value: str, name: str) -> int:
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= ID_MAX:
        raise ReportError(f"{name} must be a number.")
    return int(value)


def filters_parse(params, *, today: datetime.date | None = None, own_agent_id: int | None = None) -> Filters:
    """Filters from query parameters (since, until, site, agent, language, channel); ReportError when unusable.

    `own_agent_id` (an agent without the reports permission) narrows the report to that agent's conversations.
    """
    today = today or timezone.localdate()
    until = _date(params["until"], "until") if params.get("until") else today
    since = _date(params["since"], "since") if params.get("since") else until - datetime.timedelta(DEFAULT_DAYS - 1)
    if since > until:
        raise ReportError("since must not be after until.")
    site = None
    if params.get("site"):
        site = Site.objects.filter(pk=_id(params["site"], "site")).first()
        if site is None:
            raise ReportError("There is no such site.")
    agent_id = _id(params["agent"], "agent") if params.get("agent") else None
    if own_agent_id is not None:
        agent_id = own_agent_id
    language = params.get("language", "")
    if language and language not in dict(LANGUAGES):
        raise ReportError(f"language must be one of {', '.join(dict(LANGUAGES))}.")
    channel = params.get("channel", "")
    if channel and channel not in dict(CHANNELS):
        raise ReportError(f"channel must be one of {', '.join(dict(CHANNELS))}.")
    return Filters(
        since=since,
        until=until,
        site=site,
        agent_id=agent_id,
        language=language,
        channel=channel,
        tz_name=site.timezone if site else settings.TIME_ZONE,
    )


_API = Q(api_key__isnull=False) | ~Q(session_id="")


def _rows(filters: Filters) -> QuerySet[Conversation]:
    rows = Conversation.objects.filter(
        created_at__gte=filters.start, created_at__lt=filters.end, first_customer_message_at__isnull=False
    )
    if filters.site:
        rows = rows.filter(site=filters.site)
    if filters.agent_id:
        rows = rows.filter(assignee_id=filters.agent_id)
    if filters.language:
        rows = rows.filter(language__startswith=filters.language)
    if filters.channel == "api":
        rows = rows.filter(_API)
    elif filters.channel == "widget":
        rows = rows.exclude(_API)
    return rows


def conversations(filters: Filters) -> QuerySet[Conversation]:
    """The conversations the report counts, with `score` (the rating's stars), `hour` and `weekday` (local)."""
    return _rows(filters).annotate(
        score=F("rating__score"),
        hour=ExtractHour("created_at", tzinfo=filters.tz),
        weekday=ExtractIsoWeekDay("created_at", tzinfo=filters.tz),
    )


# --- What each figure counts: one Q per drill-down, used both to count and to list. ---

_BOT_ONLY = Q(first_handoff_at__isnull=True, bot_first_response_s__isnull=False, reopened_count=0)
_CONFIRMED = _BOT_ONLY & (Q(score__gte=4) | Q(customer_confirmed=True))


def _assumed(now: datetime.datetime) -> Q:
    ended = Q(status=Conversation.Status.RESOLVED) | Q(last_message_at__lte=now - ASSUMED_AFTER)
    not_confirmed = (Q(score__isnull=True) | Q(score__lt=4)) & Q(customer_confirmed=False)
    return _BOT_ONLY & not_confirmed & ended


def _int_value(value: str | None, low: int, high: int) -> int:
    if value is None or not value.isascii() or not value.lstrip("-").isdigit() or not low <= int(value) <= high:
        raise ReportError(f"This drill-down needs a value from {low} to {high}.")
    return int(value)


def _reason(value: str | None) -> str:
    if value not in HandoffReason.values:
        raise ReportError(f"reason must be one of {', '.join(HandoffReason.values)}.")
    return value


DRILLS: dict[str, tuple[str, Callable[[str | None, datetime.datetime], Q]]] = {
    "conversations": ("All conversations", lambda v, now: Q()),
    "bot_replied": ("Answered by the bot (bot first response)", lambda v, now: Q(bot_first_response_s__isnull=False)),
    "human_replied": (
        "Answered by an agent after a handoff (human first response)",
        lambda v, now: Q(human_first_response_s__isnull=False),
    ),
    "claimed": ("Claimed from the queue (queue wait)", lambda v, now: Q(queue_wait_s__isnull=False)),
    "resolved": ("Resolved (resolution time)", lambda v, now: Q(resolution_s__isnull=False)),
    "rated": ("Rated", lambda v, now: Q(score__isnull=False)),
    "csat_positive": ("Rated 4 or 5", lambda v, now: Q(score__gte=4)),
    "rating": ("Rated {value} stars", lambda v, now: Q(score=_int_value(v, 1, 5))),
    "rated_bot": ("Rated, never handed off (the bot alone)", lambda v, now: Q(score__isnull=False) & _BOT_ONLY),
    "rated_agent": (
        "Rated, with agent {value}",
        lambda v, now: Q(score__isnull=False, assignee_id=_int_value(v, 1, ID_MAX)),
    ),
    "bot_confirmed": ("Resolved by the bot, confirmed", lambda v, now: _CONFIRMED),
    "bot_assumed": ("Resolved by the bot, assumed", lambda v, now: _assumed(now)),
    "bot_resolved": ("Resolved by the bot", lambda v, now: _CONFIRMED | _assumed(now)),
    "reopened": ("Reopened", lambda v, now: Q(reopened_count__gt=0)),
    "handed_off": ("Handed off", lambda v, now: Q(first_handoff_at__isnull=False)),
    "handoff_reason": (
        "Handed off: {value}",
        lambda v, now: Q(first_handoff_at__isnull=False, handoff_reason=_reason(v)),
    ),
    "hour": ("Created at {value}:00", lambda v, now: Q(hour=_int_value(v, 0, 23))),
    "weekday": ("Created on a {value}", lambda v, now: Q(weekday=_int_value(v, 1, 7))),
    "agent": (
        "Claimed by agent {value}",
        lambda v, now: Q(claimed_at__isnull=False, assignee_id=_int_value(v, 1, ID_MAX)),
    ),
}


def drill_q(metric: str, value: str | None, now: datetime.datetime) -> Q:
    if metric not in DRILLS:
        raise ReportError(f"Unknown figure {metric!r}.")
    return DRILLS[metric][1](value, now)


def drill_down(filters: Filters, metric: str, value: str | None = None, *, now=None) -> QuerySet[Conversation]:
    """Exactly the conversations a figure counts, newest first."""
    now = now or timezone.now()
    return (
        conversations(filters)
        .filter(drill_q(metric, value, now))
        .select_related("site", "assignee", "ticket")
        .order_by("-created_at")
    )


def drill_title(metric: str, value: str | None) -> str:
    title = DRILLS[metric][0]
    if metric in ("rated_agent", "agent") and value and value.isdigit():
        user = get_user_model().objects.filter(pk=int(value)).first()
        value = user.get_username() if user else value
    elif metric == "handoff_reason" and value in HandoffReason.values:
        value = HandoffReason(value).label
    elif metric == "weekday" and value in {str(day) for day in range(1, 8)}:
        value = WEEKDAY_NAMES[int(value) - 1]
    return title.format(value=value)


# --- Percentiles in the database ---


class PercentileDisc(Aggregate):
    """PostgreSQL's percentile_disc: the smallest value whose cumulative share reaches `fraction` (nearest rank)."""

    function = "PERCENTILE_DISC"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()
    allow_distinct = False

    def __init__(self, expression, fraction: float, **extra):
        super().__init__(expression, fraction=float(fraction), **extra)


DURATIONS = ("bot_first_response_s", "human_first_response_s", "queue_wait_s", "resolution_s", "resolution_business_s")


def _duration_aggregates() -> dict:
    """Count, average and (on PostgreSQL) median and 90th percentile of each duration column, NULLs left out."""
    aggregates = {}
    for field in DURATIONS:
        aggregates[f"{field}__n"] = Count(field)
        aggregates[f"{field}__avg"] = Avg(field)
        if connection.vendor == "postgresql":
            aggregates[f"{field}__p50"] = PercentileDisc(field, 0.5)
            aggregates[f"{field}__p90"] = PercentileDisc(field, 0.9)
    return aggregates


def _durations(rows: QuerySet, values: dict | None = None) -> dict[str, dict]:
    """Each duration column's n, avg, p50 and p90 (nearest rank), from `values` (the aggregates above) if given."""
    if values is None:
        values = rows.order_by().aggregate(**_duration_aggregates())
    result = {}
    for field in DURATIONS:
        n = values[f"{field}__n"]
        figure = {"n": n, "avg": values[f"{field}__avg"]}
        if connection.vendor == "postgresql":
            figure["p50"], figure["p90"] = values[f"{field}__p50"], values[f"{field}__p90"]
        else:  # SQLite has no ordered-set aggregates: the same nearest rank, by ORDER BY ... OFFSET
            ordered = rows.filter(**{f"{field}__isnull": False}).order_by(field).values_list(field, flat=True)
            for name, fraction in (("p50", 0.5), ("p90", 0.9)):
                figure[name] = ordered[max(_ceil(fraction * n) - 1, 0)] if n else None
        result[field] = figure
    return result


def _ceil(value: float) -> int:
    return int(-(-value // 1))


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def report(filters: Filters, *, now: datetime.datetime | None = None) -> dict:
    """Every figure of the reports page, each with the drill-down (metric, value) that lists what it counts."""
    now = now or timezone.now()
    rows = conversations(filters)
    # One scan for the counts, the stars, the reasons and the durations; one for the volume; one per agent table.
    counts = rows.order_by().aggregate(
        conversations=Count("pk"),
        resolved=Count("pk", filter=Q(status=Conversation.Status.RESOLVED)),
        rated=Count("pk", filter=Q(score__isnull=False)),
        csat_positive=Count("pk", filter=Q(score__gte=4)),
        score_avg=Avg("score"),
        rated_bot=Count("pk", filter=Q(score__isnull=False) & _BOT_ONLY),
        rated_bot_positive=Count("pk", filter=Q(score__gte=4) & _BOT_ONLY),
        rated_bot_avg=Avg("score", filter=_BOT_ONLY),
        bot_confirmed=Count("pk", filter=_CONFIRMED),
        bot_assumed=Count("pk", filter=_assumed(now)),
        reopened=Count("pk", filter=Q(reopened_count__gt=0)),
        handed_off=Count("pk", filter=Q(first_handoff_at__isnull=False)),
        asked=Count("pk", filter=Q(status=Conversation.Status.RESOLVED) | Q(score__isnull=False)),
        **{f"stars_{score}": Count("pk", filter=Q(score=score)) for score in range(1, 6)},
        **{
            f"reason_{reason}": Count("pk", filter=Q(first_handoff_at__isnull=False, handoff_reason=reason))
            for reason in HandoffReason.values
        },
        **_duration_aggregates(),
    )
    total = counts["conversations"]
    distribution = {score: counts[f"stars_{score}"] for score in range(1, 6)}
    reasons = {reason: counts[f"reason_{reason}"] for reason in HandoffReason.values}
    # Counted per local hour of the range (at most 24 x days groups), then folded into hour of day and weekday.
    by_hour, by_weekday = {}, {}
    buckets = _rows(filters).order_by().annotate(bucket=TruncHour("created_at", tzinfo=filters.tz))
    for bucket, n in buckets.values_list("bucket").annotate(n=Count("pk")):
        local = bucket.astimezone(filters.tz)
        by_hour[local.hour] = by_hour.get(local.hour, 0) + n
        by_weekday[local.isoweekday()] = by_weekday.get(local.isoweekday(), 0) + n
    by_agent = (
        rows.filter(score__isnull=False, assignee__isnull=False)
        .order_by()
        .values("assignee_id", "assignee__username")
        .annotate(n=Count("pk"), positive=Count("pk", filter=Q(score__gte=4)), avg=Avg("score"))
    )
    bot_resolved = counts["bot_confirmed"] + counts["bot_assumed"]
    return {
        "filters": filters,
        "total": total,
        "durations": _durations(rows, counts),
        "csat": {
            "rated": counts["rated"],
            "positive": counts["csat_positive"],
            "positive_pct": _pct(counts["csat_positive"], counts["rated"]),
            "average": counts["score_avg"],
            "response_rate_pct": _pct(counts["rated"], counts["asked"]),
            "asked": counts["asked"],
            "distribution": [(score, distribution.get(score, 0)) for score in range(1, 6)],
            "bot": {
                "rated": counts["rated_bot"],
                "positive_pct": _pct(counts["rated_bot_positive"], counts["rated_bot"]),
                "average": counts["rated_bot_avg"],
            },
            "agents": [
                {
                    "id": row["assignee_id"],
                    "name": row["assignee__username"],
                    "rated": row["n"],
                    "positive_pct": _pct(row["positive"], row["n"]),
                    "average": row["avg"],
                }
                for row in sorted(by_agent, key=lambda row: row["assignee__username"])
            ],
        },
        "bot": {
            "confirmed": counts["bot_confirmed"],
            "assumed": counts["bot_assumed"],
            "resolved": bot_resolved,
            "resolved_pct": _pct(bot_resolved, total),
            "reopened": counts["reopened"],
        },
        "handoff": {
            "count": counts["handed_off"],
            "pct": _pct(counts["handed_off"], total),
            "reasons": [
                (reason, label, reasons.get(reason, 0), _pct(reasons.get(reason, 0), counts["handed_off"]))
                for reason, label in HandoffReason.choices
            ],
        },
        "resolved": counts["resolved"],
        "volume": {
            "hours": [by_hour.get(hour, 0) for hour in range(24)],
            "weekdays": [by_weekday.get(day, 0) for day in range(1, 8)],
        },
        "load": agents_load(filters, now=now),
    }


def agents_load(filters: Filters, *, now: datetime.datetime) -> list[dict]:
    """Per agent: conversations claimed, average concurrent conversations over the range, and the peak at once.

    Each claimed conversation is held over [first claim, release or now), clipped to the range: the average is the
    time held over the range's length (a sum in the database), the peak a running sum of +1 at each claim and -1
    at each release (a window function over those events, in the database too).
    """
    rows = _rows(filters).filter(claimed_at__isnull=False, assignee__isnull=False).order_by()
    start, end = filters.start, min(filters.end, now)
    span = max((end - start).total_seconds(), 1.0)
    opened = Greatest("claimed_at", Value(start))
    closed = Least(Coalesce("released_at", Value(now)), Value(end))
    held = ExpressionWrapper(closed - opened, output_field=DurationField())
    totals = rows.values("assignee_id", "assignee__username").annotate(
        n=Count("pk"),
        held=Sum(held, filter=Q(claimed_at__lt=end) & (Q(released_at__isnull=True) | Q(released_at__gt=start))),
    )
    peaks = _peaks(rows.annotate(opened=opened, closed=closed).filter(opened__lt=F("closed")))
    return sorted(
        (
            {
                "id": row["assignee_id"],
                "name": row["assignee__username"],
                "claimed": row["n"],
                "average_concurrent": round((row["held"] or datetime.timedelta()).total_seconds() / span, 2),
                "peak_concurrent": peaks.get(row["assignee_id"], 0),
            }
            for row in totals
        ),
        key=lambda row: row["name"],
    )


def _peaks(rows: QuerySet) -> dict[int, int]:
    """The most conversations each agent held at once: the running sum of claim (+1) and release (-1) events."""
    sql, params = rows.values_list("assignee_id", "opened", "closed").query.sql_with_params()
    # A common table expression referenced twice is computed once (PostgreSQL and SQLite alike).
    query = f"""
        WITH held AS ({sql})
        SELECT agent, MAX(level) FROM (
            SELECT agent, SUM(step) OVER (PARTITION BY agent ORDER BY at, step ROWS UNBOUNDED PRECEDING) AS level
            FROM (
                SELECT assignee_id AS agent, opened AS at, 1 AS step FROM held
                UNION ALL
                SELECT assignee_id, closed, -1 FROM held
            ) events
        ) levels
        GROUP BY agent
    """
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return {agent: int(peak) for agent, peak in cursor.fetchall()}


# --- Export: one row per conversation ---

EXPORT_COLUMNS = (
    "conversation_id",
    "created_at",
    "site",
    "channel",
    "language",
    "status",
    "agent",
    "handoff_reason",
    "first_handoff_at",
    "bot_first_response_s",
    "queue_wait_s",
    "human_first_response_s",
    "resolved_at",
    "resolution_s",
    "resolution_business_s",
    "reopened_count",
    "bot_resolution",
    "customer_confirmed",
    "rating",
    "rating_comment",
    "tags",
)


def _cell(value) -> str:
    """A CSV cell; text that a spreadsheet would run as a formula is quoted with a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).isoformat(timespec="seconds")
    if isinstance(value, float):
        return f"{value:.1f}"
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def export_rows(rows: QuerySet[Conversation], *, now: datetime.datetime | None = None) -> Iterator[dict]:
    """The export's rows (EXPORT_COLUMNS) for these conversations, read in chunks."""
    now = now or timezone.now()
    resolution = Case(
        When(_CONFIRMED, then=Value("confirmed")), When(_assumed(now), then=Value("assumed")), default=Value("")
    )
    chunk = (
        rows.annotate(bot_resolution=resolution)
        .select_related("site", "assignee", "ticket", "rating")
        .order_by("created_at")
    )
    for conversation in chunk.iterator(chunk_size=2000):
        rating = getattr(conversation, "rating", None)
        ticket = getattr(conversation, "ticket", None)
        yield {
            "conversation_id": str(conversation.pk),
            "created_at": conversation.created_at,
            "site": conversation.site.name if conversation.site_id else "",
            "channel": conversation.channel,
            "language": conversation.language,
            "status": conversation.status,
            "agent": conversation.assignee.get_username() if conversation.assignee_id else "",
            "handoff_reason": conversation.handoff_reason,
            "first_handoff_at": conversation.first_handoff_at,
            "bot_first_response_s": conversation.bot_first_response_s,
            "queue_wait_s": conversation.queue_wait_s,
            "human_first_response_s": conversation.human_first_response_s,
            "resolved_at": conversation.resolved_at,
            "resolution_s": conversation.resolution_s,
            "resolution_business_s": conversation.resolution_business_s,
            "reopened_count": conversation.reopened_count,
            "bot_resolution": conversation.bot_resolution,
            "customer_confirmed": "yes" if conversation.customer_confirmed else "no",
            "rating": rating.score if rating else None,
            "rating_comment": rating.comment if rating else "",
            "tags": ticket.tags if ticket else "",
        }


def export_csv(rows: QuerySet[Conversation], *, now: datetime.datetime | None = None) -> Iterator[str]:
    """The export as CSV text, a header then one line per conversation, produced as it is read."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(EXPORT_COLUMNS)
    yield flush()
    for row in export_rows(rows, now=now):
        writer.writerow([_cell(row[column]) for column in EXPORT_COLUMNS])
        yield flush()
