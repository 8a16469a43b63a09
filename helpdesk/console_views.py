"""The console's pages beside its live view: search across conversations, and a customer's profile with the staff's
notes about them. Both are for users with the console (helpdesk.use_console); the reads are in helpdesk.search and
helpdesk.customers, the one write (a note) is customers.customer_note_add."""

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from chat.models import Conversation
from helpdesk import customers, search


@require_GET
@login_required
@permission_required("helpdesk.use_console", raise_exception=True)
def console_search(request) -> HttpResponse:
    """Conversations found by the customer's name or email, by what was said in them and by notes, 25 a page."""
    filters = search.search_filters_parse(request.GET)
    page, results = None, []
    if not filters.empty:
        page = Paginator(search.conversations_search(filters), search.SEARCH_PAGE).get_page(request.GET.get("page"))
        results = search.search_results(list(page.object_list), filters)
    params = {"q": filters.query, "status": filters.status, "site": filters.site_id or ""}
    context = {
        "filters": filters,
        "page": page,
        "results": results,
        "query": urlencode({k: v for k, v in params.items() if v}),
        "statuses": Conversation.Status.choices,
        "sites": search.search_sites(),
    }
    return render(request, "helpdesk/search.html", context)


def profile_url(email: str) -> str:
    """The address of a customer's profile page."""
    return f"{reverse('console-customer')}?{urlencode({'email': email})}"


@require_http_methods(["GET", "POST"])
@login_required
@permission_required("helpdesk.use_console", raise_exception=True)
def customer_profile(request) -> HttpResponse:
    """A customer's conversations, ratings, tickets and notes (GET); a note about them added (POST)."""
    email = request.POST.get("email", "") if request.method == "POST" else request.GET.get("email", "")
    error, draft = "", ""
    if request.method == "POST":
        draft = request.POST.get("body", "")
        try:
            customers.customer_note_add(agent=request.user, email=email, body=draft)
        except ValidationError as exc:
            error = exc.messages[0]
        else:
            return redirect(profile_url(customers.customer_key(email)) + "#notes")
    contact = request.GET.get("contact", "") if request.method == "GET" else ""
    if contact:
        profile = customers.customer_profile(contact_id=contact)
    else:
        profile = customers.customer_profile(email=email)
    context = {
        "email": email,
        "contact": contact,
        "profile": profile,
        "error": error,
        "draft": draft,
        "note_max": customers.NOTE_MAX_CHARS,
    }
    status = 400 if error or (email and profile is None) else 404 if contact and profile is None else 200
    return render(request, "helpdesk/customer.html", context, status=status)
