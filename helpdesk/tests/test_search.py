"""The console's search: every message's search terms kept as it is saved (customer, agent, bot, note) or filled by
search_reindex; conversations found by name, email, Chinese and English content (stemmed), notes; filters, paging,
highlighting, the number of queries; and the page open to console users only."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command

from chat import services
from chat.models import Conversation, Message, Site
from chat.search import message_search_terms, query_parse, snippet, tsquery
from chat.tests.test_queries import queries_exactly
from helpdesk import search
from helpdesk.models import CustomerNote

pytestmark = pytest.mark.django_db

ROW = re.compile(r'<li class="sr__result" data-conversation="([0-9a-f-]{36})"')


@pytest.fixture
def no_reply(monkeypatch):
    monkeypatch.setattr("chat.services.replies.reply_enqueue", lambda **kw: None)


def user_in(group: str | None, username: str):
    user = get_user_model().objects.create_user(username, password="pw-123456")
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


def talk(*lines: tuple[str, str], **fields) -> Conversation:
    """A conversation with these (role, content) messages, saved as the services save them (Message.save)."""
    conversation = Conversation.objects.create(secret_hash="0" * 64, **fields)
    for seq, (role, content) in enumerate(lines, start=1):
        Message.objects.create(conversation=conversation, seq=seq, role=role, content=content)
    Conversation.objects.filter(pk=conversation.pk).update(last_seq=len(lines))
    return conversation


def found(query: str = "", **filters) -> list:
    rows = search.conversations_search(search.SearchFilters(query=query, **filters))
    return [conversation.pk for conversation in rows]


@pytest.fixture
def world():
    shop = Site.objects.create(name="Shop")
    return {
        "zh": talk(
            ("customer", "我想退货，运费谁出？"),
            ("bot", "七天内可以无理由退货。"),
            customer_name="李雷",
            customer_email="lilei@example.cn",
            language="zh",
            site=shop,
        ),
        "en": talk(
            ("customer", "I was charged twice, when will I be refunded?"),
            ("agent", "The refund is on its way."),
            customer_name="Maria Lopez",
            customer_email="Maria@Example.com",
            site=shop,
        ),
        "other": talk(("customer", "Do you ship to Canada?"), customer_name="Sam", status="resolved"),
        "shop": shop,
    }


def test_every_message_keeps_its_search_terms_as_it_is_saved(no_reply):
    agent = user_in("agent", "ann")
    conversation, _ = services.conversation_start(customer_name="Li")
    message, _ = services.message_post_customer(conversation_id=conversation.id, content="我要退货运费")
    assert set(message.search_terms.split()) >= {"退货", "运费"}
    # A bot reply opens empty while it streams; its final content is what gets indexed.
    reply = services.reply_start(customer_message_id=message.pk)
    assert reply.search_terms == ""
    stats = services.ReplyStats(engine="fake", prompt_tokens=1, completion_tokens=1, ttft_ms=1, tokens_per_s=1.0)
    services.reply_complete(reply_id=reply.pk, content="Refunds take five days.", stats=stats)
    assert Message.objects.get(pk=reply.pk).search_terms == "refund take five day"
    services.conversation_hand_off(conversation_id=conversation.id, reason="customer_request")
    services.conversation_assign(conversation_id=conversation.id, agent=agent, expected_status="queued")
    answer = services.message_post_agent(conversation_id=conversation.id, agent=agent, content="Shipping refunded")
    note = services.note_post(conversation_id=conversation.id, agent=agent, content="VIP customer")
    assert Message.objects.get(pk=answer.pk).search_terms == "ship refund"
    assert Message.objects.get(pk=note.pk).search_terms == "vip custom"
    # A save of other fields leaves the terms as they are; a save of the content makes them again.
    Message.objects.filter(pk=note.pk).update(search_terms="stale")
    note.error = "x"
    note.save(update_fields=["error"])
    assert Message.objects.get(pk=note.pk).search_terms == "stale"
    note.content = "Loyal buyer"
    note.save(update_fields=["content"])
    assert Message.objects.get(pk=note.pk).search_terms == "loyal buyer"


def test_search_reindex_fills_the_terms_of_messages_written_in_bulk():
    conversation = Conversation.objects.create(secret_hash="0" * 64)
    Message.objects.bulk_create(
        [
            Message(conversation=conversation, seq=1, role="customer", content="Where is my parcel?"),
            Message(conversation=conversation, seq=2, role="bot", content="包裹已经发出"),
            Message(conversation=conversation, seq=3, role="customer", content="ok"),  # no terms at all
            Message(conversation=conversation, seq=4, role="customer", content="Where is my parcel?"),
        ]
    )
    assert set(Message.objects.values_list("search_terms", flat=True)) == {""}
    call_command("search_reindex", "--if-needed", "--batch", "2")
    terms = dict(Message.objects.values_list("seq", "search_terms"))
    assert terms == {1: "parcel", 2: "包裹 已经 发出 裹已 经发", 3: "", 4: "parcel"}  # words, then the new pairs
    assert found("parcel") == [conversation.pk]
    Message.objects.filter(seq=1).update(search_terms="stale")
    call_command("search_reindex", "--if-needed")
    assert Message.objects.get(seq=1).search_terms == "stale"  # only the missing ones
    call_command("search_reindex")
    assert Message.objects.get(seq=1).search_terms == "parcel"


def test_the_sample_history_is_searchable():
    call_command("history_seed", "--count", "20", "--days", "3")
    assert not Message.objects.exclude(content="").filter(search_terms="").exists()
    first = Message.objects.filter(role="customer").order_by("pk").first()
    assert first.conversation_id in found(first.content)


def test_a_chinese_query_finds_the_chinese_conversation(world):
    assert found("退货") == [world["zh"].pk]
    assert found("运费 退货") == [world["zh"].pk]
    assert found("发票") == []
    # jieba cuts 我要退货运费 into 我要/退/货运费: the character pairs still find 退货 in it, and the whole phrase.
    compound = talk(("customer", "我要退货运费怎么算"), language="zh")
    assert set(found("退货")) == {world["zh"].pk, compound.pk}
    assert found("退货运费") == [compound.pk]


def test_an_english_query_finds_every_form_of_its_words(world):
    assert found("refund") == [world["en"].pk]
    assert found("refunds") == [world["en"].pk]
    assert found("REFUNDED twice") == [world["en"].pk]
    assert found("refund Canada") == []  # every word must match


def test_names_and_emails_match_in_part_and_without_regard_to_case(world):
    assert found("lopez") == [world["en"].pk]
    assert found("maria@example") == [world["en"].pk]
    assert found("李") == [world["zh"].pk]
    assert set(found("example")) == {world["en"].pk, world["zh"].pk}


def test_private_notes_and_notes_about_the_customer_are_found(world):
    agent = user_in("agent", "ann")
    Message.objects.create(conversation=world["other"], seq=2, role="note", content="Asked for a discount code")
    CustomerNote.objects.create(customer_email="maria@example.com", body="Prefers phone calls", author=agent)
    assert found("discount") == [world["other"].pk]
    assert found("phone calls") == [world["en"].pk]  # the note's email is in lower case, the conversation's is not


def test_system_messages_are_not_searched():
    conversation = talk(("system", "An agent joined the conversation"))
    assert found("agent joined") == []
    assert conversation.pk not in found("joined")


def test_a_match_in_the_name_ranks_above_one_in_the_messages_then_the_newest(world):
    mentions = talk(("customer", "Maria from accounting told me to write"), customer_name="Bob")
    assert found("maria") == [world["en"].pk, mentions.pk]


def test_filters_narrow_by_status_and_site(world):
    assert found("", status="resolved") == [world["other"].pk]
    assert set(found("", site_id=world["shop"].pk)) == {world["zh"].pk, world["en"].pk}
    assert found("refund", status="resolved") == []
    filters = search.search_filters_parse({"q": "  refund   me ", "status": "nonsense", "site": "x1"})
    assert filters == search.SearchFilters(query="refund me")


def test_the_embedded_mode_looks_for_the_words_as_they_are(world, monkeypatch):
    monkeypatch.setattr(search, "_full_text", lambda: False)
    assert found("退货") == [world["zh"].pk]
    assert found("refunded") == [world["en"].pk]
    assert found("refunds") == []  # no stemming without the full-text index
    results = search.search_results(
        list(search.conversations_search(search.SearchFilters(query="refunded"))),
        search.SearchFilters(query="refunded"),
    )
    assert [p.text for p in results[0].snippet if p.match] == ["refunded"]


def test_query_terms_and_snippets():
    # jieba's guess (which depends on the words the knowledge base taught it) and, always, the character pairs.
    assert {"我要", "要退", "退货", "货运", "运费"} <= set(message_search_terms("我要退货运费").split())
    assert message_search_terms("Refunds, please! 好") == "refund 好"
    assert tsquery(query_parse("the refunds, please")) == "('refund')"
    mixed = tsquery(query_parse("退货运费 Refund"))
    assert mixed.startswith("('refund') & (") and "('退货' & '货运' & '运费')" in mixed
    assert tsquery(query_parse("退货")) == "('退货')"
    assert not query_parse("the, and 的")
    pieces = snippet("Hello.\nI was refunded twice " + "x" * 300, words=["refund"])
    assert [p.text for p in pieces if p.match] == ["refunded"] and pieces[-1].text == "…"
    pieces = snippet("a" * 100 + " 我想退货，运费谁出", words=["退货"])
    assert pieces[0].text == "…" and [p.text for p in pieces if p.match] == ["退货"]


def test_a_page_of_results_takes_three_queries_however_many_rows(world):
    for n in range(30):
        talk(("customer", f"Refund for order {n}"), ("agent", "Your refund is on its way"), customer_name=f"C{n}")
    filters = search.SearchFilters(query="refund")
    from django.core.paginator import Paginator

    # The count, the page (with sites and assignees), the best message of each of its rows.
    with queries_exactly(3):
        page = Paginator(search.conversations_search(filters), search.SEARCH_PAGE).get_page(1)
        results = search.search_results(list(page.object_list), filters)
    assert page.paginator.count == 31 and len(results) == 25
    assert all(any(p.match for p in r.snippet) for r in results)


def test_the_page_is_for_console_users_only(client, world):
    response = client.get("/console/search/?q=discount")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    client.force_login(user_in(None, "customer"))
    assert client.get("/console/search/?q=discount").status_code == 403


def test_the_page_lists_highlighted_results_linking_to_the_console_and_the_profile(client, world):
    Message.objects.create(conversation=world["zh"], seq=3, role="customer", content="<script>alert(1)</script> 退货")
    client.force_login(user_in("agent", "ann"))
    response = client.get("/console/search/", {"q": "退货"})
    page = response.content.decode()
    assert response.status_code == 200 and ROW.findall(page) == [str(world["zh"].pk)]
    assert "<mark>退货</mark>" in page and "<script>alert" not in page and "&lt;script&gt;" in page
    assert f'href="/console/#c={world["zh"].pk}"' in page
    assert 'href="/console/customers/?email=lilei%40example.cn"' in page
    response = client.get("/console/search/", {"q": "refunds"})
    assert ROW.findall(response.content.decode()) == [str(world["en"].pk)]
    assert re.search(r"<mark>[Rr]efund(ed)?</mark>", response.content.decode())
    assert "No conversation matches" in client.get("/console/search/", {"q": "nothing-like-this"}).content.decode()


def test_results_are_paged_by_25(client):
    for n in range(27):
        talk(("customer", f"tracking number {n}"), customer_name=f"T{n}")
    client.force_login(user_in("agent", "ann"))
    first = client.get("/console/search/", {"q": "tracking"}).content.decode()
    second = client.get("/console/search/", {"q": "tracking", "page": "2"}).content.decode()
    assert len(ROW.findall(first)) == 25 and len(ROW.findall(second)) == 2
    assert 'href="?q=tracking&amp;page=2"' in first
