"""The managers' report figures against a hand-computed fixture: conversations made through the real services at
frozen times, their figures worked out by hand below (medians, 90th percentiles, business hours, a reopened
conversation, time zones), and each drill-down listing exactly the conversations counted."""

import csv
import datetime

import pytest
import time_machine
from django.contrib.auth import get_user_model

from chat import services as chat_services
from chat.models import ApiKey, Conversation, HandoffReason, Message, Site, SiteHours
from chat.services.replies import ReplyStats, reply_complete, reply_start
from helpdesk import reports
from helpdesk import services as helpdesk_services

pytestmark = pytest.mark.django_db

UTC = datetime.UTC
NOW = datetime.datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
NOVEMBER = {"since": "2026-11-01", "until": "2026-11-30"}


def at(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 11) -> datetime.datetime:
    return datetime.datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


def travel(moment):
    return time_machine.travel(moment, tick=False)


class Story:
    """Drives one conversation through the services, each step at its own frozen moment."""

    def __init__(self, conversation: Conversation):
        self.id = conversation.id

    @classmethod
    def start(cls, moment, **fields) -> "Story":
        with travel(moment):
            conversation, _secret = chat_services.conversation_start(**fields)
        return cls(conversation)

    def customer(self, moment, text="Where is my parcel?") -> Message:
        with travel(moment):
            message, _created = chat_services.message_post_customer(conversation_id=self.id, content=text)
        return message

    def bot(self, moment, message: Message, text="Parcels arrive in 3-5 business days.") -> None:
        with travel(moment):
            reply = reply_start(customer_message_id=message.id)
            stats = ReplyStats(engine="test", prompt_tokens=10, completion_tokens=5, ttft_ms=100, tokens_per_s=20.0)
            reply_complete(reply_id=reply.id, content=text, stats=stats)

    def hand_off(self, moment, reason, message: Message) -> None:
        with travel(moment):
            chat_services.conversation_hand_off(conversation_id=self.id, reason=reason, message_id=message.id)

    def claim(self, moment, agent) -> None:
        with travel(moment):
            assert helpdesk_services.conversation_claim(conversation_id=self.id, agent=agent, enforce_capacity=False)

    def agent(self, moment, agent, text="Let me check that for you.") -> None:
        with travel(moment):
            chat_services.message_post_agent(conversation_id=self.id, agent=agent, content=text)

    def resolve(self, moment, agent=None) -> None:
        with travel(moment):
            chat_services.conversation_resolve(conversation_id=self.id, agent=agent, by_customer=agent is None)

    def rate(self, moment, score: int, comment="") -> None:
        with travel(moment):
            chat_services.rating_create(conversation_id=self.id, score=score, comment=comment)


@pytest.fixture
def world():
    """The fixture conversations (November 2026; the 2nd is a Monday). Shop's team works Monday to Friday,
    09:00-17:00 Paris time, which is 08:00-16:00 UTC in November."""
    User = get_user_model()
    ann, bob = User.objects.create_user("ann"), User.objects.create_user("bob")
    shop = Site.objects.create(name="Shop", timezone="Europe/Paris")
    for weekday in range(5):
        SiteHours.objects.create(site=shop, weekday=weekday, opens=datetime.time(9), closes=datetime.time(17))
    key = ApiKey.objects.create(name="Backend", prefix="abcd", key_hash="0" * 64, scopes=["chat"])
    c = {}

    # C1: the bot answers in 4 s; the customer says it helped: resolved by the bot, confirmed.
    c[1] = Story.start(at(2, 10), site=shop)
    c[1].bot(at(2, 10, 0, 4), c[1].customer(at(2, 10)))
    c[1].customer(at(2, 10, 1), "Thanks, that helped!")
    # C2: the bot answers in 10 s; silence since: resolved by the bot, assumed.
    c[2] = Story.start(at(2, 11), site=shop)
    c[2].bot(at(2, 11, 0, 10), c[2].customer(at(2, 11)))
    # C3: the bot answers in 2 s; the customer ends the chat 5 min after creation and rates it 5.
    c[3] = Story.start(at(3, 9), site=shop)
    c[3].bot(at(3, 9, 0, 2), c[3].customer(at(3, 9)))
    c[3].resolve(at(3, 9, 5))
    c[3].rate(at(3, 9, 6), 5, "Quick!")
    # C4: asks for a person at 15:00 on Tuesday; ann claims at 15:02 (queue 120 s), answers at 15:05 (300 s),
    # resolves on Wednesday at 08:30: 63,000 s in all, of which 16:00-17:00 and 09:00-09:30 Paris are business
    # hours (3,600 + 1,800 = 5,400 s). Rated 2.
    c[4] = Story.start(at(3, 15), site=shop)
    c[4].customer(at(3, 15), "I want to talk to a human")
    c[4].claim(at(3, 15, 2), ann)
    c[4].agent(at(3, 15, 5), ann)
    c[4].resolve(at(4, 8, 30), ann)
    c[4].rate(at(4, 9), 2, '=HYPERLINK("http://evil")')
    # C5 (Chinese): the bot knows nothing and hands off at 12:00:06 (its reply took 6 s); bob claims at 12:10
    # (594 s), answers at 12:20 (1,194 s), resolves at 12:30; rated 4; the customer writes again the next day:
    # reopened, no longer resolved, and back with the team (bob is not online: in the queue, not with the bot).
    c[5] = Story.start(at(5, 12), site=shop, language="zh")
    first = c[5].customer(at(5, 12), "发票怎么开？")
    c[5].bot(at(5, 12, 0, 6), first, "抱歉，我不确定，正在为您转接人工客服。")
    c[5].hand_off(at(5, 12, 0, 6), HandoffReason.NO_KNOWLEDGE, first)
    c[5].claim(at(5, 12, 10), bob)
    c[5].agent(at(5, 12, 20), bob, "您好，发票在订单页面申请。")
    c[5].resolve(at(5, 12, 30), bob)
    c[5].rate(at(5, 12, 31), 4)
    c[5].customer(at(6, 10), "还有一个问题")
    # C6 (Chinese): a message left on Saturday at 20:00 while nobody was there; ann claims on Monday at 08:00
    # (129,600 s), answers at 08:10 (130,200 s), resolves at 08:15: 130,500 s, of which Monday 08:00-08:15 UTC is
    # business time (900 s). Not rated.
    with travel(at(7, 20)):
        conversation, _secret = chat_services.message_leave(
            site=shop, content="请联系我", customer_name="王", customer_email="wang@example.com", language="zh"
        )
    c[6] = Story(conversation)
    c[6].claim(at(9, 8), ann)
    c[6].agent(at(9, 8, 10), ann)
    c[6].resolve(at(9, 8, 15), ann)
    # C7: through the API on Sunday at 03:00, answered in 3 s; silence since: assumed.
    with travel(at(8, 3)):
        conversation = chat_services.conversation_for_api_session(api_key=key, session_id="order-42")
    c[7] = Story(conversation)
    c[7].bot(at(8, 3, 0, 3), c[7].customer(at(8, 3)))
    # C8: opened, never written to: not a conversation for the reports.
    c[8] = Story.start(at(10, 9), site=shop)
    # C9: 23:30 UTC on 31 October, which is 00:30 on 1 November in Paris: in the site's report only. 5 s.
    c[9] = Story.start(at(31, 23, 30, month=10), site=shop)
    c[9].bot(at(31, 23, 30, 5, month=10), c[9].customer(at(31, 23, 30, month=10)))
    # C10: answered in 8 s on Monday the 9th; the customer comes back 25 h later: reopened, not a bot resolution.
    c[10] = Story.start(at(9, 10), site=shop)
    c[10].bot(at(9, 10, 0, 8), c[10].customer(at(9, 10)))
    c[10].customer(at(10, 11), "It still has not arrived.")
    # C11: December: outside the range.
    c[11] = Story.start(at(1, 9, month=12), site=shop)
    c[11].customer(at(1, 9, month=12))
    return {"c": c, "ann": ann, "bob": bob, "shop": shop}


def ids(world, *numbers) -> set:
    return {world["c"][n].id for n in numbers}


def report_for(params=None, **kwargs):
    filters = reports.filters_parse({**NOVEMBER, **(params or {})}, today=NOW.date(), **kwargs)
    return filters, reports.report(filters, now=NOW)


def drilled(filters, metric, value=None) -> set:
    return set(reports.drill_down(filters, metric, value, now=NOW).values_list("pk", flat=True))


def test_the_services_keep_each_conversations_figures(world):
    rows = {n: Conversation.objects.get(pk=story.id) for n, story in world["c"].items()}
    assert rows[1].bot_first_response_s == 4 and rows[1].customer_confirmed
    assert rows[4].queue_wait_s == 120 and rows[4].human_first_response_s == 300
    assert (rows[4].resolution_s, rows[4].resolution_business_s) == (63_000, 5_400)
    assert rows[5].reopened_count == 1 and rows[5].status == Conversation.Status.QUEUED
    assert rows[5].resolution_s is None and rows[5].released_at == at(5, 12, 30)
    assert (rows[6].queue_wait_s, rows[6].human_first_response_s) == (129_600, 130_200)
    assert (rows[6].resolution_s, rows[6].resolution_business_s) == (130_500, 900)
    assert rows[10].reopened_count == 1
    assert rows[8].first_customer_message_at is None


def test_report_figures_match_the_hand_computed_ones(world):
    _filters, figures = report_for()
    assert figures["total"] == 8  # C1-C7 and C10: C8 has no message, C9 and C11 are outside the range
    durations = figures["durations"]
    # Bot: 2, 3, 4, 6, 8, 10 s. Nearest rank: the median is the 3rd value, the 90th percentile the 6th.
    assert durations["bot_first_response_s"] == {"n": 6, "avg": 5.5, "p50": 4, "p90": 10}
    assert durations["human_first_response_s"]["n"] == 3
    assert (durations["human_first_response_s"]["p50"], durations["human_first_response_s"]["p90"]) == (1194, 130_200)
    assert (durations["queue_wait_s"]["p50"], durations["queue_wait_s"]["p90"]) == (594, 129_600)
    # Resolved now: C3, C4, C6 (C5 was reopened).
    assert (durations["resolution_s"]["p50"], durations["resolution_s"]["p90"]) == (63_000, 130_500)
    assert (durations["resolution_business_s"]["p50"], durations["resolution_business_s"]["p90"]) == (900, 5_400)
    csat = figures["csat"]
    assert (csat["rated"], csat["positive"], csat["positive_pct"]) == (3, 2, 66.7)
    assert csat["average"] == pytest.approx(11 / 3)
    assert csat["distribution"] == [(1, 0), (2, 1), (3, 0), (4, 1), (5, 1)]
    assert (csat["asked"], csat["response_rate_pct"]) == (4, 75.0)  # resolved C3, C4, C6 and the rated C5
    assert csat["bot"] == {"rated": 1, "positive_pct": 100.0, "average": 5.0}
    assert [(a["name"], a["rated"], a["positive_pct"], a["average"]) for a in csat["agents"]] == [
        ("ann", 1, 0.0, 2.0),
        ("bob", 1, 100.0, 4.0),
    ]
    assert figures["bot"] == {"confirmed": 2, "assumed": 2, "resolved": 4, "resolved_pct": 50.0, "reopened": 2}
    handoff = figures["handoff"]
    assert (handoff["count"], handoff["pct"]) == (3, 37.5)
    counted = {reason: n for reason, _label, n, _pct in handoff["reasons"] if n}
    assert counted == {"customer_request": 1, "no_knowledge": 1, "offline_message": 1}
    hours = figures["volume"]["hours"]
    assert {hour: n for hour, n in enumerate(hours) if n} == {3: 1, 9: 1, 10: 2, 11: 1, 12: 1, 15: 1, 20: 1}
    assert figures["volume"]["weekdays"] == [3, 2, 0, 1, 0, 1, 1]
    # ann held C4 (Tue 15:02 - Wed 08:30, 62,880 s) and C6 (900 s) over 30 days; bob C5 for 1,200 s.
    load = {row["name"]: row for row in figures["load"]}
    assert load["ann"]["claimed"] == 2 and load["ann"]["peak_concurrent"] == 1
    assert load["ann"]["average_concurrent"] == round(63_780 / (30 * 86_400), 2)
    assert load["bob"]["claimed"] == 1 and load["bob"]["peak_concurrent"] == 1


def test_each_drill_down_lists_exactly_the_conversations_counted(world):
    filters, figures = report_for()
    ann, bob = world["ann"], world["bob"]
    expected = {
        ("conversations", None): ids(world, 1, 2, 3, 4, 5, 6, 7, 10),
        ("bot_replied", None): ids(world, 1, 2, 3, 5, 7, 10),
        ("human_replied", None): ids(world, 4, 5, 6),
        ("claimed", None): ids(world, 4, 5, 6),
        ("resolved", None): ids(world, 3, 4, 6),
        ("rated", None): ids(world, 3, 4, 5),
        ("csat_positive", None): ids(world, 3, 5),
        ("rating", "2"): ids(world, 4),
        ("rated_bot", None): ids(world, 3),
        ("rated_agent", str(ann.pk)): ids(world, 4),
        ("bot_confirmed", None): ids(world, 1, 3),
        ("bot_assumed", None): ids(world, 2, 7),
        ("bot_resolved", None): ids(world, 1, 2, 3, 7),
        ("reopened", None): ids(world, 5, 10),
        ("handed_off", None): ids(world, 4, 5, 6),
        ("handoff_reason", "no_knowledge"): ids(world, 5),
        ("hour", "10"): ids(world, 1, 10),
        ("weekday", "1"): ids(world, 1, 2, 10),
        ("agent", str(ann.pk)): ids(world, 4, 6),
        ("agent", str(bob.pk)): ids(world, 5),
    }
    for (metric, value), conversations in expected.items():
        assert drilled(filters, metric, value) == conversations, (metric, value)
    # The counts on the page are the drill-downs' sizes.
    assert len(drilled(filters, "bot_replied")) == figures["durations"]["bot_first_response_s"]["n"]
    assert len(drilled(filters, "resolved")) == figures["durations"]["resolution_business_s"]["n"]
    assert len(drilled(filters, "bot_assumed")) == figures["bot"]["assumed"]
    for hour, n in enumerate(figures["volume"]["hours"]):
        assert len(drilled(filters, "hour", str(hour))) == n
    for reason, _label, n, _pct in figures["handoff"]["reasons"]:
        assert len(drilled(filters, "handoff_reason", reason)) == n


def test_filters_narrow_the_report(world):
    # The site's report is in Paris time: C9 (00:30 on 1 November there) is in; the API conversation C7 is out.
    filters, figures = report_for({"site": str(world["shop"].pk)})
    assert filters.tz_name == "Europe/Paris"
    assert drilled(filters, "conversations") == ids(world, 1, 2, 3, 4, 5, 6, 9, 10)
    assert drilled(filters, "hour", "0") == ids(world, 9) and drilled(filters, "hour", "11") == ids(world, 1, 10)
    assert figures["bot"]["assumed"] == 2  # C2 and C9 (C7, assumed too, came through the API)
    assert drilled(report_for({"channel": "api"})[0], "conversations") == ids(world, 7)
    assert drilled(report_for({"channel": "widget"})[0], "conversations") == ids(world, 1, 2, 3, 4, 5, 6, 10)
    assert drilled(report_for({"language": "zh"})[0], "conversations") == ids(world, 5, 6)
    filters, figures = report_for({"agent": str(world["ann"].pk)})
    assert drilled(filters, "conversations") == ids(world, 4, 6) and figures["csat"]["rated"] == 1
    # An agent without the reports permission sees their own, whatever agent they ask for.
    filters, _ = report_for({"agent": str(world["ann"].pk)}, own_agent_id=world["bob"].pk)
    assert drilled(filters, "conversations") == ids(world, 5)
    filters, figures = report_for({"since": "2026-11-03", "until": "2026-11-03"})
    assert drilled(filters, "conversations") == ids(world, 3, 4) and figures["durations"]["resolution_s"]["n"] == 2


@pytest.mark.parametrize(
    "params, message",
    [
        ({"since": "yesterday"}, "since must be a date"),
        ({"since": "2026-11-30", "until": "2026-11-01"}, "since must not be after until"),
        ({"site": "abc"}, "site must be a number"),
        ({"site": "999999"}, "no such site"),
        ({"site": "99999999999999"}, "site must be a number"),
        ({"agent": "-3"}, "agent must be a number"),
        ({"since": "9999-12-30", "until": "9999-12-31"}, "between 1970 and 2999"),
        ({"language": "fr"}, "language must be one of"),
        ({"channel": "email"}, "channel must be one of"),
    ],
)
def test_unusable_filters_are_refused_with_a_reason(db, params, message):
    with pytest.raises(reports.ReportError, match=message):
        reports.filters_parse(params, today=NOW.date())


@pytest.mark.parametrize(
    "metric, value", [("nope", None), ("rating", "9"), ("rating", None), ("hour", "x"), ("handoff_reason", "x")]
)
def test_unusable_drill_downs_are_refused_with_a_reason(db, metric, value):
    filters = reports.filters_parse(NOVEMBER, today=NOW.date())
    with pytest.raises(reports.ReportError):
        reports.drill_down(filters, metric, value, now=NOW)


def test_the_export_has_one_row_per_conversation_counted(world):
    filters, _ = report_for()
    text = "".join(reports.export_csv(reports.conversations(filters), now=NOW))
    rows = {row["conversation_id"]: row for row in csv.DictReader(text.splitlines())}
    assert set(rows) == {str(i) for i in ids(world, 1, 2, 3, 4, 5, 6, 7, 10)}
    c4 = rows[str(world["c"][4].id)]
    assert (c4["agent"], c4["handoff_reason"], c4["rating"]) == ("ann", "customer_request", "2")
    assert c4["channel"] == "widget"
    assert (c4["resolution_s"], c4["resolution_business_s"], c4["queue_wait_s"]) == ("63000.0", "5400.0", "120.0")
    assert c4["rating_comment"].startswith("'=")  # a spreadsheet does not run the customer's text as a formula
    assert rows[str(world["c"][1].id)]["bot_resolution"] == "confirmed"
    assert rows[str(world["c"][7].id)]["bot_resolution"] == "assumed"
    assert rows[str(world["c"][7].id)]["channel"] == "api"
    c10 = rows[str(world["c"][10].id)]
    assert (c10["bot_resolution"], c10["reopened_count"]) == ("", "1")


def test_business_seconds_count_only_opening_hours_across_days_and_clock_changes():
    hours = [SiteHours(weekday=d, opens=datetime.time(9), closes=datetime.time(17)) for d in range(5)]
    # Friday 16:00 to Monday 10:00 in Paris: 1 h on Friday, 1 h on Monday.
    start = datetime.datetime(2026, 11, 6, 15, 0, tzinfo=UTC)
    end = datetime.datetime(2026, 11, 9, 9, 0, tzinfo=UTC)
    from chat.models import business_seconds

    assert business_seconds(hours, "Europe/Paris", start, end) == 7_200
    # The week of the October clock change: every weekday is 8 h whatever the offset (5 x 8 h).
    week = (datetime.datetime(2026, 10, 24, tzinfo=UTC), datetime.datetime(2026, 10, 31, tzinfo=UTC))
    assert business_seconds(hours, "Europe/Paris", *week) == 5 * 8 * 3600
    assert business_seconds([], "Europe/Paris", start, end) == (end - start).total_seconds()
    assert business_seconds(hours, "Europe/Paris", end, start) == 0


def test_the_embedded_databases_percentiles_agree_with_postgresqls(world, monkeypatch):
    """SQLite (the embedded default) has no percentile_disc: its ORDER BY ... OFFSET path gives the same ranks."""
    filters, figures = report_for()
    monkeypatch.setattr(reports.connection, "vendor", "sqlite")
    assert reports._durations(reports.conversations(filters)) == figures["durations"]


# --- The same through the API (scope read) ---


@pytest.fixture
def api_reader(settings):
    from django.test import Client

    from chat.api.keys import api_key_create

    settings.API_RATE_LIMIT_PER_IP = 100_000
    _key, raw = api_key_create(name="BI", scopes=["read"])
    return Client(headers={"Authorization": f"Bearer {raw}"})


def test_the_api_exports_the_same_rows_as_the_page_and_the_figures(world, api_reader):
    with travel(NOW):
        response = api_reader.get("/api/v1/reports/conversations", {**NOVEMBER, "metric": "handed_off"})
        assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(b"".join(response.streaming_content).decode().splitlines()))
        assert {row["conversation_id"] for row in rows} == {str(i) for i in ids(world, 4, 5, 6)}
        summary = api_reader.get("/api/v1/reports/summary", {**NOVEMBER, "channel": "widget"})
    assert summary.status_code == 200
    body = summary.json()
    assert body["total"] == 7 and body["handoff"]["count"] == 3 and body["filters"]["channel"] == "widget"
    assert body["durations"]["queue_wait_s"]["p50"] == 594 and "bot_resolution" in body["definitions"]


@pytest.mark.parametrize(
    "params, status, message",
    [
        ({"since": "2026-13-01"}, 400, ""),
        ({"since": "2026-11-30", "until": "2026-11-01"}, 400, "since must not be after until"),
        ({"metric": "rating", "value": "7"}, 400, "value from 1 to 5"),
        ({"channel": "fax"}, 400, "channel"),
        ({"until": "0"}, 400, "until"),
        ({"agent": "99999999999999"}, 400, "agent"),
        ({"metric": "agent", "value": "99999999999999"}, 400, "needs a value"),
    ],
)
def test_the_api_refuses_unusable_filters_with_a_json_error(db, api_reader, params, status, message):
    response = api_reader.get("/api/v1/reports/conversations", params)
    assert response.status_code == status
    assert message in response.json()["error"]["message"]


def test_the_api_reports_need_a_key_with_the_read_scope(db):
    from django.test import Client

    from chat.api.keys import api_key_create

    _key, raw = api_key_create(name="bot only", scopes=["chat"])
    assert Client().get("/api/v1/reports/summary").status_code == 401
    assert Client(headers={"Authorization": f"Bearer {raw}"}).get("/api/v1/reports/summary").status_code == 403
