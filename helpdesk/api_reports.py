"""GET /api/v1/reports/summary and /api/v1/reports/conversations: the managers' reports for integrations (scope
`read`): the figures as JSON, and one CSV row per conversation counted, exactly as the reports page exports them."""

import datetime
import re
from typing import Annotated, Literal

from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone
from ninja import Field, Query, Router, Schema
from pydantic import BeforeValidator

from chat.api.auth import read_auth
from chat.api.errors import ApiError
from chat.api.read import ERRORS
from chat.api.selectors import conversations_visible
from helpdesk import reports

router = Router(auth=read_auth, tags=["reports"])


def _iso_date(value) -> datetime.date:
    """A date written YYYY-MM-DD (pydantic alone would also take 0 as 1 January 1970)."""
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return datetime.date.fromisoformat(value)  # ValueError for impossible dates such as 2026-02-30
    raise ValueError("use a date like 2026-01-31")


IsoDate = Annotated[datetime.date, BeforeValidator(_iso_date)]
Language = Literal[tuple(code for code, _label in reports.LANGUAGES)]
Channel = Literal[tuple(code for code, _label in reports.CHANNELS)]
Metric = Literal[tuple(reports.DRILLS)]


class ReportQuery(Schema):
    since: IsoDate | None = Field(
        None, description="First day, from 1970 (default: 29 days before `until`); not after `until`."
    )
    until: IsoDate | None = Field(None, description="Last day, included, until 2999 (default: today).")
    site: int | None = Field(None, ge=1, le=reports.ID_MAX, description="A site's id.")
    agent: int | None = Field(None, ge=1, le=reports.ID_MAX, description="An agent's user id.")
    language: Language | None = None
    channel: Channel | None = None


class DrillQuery(ReportQuery):
    metric: Metric | None = Field(None, description="Only the conversations a figure counts, e.g. handed_off.")
    value: str | None = Field(
        None,
        pattern=r"^[a-z0-9_]{1,40}$",
        description="The figure's value, for metrics that take one: rating 1-5, hour 0-23, weekday 1-7, "
        "handoff_reason a reason, agent and rated_agent a user id.",
    )


def _filters(query: ReportQuery) -> reports.Filters:
    params = {name: str(value) for name, value in query.dict().items() if value not in (None, "")}
    try:
        return reports.filters_parse(params)
    except reports.ReportError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from exc


def _jsonable(value):
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


@router.get("/reports/summary", response={200: dict, **ERRORS}, summary="The reports' figures")
def reports_summary(request: HttpRequest, query: Query[ReportQuery]):
    """Every figure of the reports page over the conversations created in the range (definitions included)."""
    filters = _filters(query)
    figures = reports.report(filters)
    figures["filters"] = filters.query()
    return {**_jsonable(figures), "definitions": reports.DEFINITIONS, "generated_at": timezone.now().isoformat()}


@router.get(
    "/reports/conversations",
    response={400: ERRORS[400], 401: ERRORS[401], 403: ERRORS[403], 429: ERRORS[429]},
    summary="Export the conversations counted, as CSV",
    openapi_extra={
        "responses": {
            "200": {
                "description": "One row per conversation: " + ", ".join(reports.EXPORT_COLUMNS),
                "content": {"text/csv": {"schema": {"type": "string"}}},
            }
        }
    },
)
def reports_conversations(request: HttpRequest, query: Query[DrillQuery]):
    """The CSV the reports page downloads: with `metric` (and `value`), only the conversations that figure counts."""
    filters = _filters(query)
    try:
        rows = (
            reports.drill_down(filters, query.metric, query.value) if query.metric else reports.conversations(filters)
        )
    except reports.ReportError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from exc
    # The rows name conversations: a read key lists the ones it may read (not other keys' API sessions), as the
    # conversation endpoints do. The summary's figures are counts, over every conversation.
    rows = rows.filter(conversations_visible(key=request.auth))
    response = StreamingHttpResponse(reports.export_csv(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="conversations-{filters.since}-{filters.until}.csv"'
    return response
