"""GET /api/v1/reports/summary and /api/v1/reports/conversations: the managers' reports for integrations (scope
`read`): the figures as JSON, and one CSV row per conversation counted, exactly as the reports page exports them."""

import datetime

from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone
from ninja import Field, Query, Router, Schema

from chat.api.auth import read_auth
from chat.api.errors import ApiError
from chat.api.read import ERRORS
from helpdesk import reports

router = Router(auth=read_auth, tags=["reports"])


class ReportQuery(Schema):
    since: datetime.date | None = Field(None, description="First day (default: 29 days before `until`).")
    until: datetime.date | None = Field(None, description="Last day, included (default: today).")
    site: int | None = Field(None, description="A site's id.")
    agent: int | None = Field(None, description="An agent's user id.")
    language: str | None = Field(None, description="en or zh.")
    channel: str | None = Field(None, description="widget or api.")


class DrillQuery(ReportQuery):
    metric: str | None = Field(None, description="Only the conversations a figure counts, e.g. handed_off.")
    value: str | None = Field(None, description="The figure's value, for metrics that take one (rating: 1-5).")


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
    response = StreamingHttpResponse(reports.export_csv(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="conversations-{filters.since}-{filters.until}.csv"'
    return response
