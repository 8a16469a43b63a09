"""The managers' reports page in real Chromium against daphne: a week of history seeded on two sites, a manager
filters it, sees the charts drawn by the locally served Chart.js, clicks a bar and gets exactly the conversations it
counts, opens a transcript, downloads the CSV; without JavaScript the same figures are links. The screenshots are
kept in artifacts/reports.png, reports-conversations.png and reports-transcript.png."""

import csv
import datetime

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from chat.models import Conversation, HandoffReason, Message, Rating, Site
from helpdesk import reports
from helpdesk.models import Ticket
from tests import stack

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "meg-pass-123"


@pytest.fixture(scope="module")
def reports_server(production_env, logs_dir):
    """daphne on the test database; the reports need no worker and no model."""
    web, base_url = stack.start_web(
        {**production_env, "GENERATION_BACKEND": "inprocess"}, logs_dir, name="daphne-reports"
    )
    yield base_url
    web.stop()


def _at(days_ago: int, hour: int, minute: int = 0) -> datetime.datetime:
    day = timezone.localdate() - datetime.timedelta(days=days_ago)
    return datetime.datetime.combine(day, datetime.time(hour, minute), datetime.UTC)


def _conversation(site, created: datetime.datetime, **fields) -> Conversation:
    """History: the report columns as chat's services would have kept them, written directly."""
    fields.setdefault("first_customer_message_at", created)
    fields.setdefault("last_message_at", created + datetime.timedelta(minutes=5))
    row = Conversation.objects.create(site=site, secret_hash="0" * 64, **fields)
    Conversation.objects.filter(pk=row.pk).update(created_at=created)
    row.created_at = created
    return row


def group_with(name: str, *codenames: str) -> Group:
    """The role's group with these permissions (an earlier end-to-end test's flush removed the migrations' groups)."""
    group, _ = Group.objects.get_or_create(name=name)
    group.permissions.add(*Permission.objects.filter(content_type__app_label="helpdesk", codename__in=codenames))
    return group


@database_sync_to_async
def seed() -> dict:
    User = get_user_model()
    manager = User.objects.create_user("meg", password=PASSWORD)
    manager.groups.add(group_with("manager", "use_console", "view_reports"))
    ann = User.objects.create_user("ann", password="ann-pass-123")
    ann.groups.add(group_with("agent", "use_console"))
    acme, other = Site.objects.create(name="Acme shop"), Site.objects.create(name="Other shop")

    def handed(created, reason, queue_s, human_s, resolution_s, **fields):
        return _conversation(
            acme,
            created,
            status=Conversation.Status.RESOLVED,
            assignee=ann,
            handoff_reason=reason,
            first_handoff_at=created + datetime.timedelta(seconds=30),
            claimed_at=created + datetime.timedelta(seconds=30 + queue_s),
            queue_wait_s=queue_s,
            human_first_response_s=human_s,
            resolved_at=created + datetime.timedelta(seconds=resolution_s),
            resolution_s=resolution_s,
            resolution_business_s=resolution_s,
            **fields,
        )

    c = {
        "confirmed": _conversation(acme, _at(3, 9, 15), bot_first_response_s=2.4, customer_confirmed=True),
        "assumed": _conversation(acme, _at(3, 9, 40), bot_first_response_s=3.1, customer_name="Sam"),
        "refund": handed(
            _at(2, 14, 5), HandoffReason.CUSTOMER_REQUEST, 95, 240, 5_400, customer_name="Li Wei", language="zh"
        ),
        "invoice": handed(_at(2, 14, 30), HandoffReason.NO_KNOWLEDGE, 300, 600, 9_000, customer_name="Jo"),
        "waiting": _conversation(
            acme,
            _at(1, 20, 10),
            status=Conversation.Status.QUEUED,
            handoff_reason=HandoffReason.OFFLINE_MESSAGE,
            first_handoff_at=_at(1, 20, 10),
            customer_name="Ola",
        ),
        # Filtered out: another site at the same hour, and Acme three weeks ago.
        "other_site": _conversation(other, _at(2, 14, 50), bot_first_response_s=1.0),
        "long_ago": _conversation(acme, _at(21, 14, 0), bot_first_response_s=1.5),
    }
    Rating.objects.create(conversation=c["confirmed"], score=5)
    Rating.objects.create(conversation=c["refund"], score=4, comment="Sorted out in minutes, thank you")
    Rating.objects.create(conversation=c["invoice"], score=2, comment="Took too long")
    Ticket.objects.create(conversation=c["refund"], subject="Refund for order 1042", tags="billing")
    script = [
        ("customer", "我要退款，订单 1042", None),
        ("bot", "I'm passing you to a colleague who can help with refunds.", None),
        ("note", "Order 1042 was paid by card: refund through the payment provider", ann),
        ("agent", "The refund for order 1042 is on its way: 3-5 days on your card.", ann),
        ("customer", "Thank you!", None),
    ]
    for seq, (role, content, author) in enumerate(script, start=1):
        message = Message.objects.create(conversation=c["refund"], seq=seq, role=role, content=content, author=author)
        moment = c["refund"].created_at + datetime.timedelta(seconds=[0, 20, 100, 270, 300][seq - 1])
        Message.objects.filter(pk=message.pk).update(created_at=moment)
    return {"ids": {name: str(row.pk) for name, row in c.items()}, "acme": acme.pk}


async def sign_in(browser, base: str, **context_options):
    context = await browser.new_context(viewport={"width": 1360, "height": 900}, **context_options)
    page = await context.new_page()
    await page.goto(f"{base}/accounts/login/?next=/reports/")
    await page.fill("#id_username", "meg")
    await page.fill("#id_password", PASSWORD)
    async with page.expect_navigation():
        await page.click("button[type=submit]")
    return context, page


# Whether a chart's canvas has anything painted on it, and where its bar `index` is (in CSS pixels).
CANVAS_STATE = """([name, index]) => {
  const canvas = document.querySelector(`canvas[data-chart="${name}"]`);
  const chart = window.Chart && window.Chart.getChart(canvas);
  if (!chart) return null;
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i]) painted++;
  const bar = chart.getDatasetMeta(0).data[index];
  return {painted, width: canvas.width, height: canvas.height, x: bar.x, y: (bar.y + bar.base) / 2,
          value: chart.data.datasets[0].data[index]};
}"""


async def test_a_manager_filters_the_report_drills_into_a_chart_and_downloads_the_csv(
    browser, reports_server, artifacts_dir
):
    seeded = await seed()
    ids = seeded["ids"]
    since = (timezone.localdate() - datetime.timedelta(days=7)).isoformat()
    until = timezone.localdate().isoformat()
    context, page = await sign_in(browser, reports_server)
    assert page.url == reports_server + "/reports/"
    assert await page.get_attribute("nav.top__nav a[href='/reports/']", "aria-current") == "page"

    # (a) The filters: the last week, one site.
    await page.fill("input[name=since]", since)
    await page.fill("input[name=until]", until)
    await page.select_option("select[name=site]", str(seeded["acme"]))
    async with page.expect_navigation():
        await page.click(".rp__filters button[type=submit]")
    assert f"site={seeded['acme']}" in page.url and f"since={since}" in page.url
    assert await page.text_content("[data-figure=conversations]") == "5"
    assert await page.input_value("select[name=site]") == str(seeded["acme"])
    # Nearest rank: the bot answered in 2.4 and 3.1 s (median 2.4 s), the agent in 240 and 600 s.
    timings = page.locator("#response-times tbody tr")
    assert await timings.nth(0).locator("td").all_text_contents() == ["2", "2.4 s", "3.1 s", "2.8 s"]
    assert await timings.nth(1).locator("td").all_text_contents() == ["2", "4 min", "10 min", "7 min"]

    # (b) The charts are drawn by the locally served Chart.js, and their figure tables fold away.
    await page.wait_for_function("() => document.getElementById('report').classList.contains('has-charts')")
    for name in ("hours", "weekdays", "ratings", "reasons"):
        state = await page.evaluate(CANVAS_STATE, [name, 0])
        assert state and state["width"] > 100 and state["height"] > 100, name
        assert state["painted"] > 500, f"{name} chart is blank"
    assert not await page.locator("#volume-hour details").evaluate("details => details.open")
    hours = await page.evaluate(CANVAS_STATE, ["hours", 14])
    assert hours["value"] == 2  # 14:05 and 14:30 at Acme; the other site's 14:50 is filtered out

    # (c) Clicking the 14:00 bar lists exactly the conversations it counts.
    canvas = page.locator("canvas[data-chart=hours]")
    await canvas.scroll_into_view_if_needed()
    box = await canvas.bounding_box()
    async with page.expect_navigation():
        await page.mouse.click(box["x"] + hours["x"], box["y"] + hours["y"])
    assert "metric=hour" in page.url and "value=14" in page.url
    assert await page.text_content("h1") == "Created at 14:00"
    assert await page.text_content("#drill-count") == "2"
    listed = await page.locator("#drill-rows tbody tr").evaluate_all(
        "rows => rows.map(row => row.dataset.conversation)"
    )
    assert listed == [ids["invoice"], ids["refund"]]  # newest first
    await page.screenshot(path=str(artifacts_dir / "reports-conversations.png"), full_page=True)

    # (d) A row opens the transcript: messages in order, the private note apart, the rating and the ticket.
    async with page.expect_navigation():
        await page.click(f"tr[data-conversation='{ids['refund']}'] td:first-child a")
    assert page.url.startswith(f"{reports_server}/reports/conversations/{ids['refund']}/")
    roles = await page.locator("#transcript li").evaluate_all("items => items.map(item => item.dataset.role)")
    assert roles == ["customer", "bot", "note", "agent", "customer"]
    assert "Private note" in await page.text_content("#transcript .msg--note")
    assert "Sorted out in minutes" in await page.text_content("#rating")
    assert "Refund for order 1042" in await page.text_content("main")
    assert "1 min 35 s" in await page.text_content("#report-columns")  # the queue wait, 95 s
    await page.screenshot(path=str(artifacts_dir / "reports-transcript.png"), full_page=True)
    async with page.expect_navigation():
        await page.click("text=Back to the list")
    assert "metric=hour" in page.url

    # (e) The list's CSV: a header row, then exactly its conversations.
    async with page.expect_download() as download_info:
        await page.click("#export-csv")
    download = await download_info.value
    assert download.suggested_filename == f"conversations-{since}-{until}-hour-14.csv"
    rows = list(csv.reader((await download.path()).read_text().splitlines()))
    assert rows[0] == list(reports.EXPORT_COLUMNS)
    exported = {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    assert set(exported) == {ids["refund"], ids["invoice"]}
    assert exported[ids["refund"]]["rating_comment"] == "Sorted out in minutes, thank you"
    assert (exported[ids["invoice"]]["agent"], exported[ids["invoice"]]["handoff_reason"]) == ("ann", "no_knowledge")

    # The whole report's CSV from the report page: the five Acme conversations of the week.
    await page.goto(f"{reports_server}/reports/?since={since}&until={until}&site={seeded['acme']}")
    async with page.expect_download() as download_info:
        await page.click("#export-csv")
    rows = list(csv.DictReader((await (await download_info.value).path()).read_text().splitlines()))
    assert {row["conversation_id"] for row in rows} == {
        ids[name] for name in ("confirmed", "assumed", "refund", "invoice", "waiting")
    }
    await page.wait_for_function("() => document.getElementById('report').classList.contains('has-charts')")
    await page.wait_for_timeout(400)  # the bars' short animation
    await page.screenshot(path=str(artifacts_dir / "reports.png"), full_page=True)
    await context.close()


async def test_without_javascript_every_figure_is_still_a_link(browser, reports_server):
    seeded = await seed()
    context, page = await sign_in(browser, reports_server, java_script_enabled=False)
    await page.goto(f"{reports_server}/reports/?site={seeded['acme']}")  # the last 30 days
    assert await page.locator("canvas[data-chart=hours]").is_hidden()
    assert await page.text_content("[data-figure=hour-14] strong") == "3"  # with the one three weeks ago
    assert await page.text_content("[data-figure=rating-2]") == "1"
    async with page.expect_navigation():
        await page.click("[data-figure=reason-no_knowledge]")
    listed = await page.locator("#drill-rows tbody tr").evaluate_all(
        "rows => rows.map(row => row.dataset.conversation)"
    )
    assert listed == [seeded["ids"]["invoice"]]
    await context.close()
