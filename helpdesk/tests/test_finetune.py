"""The fine-tuning export: conversations made through chat's services, exported by the real command, read back.

The privacy test scans the output with its own patterns, not the scrubber's."""

import datetime
import io
import json
import re
import unicodedata
from pathlib import Path

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat import services as chat_services
from chat.models import HandoffReason, Message, Site
from chat.services.replies import ReplyStats, reply_complete, reply_fail, reply_start
from helpdesk import finetune
from helpdesk import services as helpdesk_services

pytestmark = pytest.mark.django_db

STATS = ReplyStats(engine="test", prompt_tokens=10, completion_tokens=5, ttft_ms=100, tokens_per_s=20.0)


@pytest.fixture(autouse=True)
def no_reply(monkeypatch):
    """The bot's replies are written by the tests themselves (reply_start + reply_complete)."""
    monkeypatch.setattr("chat.services.replies.reply_enqueue", lambda **kw: None)


@pytest.fixture
def agent():
    return get_user_model().objects.create_user("ann", password="x", first_name="Annika", last_name="Berg")


class Chat:
    """One conversation driven through chat's services."""

    def __init__(self, **fields):
        self.conversation, _secret = chat_services.conversation_start(**fields)
        self.id = self.conversation.id
        self.last_customer: Message | None = None

    def customer(self, text: str) -> "Chat":
        self.last_customer, _created = chat_services.message_post_customer(conversation_id=self.id, content=text)
        return self

    def bot(self, text: str, **fields) -> "Chat":
        reply = reply_start(customer_message_id=self.last_customer.id)
        reply_complete(reply_id=reply.id, content=text, stats=STATS, **fields)
        return self

    def bot_fails(self, text: str) -> "Chat":
        reply = reply_start(customer_message_id=self.last_customer.id)
        reply_fail(reply_id=reply.id, content=text, error="engine down")
        return self

    def hand_off(self, agent=None) -> "Chat":
        message_id = self.last_customer.id if self.last_customer else None
        chat_services.conversation_hand_off(
            conversation_id=self.id, reason=HandoffReason.MODEL_DEFERRED, message_id=message_id
        )
        if agent is not None:
            assert helpdesk_services.conversation_claim(conversation_id=self.id, agent=agent, enforce_capacity=False)
        return self

    def agent(self, agent, text: str) -> "Chat":
        chat_services.message_post_agent(conversation_id=self.id, agent=agent, content=text)
        return self

    def note(self, agent, text: str) -> "Chat":
        chat_services.note_post(conversation_id=self.id, agent=agent, content=text)
        return self

    def resolve(self, rating: int | None = None) -> "Chat":
        chat_services.conversation_resolve(conversation_id=self.id, by_customer=True)
        if rating is not None:
            chat_services.rating_create(conversation_id=self.id, score=rating)
        return self


def bot_chat(rating: int | None = 5, **fields) -> Chat:
    return (
        Chat(**fields)
        .customer("How long does delivery take?")
        .bot("Delivery takes 3-5 business days.")
        .customer("And what does shipping cost?")
        .bot("Shipping costs $25, free above $100.")
        .resolve(rating)
    )


def human_chat(agent, rating: int | None = None) -> Chat:
    return (
        Chat(language="en")
        .customer("My parcel arrived broken.")
        .bot("BOT-GUESS: try turning it off and on again.")
        .customer("That does not help at all.")
        .hand_off(agent)
        .note(agent, "NOTE: customer is angry, offer a refund")
        .agent(agent, "I'm sorry! I will send you a replacement today.")
        .customer("Thank you.")
        .agent(agent, "You're welcome.")
        .customer("Bye")
        .resolve(rating)
    )


def export(tmp_path: Path, *args, **options) -> tuple[list[dict], str]:
    """Run the command to a file; the examples it wrote and its report."""
    out, err = tmp_path / "finetune.jsonl", io.StringIO()
    call_command("export_finetune", "--output", str(out), *args, stderr=err, **options)
    text = out.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()], err.getvalue()


def chat_of(example: dict) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in example["messages"] if m["role"] != "system"]


def test_a_rated_bot_conversation_is_one_chat_format_line(tmp_path):
    chat = bot_chat(rating=5, site=Site.objects.create(name="Shop"))
    examples, report = export(tmp_path)
    assert len(examples) == 1
    [example] = examples
    assert set(example) == {"messages", "metadata"}
    assert all(set(m) == {"role", "content"} for m in example["messages"])
    system = example["messages"][0]
    assert system["role"] == "system" and "Example Inc." in system["content"]  # the active prompt, rendered
    assert chat_of(example) == [
        ("user", "How long does delivery take?"),
        ("assistant", "Delivery takes 3-5 business days."),
        ("user", "And what does shipping cost?"),
        ("assistant", "Shipping costs $25, free above $100."),
    ]
    metadata = example["metadata"]
    assert metadata["conversation_id"] == str(chat.id) and metadata["kind"] == "bot" and metadata["rating"] == 5
    assert metadata["site"] == chat.conversation.site.key and metadata["bot_answers"] == 2
    assert "Wrote 1 conversations (bot 1, human 0)" in report and "Skipped 0 conversations." in report


def test_unrated_low_rated_and_open_conversations_are_skipped_with_their_reasons(tmp_path):
    kept = bot_chat(rating=4)
    bot_chat(rating=3)
    bot_chat(rating=None)
    Chat().customer("Hello?").bot("Hi! How can I help?")  # still open
    examples, report = export(tmp_path)
    assert [e["metadata"]["conversation_id"] for e in examples] == [str(kept.id)]
    assert "Skipped 3 conversations:" in report
    assert "rating_below_minimum: 1" in report
    assert "unrated_bot_conversation: 1" in report
    assert "still_open: 1" in report

    examples, report = export(tmp_path, "--min-rating", "3")
    assert len(examples) == 2 and "rating_below_minimum" not in report


def test_agent_answers_are_the_targets_of_a_handed_off_conversation(tmp_path, agent):
    human_chat(agent, rating=None)
    [example], _report = export(tmp_path)
    # "That does not help at all." is frustration with the bot: the customer's own request hands off. The bot's
    # answer that led to the handoff is dropped; the customer's messages around it make one user turn.
    # The last "Bye" is cut: an example ends on an answer.
    assert chat_of(example) == [
        ("user", "My parcel arrived broken.\nThat does not help at all."),
        ("assistant", "I'm sorry! I will send you a replacement today."),
        ("user", "Thank you."),
        ("assistant", "You're welcome."),
    ]
    assert example["metadata"]["kind"] == "human" and example["metadata"]["handoff_reason"] == "customer_request"
    assert example["metadata"]["bot_answers"] == 0 and example["metadata"]["agent_answers"] == 2


def test_a_well_rated_handed_off_conversation_keeps_the_bots_turns_as_context(tmp_path, agent):
    human_chat(agent, rating=5)
    [example], _report = export(tmp_path)
    assert ("assistant", "BOT-GUESS: try turning it off and on again.") in chat_of(example)
    assert example["metadata"]["bot_answers"] == 1


def test_notes_and_system_messages_never_go_out(tmp_path, agent):
    chat = human_chat(agent, rating=5)
    assert Message.objects.filter(conversation_id=chat.id, role=Message.Role.NOTE).exists()
    system_texts = list(
        Message.objects.filter(conversation_id=chat.id, role="system").values_list("content", flat=True)
    )
    assert system_texts  # the handoff and the end of the chat
    path = tmp_path / "finetune.jsonl"
    export(tmp_path)
    text = path.read_text(encoding="utf-8")
    assert "NOTE:" not in text and "refund" not in text
    for system_text in system_texts:
        assert system_text not in text


def test_badly_rated_and_unanswered_handoffs_are_skipped(tmp_path, agent):
    human_chat(agent, rating=2)
    Chat().customer("My parcel is late.").hand_off().resolve(rating=None)  # nobody answered
    examples, report = export(tmp_path)
    assert examples == []
    assert "rating_below_minimum: 1" in report and "handed_off_without_agent_answer: 1" in report


def test_failed_replies_are_left_out_and_consecutive_turns_are_joined(tmp_path):
    (
        Chat()
        .customer("Hi")
        .bot_fails("PARTIAL-FAILED-TEXT")
        .customer("Is anyone there?")
        .bot("Yes, how can I help?")
        .customer("Where do I find my invoice?")
        .bot("Under Account, Orders.")
        .resolve(rating=5)
    )
    [example], _report = export(tmp_path)
    assert chat_of(example) == [
        ("user", "Hi\nIs anyone there?"),
        ("assistant", "Yes, how can I help?"),
        ("user", "Where do I find my invoice?"),
        ("assistant", "Under Account, Orders."),
    ]


def test_conversations_without_a_question_or_an_answer_are_skipped(tmp_path, agent):
    Chat().customer("Hello").bot_fails("PARTIAL-FAILED-TEXT").resolve(rating=5)
    Chat().hand_off(agent).agent(agent, "Hi! We saw your order had a problem.").resolve(rating=None)
    examples, report = export(tmp_path)
    assert examples == []
    assert "no_assistant_turn: 1" in report and "no_user_turn: 1" in report


def test_filters_dates_language_site_and_kind(tmp_path, agent):
    shop = Site.objects.create(name="Shop")
    other = Site.objects.create(name="Other")
    with time_machine.travel(datetime.datetime(2026, 1, 10, 12, 0, tzinfo=datetime.UTC), tick=False):
        january = bot_chat(site=shop)
    with time_machine.travel(datetime.datetime(2026, 2, 10, 12, 0, tzinfo=datetime.UTC), tick=False):
        february_zh = bot_chat(site=other, language="zh-CN")
        february_human = human_chat(agent)

    def ids(*args):
        return {e["metadata"]["conversation_id"] for e in export(tmp_path, *args)[0]}

    assert ids() == {str(january.id), str(february_zh.id), str(february_human.id)}
    assert ids("--since", "2026-02-01") == {str(february_zh.id), str(february_human.id)}
    assert ids("--until", "2026-01-10") == {str(january.id)}  # a date is inclusive
    assert ids("--until", "2026-01-10T12:00") == set()  # a datetime is not
    assert ids("--language", "zh") == {str(february_zh.id)}
    assert ids("--language", "en", "--kind", "bot") == {str(january.id)}
    assert ids("--site", shop.key) == {str(january.id)}
    assert ids("--site", str(other.pk)) == {str(february_zh.id)}
    assert ids("--kind", "human") == {str(february_human.id)}
    with pytest.raises(CommandError, match="No site"):
        export(tmp_path, "--site", "nope")


def test_system_prompt_options(tmp_path):
    bot_chat(rating=5, language="zh")
    [example], _ = export(tmp_path, "--system-prompt", "You help {{company_name}}'s customers in {{language}}.")
    assert example["messages"][0] == {
        "role": "system",
        "content": "You help Example Inc.'s customers in Chinese (简体中文).",
    }
    [example], _ = export(tmp_path, "--no-system-prompt")
    assert example["messages"][0]["role"] == "user"
    with pytest.raises(CommandError, match="system prompt"):
        export(tmp_path, "--system-prompt", "Hello {{nobody}}")
    assert not list(tmp_path.glob("*.part"))


def test_stdout_is_the_default_output():
    bot_chat(rating=5)
    out, err = io.StringIO(), io.StringIO()
    call_command("export_finetune", stdout=out, stderr=err)
    [line] = out.getvalue().splitlines()
    assert json.loads(line)["metadata"]["kind"] == "bot" and "to stdout" in err.getvalue()


def test_the_export_reads_conversations_in_chunks_with_a_fixed_number_of_queries():
    def queries_for_export() -> int:
        with CaptureQueriesContext(connection) as queries:
            stats = finetune.export_write(io.StringIO(), finetune.ExportOptions(system_prompt=None), chunk_size=100)
        return len(queries), stats.written.total()

    for _ in range(2):
        bot_chat(rating=5)
    few = queries_for_export()
    for _ in range(6):
        bot_chat(rating=5)
    many = queries_for_export()
    assert few == (few[0], 2) and many == (few[0], 8)  # same number of queries for 2 and 8 conversations


# --- Privacy -----------------------------------------------------------------------------------------------------

PHONES = [
    "13812345678",
    "+86 139 2345 6789",
    "+86-137-3456-7890",
    "0086 13645678901",
    "１５０１２３４５６７８",  # full-width digits
    "(555) 123-4567",
    "555-234-5678",
    "555.345.6789",
    "+1 (415) 555-0143",
    "1-800-555-0199",
    "+44 20 7946 0958",
    "06 12 34 56 78",
    "010-87654321",
    "(0755) 2345678",
]
EMAILS = ["ann.lee@example.com", "Zhang_San123@163.com", "billing+vip@shop.co.uk", "wang.wu＠qq.com"]


def _seeded_text(index: int) -> str:
    phone, email = PHONES[index % len(PHONES)], EMAILS[index % len(EMAILS)]
    return [
        f"You can reach me on {phone} or write to {email}.",
        f"我的手机号是{phone}，邮箱是{email}，谢谢",
        f"Call {phone}; mail {email} (order #A1234{index})",
        f"联系电话：{phone}。订单号 20231201{index:04d}",
    ][index % 4]


def test_the_export_keeps_no_email_address_or_phone_number(tmp_path, agent):
    for index in range(len(PHONES)):
        chat = Chat(customer_name="Ann Lee", customer_email="ann.lee@example.com", language="zh" if index % 2 else "en")
        chat.customer(_seeded_text(index))
        if index % 3:
            chat.bot(f"Thanks Ann, we will call {PHONES[-1 - index]} and write to {EMAILS[index % 4]}.")
            chat.customer(_seeded_text(index + 1))
            chat.hand_off(agent).agent(agent, f"Hi Ann Lee, I'm Annika. I will call you on {PHONES[index - 1]}.")
            chat.customer(_seeded_text(index + 2)).agent(agent, f"Confirmed for {EMAILS[(index + 1) % 4]}, Ann.")
            chat.resolve(rating=5 if index % 2 else None)
        else:
            chat.bot(f"Noted {PHONES[index - 2]} and {EMAILS[index % 4]}; delivery takes 3-5 business days ($25).")
            chat.resolve(rating=5)

    path = tmp_path / "finetune.jsonl"
    examples, report = export(tmp_path)
    assert len(examples) == len(PHONES), report
    text = unicodedata.normalize("NFKC", path.read_text(encoding="utf-8"))

    assert "@" not in text and "%40" not in text
    assert not re.search(r"\b(?:ann\.lee|zhang_san123|billing\+vip|wang\.wu)\b", text, re.IGNORECASE)
    assert not re.search(r"\b(?:Ann|Lee|Annika)\b", text)
    # Any number of 7 or more digits, whatever its separators, in what was said.
    said = [
        unicodedata.normalize("NFKC", m["content"]) for e in examples for m in e["messages"] if m["role"] != "system"
    ]
    for content in said:
        for number in re.findall(r"\+?\d[\d\s().\-]*\d", content):
            assert len(re.sub(r"\D", "", number)) < 7, (number, content)
    # And no seeded number's last seven digits anywhere in the file (metadata and system turn included).
    numbers = [re.sub(r"\D", "", n) for n in re.findall(r"\d[\d\s().\-]*\d", text)]
    for phone in PHONES:
        tail = re.sub(r"\D", "", unicodedata.normalize("NFKC", phone))[-7:]
        assert not any(tail in number for number in numbers), phone
    # What was said is still there, with placeholders for what was taken out.
    assert "delivery takes 3-5 business days ($25)" in text
    assert text.count("[PHONE]") >= 2 * len(PHONES) and text.count("[EMAIL]") >= 2 * len(PHONES)
    assert "[NAME]" in text and "[AGENT]" in text and "[ORDER]" in text


# --- The scrubber on its own -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "It costs $25, or ¥1,299.00, or 3000元, or 25 USD.",
        "Delivery takes 3-5 business days, 2-3 weeks at most.",
        "We opened in 2023 and moved on 2024-01-15 10:30 (15.01.2024).",
        "Open 9:00-18:00, 24/7 support, 50% off, 2 for $10, size 42, 1.5kg.",
        "Windows 11, version 10.0.19041, iPhone15, COVID-19, 10000mAh, 1920x1080, 1080p.",
        "Order 3 items; you are #1; we have 1,000,000 users and 12 000 orders; 100-200 units; 1000-2000元.",
    ],
)
def test_scrubber_keeps_ordinary_numbers(text):
    assert finetune.scrub(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mail ann.lee+shop@Example.co.uk.", "Mail [EMAIL]."),
        ("邮箱是ann@qq.com，谢谢", "邮箱是[EMAIL]，谢谢"),
        ("ann (at) example (dot) com or ann at example dot com", "[EMAIL] or [EMAIL]"),
        ("See https://x.com/?e=ann%40example.com", "See https://x.com/?e=[EMAIL]"),
        ("张三@example.com", "[EMAIL]"),
        ("13812345678 / 138 1234 5678 / 138-1234-5678", "[PHONE] / [PHONE] / [PHONE]"),
        ("+86 138 1234 5678, 0086 13812345678", "[PHONE], [PHONE]"),
        ("手机号：１３８１２３４５６７８。", "手机号：[PHONE]。"),
        ("电话13812345678谢谢", "电话[PHONE]谢谢"),
        ("(555) 123-4567, 555-123-4567, 555.123.4567", "[PHONE], [PHONE], [PHONE]"),
        ("+1 (415) 555-0143 or 1-800-555-0199", "[PHONE] or [PHONE]"),
        ("+44 20 7946 0958 or 06 12 34 56 78", "[PHONE] or [PHONE]"),
        ("座机 010-12345678，(0755) 1234567", "座机 [PHONE]，[PHONE]"),
        ("My phone number is 5550100", "My phone number is [PHONE]"),
        ("call me at 5551234567", "call me at [PHONE]"),
        ("order #A12345 and order number: 98765", "order [ORDER] and order number: [ORDER]"),
        ("订单号 202312010001，运单号：YT123456789", "订单号 [ORDER]，运单号：[ORDER]"),
        ("订单A12345已发货", "订单[ORDER]已发货"),
        ("Ref ORD-2024-00123, tracking SF1234567890", "Ref [ORDER], tracking [ORDER]"),
        ("order no. 12-34-5678 (not a date)", "order no. [ORDER] (not a date)"),
        ("ticket #123 and 4111 1111 1111 1111", "ticket [ORDER] and [ORDER]"),
        ("a run 1234567 and id 11010519491231002X", "a run [ORDER] and id [ORDER]"),
    ],
)
def test_scrubber_replaces_emails_phones_and_order_numbers(text, expected):
    assert finetune.scrub(text) == expected


def test_scrubber_replaces_the_customers_known_name_and_email():
    scrubber = finetune.Scrubber(emails=["ann@shop.example"], names=["Ann Lee", "李雷"], agent_names=["Bob"])
    assert scrubber.scrub("Hi ANN LEE! Ann, Lee: ANN@shop.example") == "Hi [NAME]! [NAME], [NAME]: [EMAIL]"
    assert scrubber.scrub("announcement, Annex, leeway") == "announcement, Annex, leeway"
    assert scrubber.scrub("李雷你好，李先生，Bob here") == "[NAME]你好，[NAME]先生，[AGENT] here"
    # A name's parts are matched as written: in lower case they are often ordinary words.
    assert finetune.scrub("Will you help? We will, Smith.", names=["Will Smith"]) == "[NAME] you help? We will, [NAME]."


def test_scrubbed_text_is_not_scrubbed_twice():
    # A name that reads like a placeholder's word does not break the placeholder.
    assert finetune.scrub("write to x@y.com", names=["Email"]) == "write to [EMAIL]"


def test_jsonl_lines_escape_the_separators_splitlines_would_cut_at():
    line = finetune.jsonl_line({"messages": [{"role": "user", "content": "a\u2028b\u2029c\x85d\ne"}]})
    assert line.count("\n") == 1 and len(line.splitlines()) == 1
    assert json.loads(line)["messages"][0]["content"] == "a\u2028b\u2029c\x85d\ne"
