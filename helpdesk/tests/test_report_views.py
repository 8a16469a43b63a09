"""The reports pages: who may see what (managers everything, agents their own, others nothing), refused filters
said as a 400, the drill-down listing exactly what the figure counts, a transcript, and the CSV download."""

import csv
import datetime
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from chat.models import Conversation, HandoffReason, Message, Rating, Site
from helpdesk import reports
from helpdesk.models import Ticket
from helpdesk.report_views import duration_text

pytestmark = pytest.mark.django_db

ROW = re.compile(r'data-conversation="([0-9a-f-]{36})"')


def user_in(group: str | None, username: str):
    user = get_user_model().objects.create_user(username)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


def conversation(*, hours_ago: float = 2, **fields) -> Conversation:
    """A conversation with its report columns set directly (the services that keep them have their own tests)."""
    created = timezone.now() - datetime.timedelta(hours=hours_ago)
    fields.setdefault("first_customer_message_at", created)
    row = Conversation.objects.create(secret_hash="0" * 64, **fields)
    Conversation.objects.filter(pk=row.pk).update(created_at=created)
    return Conversation.objects.get(pk=row.pk)


@pytest.fixture
def world():
    ann, bob = user_in("agent", "ann"), user_in("agent", "bob")
    shop = Site.objects.create(name="Shop")
    bot_only = conversation(site=shop, bot_first_response_s=3.5, customer_confirmed=True, customer_name="Zoe")
    anns = conversation(
        site=shop,
        customer_name="Li Wei",
        customer_email="li@example.com",
        status=Conversation.Status.RESOLVED,
        assignee=ann,
        handoff_reason=HandoffReason.CUSTOMER_REQUEST,
        first_handoff_at=timezone.now() - datetime.timedelta(hours=1),
        claimed_at=timezone.now() - datetime.timedelta(minutes=58),
        queue_wait_s=120,
        human_first_response_s=300,
        resolved_at=timezone.now(),
        resolution_s=7_200,
        resolution_business_s=3_600,
    )
    bobs = conversation(
        site=shop,
        assignee=bob,
        status=Conversation.Status.AGENT,
        handoff_reason=HandoffReason.NO_KNOWLEDGE,
        first_handoff_at=timezone.now() - datetime.timedelta(hours=1),
        claimed_at=timezone.now() - datetime.timedelta(minutes=50),
        queue_wait_s=600,
    )
    Rating.objects.create(conversation=anns, score=2, comment="Too slow")
    Rating.objects.create(conversation=bot_only, score=5)
    Ticket.objects.create(conversation=anns, subject="Refund", tags="billing, vip")
    for seq, (role, content, author) in enumerate(
        [
            ("customer", "I want my money back", None),
            ("bot", "Let me find a person for you.", None),
            ("note", "Check the order in the back office first", ann),
            ("agent", "Your refund is on its way.", ann),
        ],
        start=1,
    ):
        Message.objects.create(conversation=anns, seq=seq, role=role, content=content, author=author)
    return {"ann": ann, "bob": bob, "shop": shop, "bot_only": bot_only, "anns": anns, "bobs": bobs}


@pytest.fixture
def manager():
    return user_in("manager", "meg")


def listed(response) -> set[str]:
    return set(ROW.findall(response.content.decode()))


def all_filters(**params):
    return reports.filters_parse(params)


# --- Access ---


@pytest.mark.parametrize("path", ["/reports/", "/reports/conversations/", "/reports/export.csv"])
def test_anonymous_visitors_are_sent_to_log_in(client, path):
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_anonymous_visitors_are_sent_to_log_in_from_a_transcript(client, world):
    response = client.get(f"/reports/conversations/{world['anns'].pk}/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_a_user_without_a_staff_role_is_refused_every_report_page(client, world):
    client.force_login(user_in(None, "customer"))
    for path in (
        "/reports/",
        "/reports/conversations/",
        "/reports/export.csv",
        f"/reports/conversations/{world['anns'].pk}/",
    ):
        assert client.get(path).status_code == 403, path


def test_a_manager_sees_every_agent_and_the_agent_filter(client, world, manager):
    client.force_login(manager)
    response = client.get("/reports/")
    page = response.content.decode()
    assert response.status_code == 200
    assert 'name="agent"' in page and ">ann</option>" in page and ">bob</option>" in page
    assert response.context["figures"]["total"] == 3
    assert 'href="/reports/"' in page and "aria-current" in page  # the nav link, current
    assert "Your conversations only" not in page


def test_an_agent_sees_only_their_own_figures_without_the_agent_filter(client, world):
    client.force_login(world["ann"])
    response = client.get("/reports/", {"agent": str(world["bob"].pk)})
    page = response.content.decode()
    assert response.status_code == 200
    assert 'name="agent"' not in page and "Your conversations only" in page
    assert response.context["figures"]["total"] == 1  # ann's one conversation, whatever agent was asked for
    assert response.context["filters"].agent_id == world["ann"].pk


def test_an_agent_drills_down_into_their_own_conversations_only(client, world):
    client.force_login(world["ann"])
    for params in ({}, {"agent": str(world["bob"].pk)}, {"metric": "claimed"}):
        assert listed(client.get("/reports/conversations/", params)) == {str(world["anns"].pk)}, params
    assert listed(client.get("/reports/conversations/", {"metric": "agent", "value": world["bob"].pk})) == set()


def test_an_agent_opens_only_the_transcripts_assigned_to_them(client, world):
    client.force_login(world["ann"])
    assert client.get(f"/reports/conversations/{world['anns'].pk}/").status_code == 200
    assert client.get(f"/reports/conversations/{world['bobs'].pk}/").status_code == 404
    assert client.get(f"/reports/conversations/{world['bot_only'].pk}/").status_code == 404


def test_an_agents_export_holds_only_their_conversations(client, world):
    client.force_login(world["ann"])
    response = client.get("/reports/export.csv", {"agent": str(world["bob"].pk)})
    rows = list(csv.DictReader(b"".join(response.streaming_content).decode().splitlines()))
    assert [row["conversation_id"] for row in rows] == [str(world["anns"].pk)]


def test_a_manager_opens_any_transcript(client, world, manager):
    client.force_login(manager)
    for name in ("anns", "bobs", "bot_only"):
        assert client.get(f"/reports/conversations/{world[name].pk}/").status_code == 200


# --- Refused input ---


@pytest.mark.parametrize(
    "params, message",
    [
        ({"since": "yesterday"}, "since must be a date"),
        ({"since": "2026-11-30", "until": "2026-11-01"}, "since must not be after until"),
        ({"site": "999999"}, "There is no such site"),
        ({"channel": "email"}, "channel must be one of"),
    ],
)
def test_unusable_filters_get_a_400_with_the_reason(client, manager, params, message):
    client.force_login(manager)
    for path in ("/reports/", "/reports/conversations/", "/reports/export.csv"):
        response = client.get(path, params)
        assert response.status_code == 400, path
        assert message in response.content.decode(), path
    # The form keeps what was sent, to be corrected.
    page = client.get("/reports/", params).content.decode()
    assert 'name="since"' in page and "report-charts" not in page


@pytest.mark.parametrize(
    "params", [{"metric": "nope"}, {"metric": "rating", "value": "9"}, {"metric": "hour", "value": "x"}]
)
def test_an_unknown_figure_gets_a_400_with_the_reason(client, manager, params):
    client.force_login(manager)
    response = client.get("/reports/conversations/", params)
    assert response.status_code == 400 and "cannot be shown" in response.content.decode()
    assert client.get("/reports/export.csv", params).status_code == 400


def test_an_unknown_transcript_is_a_404(client, manager):
    client.force_login(manager)
    assert client.get("/reports/conversations/00000000-0000-0000-0000-000000000000/").status_code == 404


# --- Drill-downs ---


@pytest.mark.parametrize(
    "metric, value",
    [
        ("conversations", None),
        ("bot_replied", None),
        ("claimed", None),
        ("resolved", None),
        ("rated", None),
        ("rating", "2"),
        ("rated_bot", None),
        ("bot_confirmed", None),
        ("handed_off", None),
        ("handoff_reason", "no_knowledge"),
        ("agent", "ann"),
    ],
)
def test_the_drill_down_page_lists_exactly_the_conversations_of_drill_down(client, world, manager, metric, value):
    value = str(world["ann"].pk) if value == "ann" else value
    expected = {str(pk) for pk in reports.drill_down(all_filters(), metric, value).values_list("pk", flat=True)}
    assert expected  # each case counts something in the world
    client.force_login(manager)
    params = {"metric": metric, **({"value": value} if value else {})}
    response = client.get("/reports/conversations/", params)
    assert response.status_code == 200
    assert listed(response) == expected
    assert f'<strong id="drill-count">{len(expected)}</strong>' in response.content.decode()
    assert response.context["title"] == reports.drill_title(metric, value)


def test_every_figure_on_the_page_links_to_a_drill_down_that_answers(client, world, manager):
    client.force_login(manager)
    page = client.get("/reports/").content.decode()
    links = set(re.findall(r'href="(/reports/conversations/\?[^"]+)"', page))
    assert len(links) > 40  # figures, table rows, the hours, the days, the stars, the reasons
    for link in links:
        assert client.get(link.replace("&amp;", "&")).status_code == 200, link


def test_the_drill_down_is_paginated_100_a_page(client, world, manager):
    for _ in range(100):
        conversation(bot_first_response_s=1.0)
    client.force_login(manager)
    first = client.get("/reports/conversations/", {"metric": "bot_replied"})
    second = client.get("/reports/conversations/", {"metric": "bot_replied", "page": "2"})
    assert len(listed(first)) == 100 and len(listed(second)) == 1
    assert not listed(first) & listed(second)
    assert "Page 1 of 2" in first.content.decode()


def test_the_drill_down_shows_the_figures_value(client, world, manager):
    client.force_login(manager)
    page = client.get("/reports/conversations/", {"metric": "resolved"}).content.decode()
    assert "Resolution (business hours)" in page and "2 h (1 h)" in page
    page = client.get("/reports/conversations/", {"metric": "claimed"}).content.decode()
    assert "2 min" in page and "10 min" in page


# --- Transcript ---


def test_the_transcript_shows_messages_notes_apart_rating_ticket_and_figures(client, world, manager):
    client.force_login(manager)
    anns = world["anns"]
    page = client.get(f"/reports/conversations/{anns.pk}/", {"metric": "claimed"}).content.decode()
    assert page.index("I want my money back") < page.index("Your refund is on its way.")
    assert 'class="msg msg--note"' in page and "Private note · ann" in page
    assert "Too slow" in page and "2/5" in page
    assert "Refund" in page and "billing, vip" in page
    assert "Queue wait</dt><dd>2 min</dd>" in page and "Resolution, business hours</dt><dd>1 h</dd>" in page
    assert "/reports/conversations/?" in page and "metric=claimed" in page  # back to the list it came from


# --- Export ---


def test_the_csv_download_is_an_attachment_with_the_export_columns(client, world, manager):
    client.force_login(manager)
    response = client.get("/reports/export.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="conversations-\d{4}-\d\d-\d\d-\d{4}-\d\d-\d\d\.csv"', response["Content-Disposition"]
    )
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert next(csv.reader(lines[:1])) == list(reports.EXPORT_COLUMNS)
    assert {row["conversation_id"] for row in csv.DictReader(lines)} == {
        str(world[name].pk) for name in ("anns", "bobs", "bot_only")
    }


def test_the_csv_of_a_figure_holds_its_drill_down(client, world, manager):
    client.force_login(manager)
    response = client.get("/reports/export.csv", {"metric": "rating", "value": "2"})
    assert 'filename="conversations-' in response["Content-Disposition"]
    assert response["Content-Disposition"].endswith('-rating-2.csv"')
    rows = list(csv.DictReader(b"".join(response.streaming_content).decode().splitlines()))
    assert [(row["conversation_id"], row["rating"], row["rating_comment"]) for row in rows] == [
        (str(world["anns"].pk), "2", "Too slow")
    ]


# --- The page itself ---


def test_the_page_runs_no_inline_script_and_carries_the_chart_data(client, world, manager):
    client.force_login(manager)
    page = client.get("/reports/").content.decode()
    scripts = re.findall(r"<script([^>]*)>", page)
    assert scripts and all("src=" in attrs or 'type="application/json"' in attrs for attrs in scripts)
    assert "vendor/chart.umd.min.js" in page and "helpdesk/reports.js" in page
    assert 'id="report-charts"' in page
    assert "cdn" not in page.lower()
    for text in reports.DEFINITIONS.values():
        assert text.split(".")[0].replace("'", "&#x27;") in page


def test_the_staff_pages_link_to_the_reports(client, world):
    client.force_login(world["ann"])
    assert 'href="/reports/"' in client.get("/console/").content.decode()


@pytest.mark.parametrize(
    "seconds, text",
    [
        (None, "—"),
        (0, "0.0 s"),
        (4.25, "4.2 s"),
        (45, "45 s"),
        (125, "2 min 5 s"),
        (120, "2 min"),
        (3_600, "1 h"),
        (11_400, "3 h 10 min"),
        (86_400 * 2 + 3_600 * 4 + 59, "2 d 4 h"),
    ],
)
def test_durations_read_as_people_say_them(seconds, text):
    assert duration_text(seconds) == text
