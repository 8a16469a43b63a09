"""Page-number pagination for the API's lists: `?page=&page_size=` in, `{items, count, page, page_size, next}` out."""

from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Field, Schema

MAX_PAGE_SIZE = 100


class PageIn(Schema):
    page: int = Field(1, ge=1, description="1 for the first page.")
    page_size: int = Field(20, ge=1, le=MAX_PAGE_SIZE, description=f"Items per page, at most {MAX_PAGE_SIZE}.")


class PageOut(Schema):
    """The common part of every list; subclasses add `items`."""

    count: int = Field(..., description="Items matching the filters, on every page.")
    page: int
    page_size: int
    next: str | None = Field(None, description="The next page's URL, or null on the last page.")


def paginate(request: HttpRequest, queryset: QuerySet, paging: PageIn) -> dict:
    """One page of `queryset` (already filtered and ordered). A page past the end is empty, not an error."""
    count = queryset.count()
    offset = (paging.page - 1) * paging.page_size
    # Past the end no query is made: a huge page number would otherwise reach the database as an out-of-range OFFSET.
    items = list(queryset[offset : offset + paging.page_size]) if offset < count else []
    next_url = None
    if offset + paging.page_size < count:
        query = request.GET.copy()
        query["page"] = str(paging.page + 1)
        query["page_size"] = str(paging.page_size)
        next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
    return {"items": items, "count": count, "page": paging.page, "page_size": paging.page_size, "next": next_url}
