"""The console's views and filters (helpdesk.selectors.console_list and the `list` frame), the live updates of the
view a console shows, reading any conversation but acting only on one's own, taking a conversation over, and who
else is viewing or typing in a conversation."""

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from chat import services as chat_services
from chat.models import Conversation, HandoffReason, Message, Site
from chat.services.errors import ActionRefused
from chat.tests.test_queries import queries_exactly
from helpdesk import selectors, services
from helpdesk.asgi import application
from helpdesk.models import Ticket

PASSWORD = "pw-agent-123"


def agent(username: str):
    user = get_user_model().objects.create_user(username, password=PASSWORD)
    user.groups.add(Group.objects.get(name="agent"))
    return user


def handed_off(customer: str, *, site=None, language: str = "en", email: str = "") -> Conversation:
    conversation, _ = chat_services.conversation_start(
        site=site, customer_name=customer, language=language, customer_email=email
    )
    chat_services.message_post_customer(conversation_id=conversation.id, content=f"{customer} needs a person")
    chat_services.conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.CUSTOMER_REQUEST)
    return Conversation.objects.get(pk=conversation.pk)


def claimed(customer: str, by, **kwargs) -> Conversation:
    conversation = handed_off(customer, **kwargs)
    assert services.conversation_claim(conversation_id=conversation.id, agent=by)
    return conversation


def resolved(customer: str, by, **kwargs) -> Conversation:
    conversation = claimed(customer, by, **kwargs)
    chat_services.conversation_resolve(conversation_id=conversation.id, agent=by)
    return conversation


def ids(listed: dict) -> list[str]:
    return [entry["id"] for entry in listed["conversations"]]


@pytest.fixture
def team(db):
    """Two agents, two sites, and a conversation in each status a view lists."""
    ann, bob = agent("ann"), agent("bob")
    shop = Site.objects.create(name="Shop", allowed_origins="https://shop.example")
    store = Site.objects.create(name="Store", allowed_origins="https://store.example")
    world = {
        "ann": ann,
        "bob": bob,
        "shop": shop,
        "store": store,
        "waiting_en": handed_off("Waiting EN", site=shop),
        "waiting_zh": handed_off("Waiting ZH", site=store, language="zh-CN"),
        "ann_open": claimed("Ann's", ann, site=shop),
        "bob_open": claimed("Bob's", bob, site=store),
        "ann_snoozed": claimed("Ann snoozed", ann, site=shop),
        "bob_resolved": resolved("Bob resolved", bob, site=shop),
        "ann_resolved": resolved("Ann resolved", ann, site=store, language="zh"),
        "bot_only": chat_services.conversation_start(site=shop, customer_name="Bot only")[0],
    }
    # Snoozed as the lifecycle's service leaves it (the console only lists it).
    Conversation.objects.filter(pk=world["ann_snoozed"].pk).update(status=Conversation.Status.SNOOZED)
    services.ticket_update(agent=ann, conversation_id=world["waiting_en"].id, priority=4, tags="billing, VIP")
    services.ticket_update(agent=bob, conversation_id=world["bob_open"].id, tags="billing")
    return world


def names(team, listed: dict) -> set[str]:
    by_id = {str(c.id): name for name, c in team.items() if isinstance(c, Conversation)}
    return {by_id[i] for i in ids(listed)}


VIEWS = {
    "queue": {"waiting_en", "waiting_zh", "ann_open"},
    "mine": {"ann_open", "ann_snoozed"},
    "unassigned": {"waiting_en", "waiting_zh"},
    "all": {"waiting_en", "waiting_zh", "ann_open", "bob_open", "ann_snoozed"},
    "snoozed": {"ann_snoozed"},
    "resolved": {"bob_resolved", "ann_resolved"},
}


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_each_view_lists_its_conversations_in_one_query(team, view):
    with queries_exactly(1):
        listed = selectors.console_list(agent=team["ann"], view=view)
    assert names(team, listed) == VIEWS[view]
    assert listed["next"] is None


def test_resolved_conversations_come_newest_first_a_page_at_a_time(team, monkeypatch):
    monkeypatch.setattr(selectors, "CONSOLE_RESOLVED_PAGE", 1)
    first = selectors.console_list(agent=team["ann"], view="resolved")
    assert names(team, first) == {"ann_resolved"} and first["next"]  # resolved last, listed first
    second = selectors.console_list(agent=team["ann"], view="resolved", before=first["next"])
    assert names(team, second) == {"bob_resolved"} and second["next"] is None
    entry = second["conversations"][0]
    assert entry["resolved_at"] and entry["assignee"] == "bob" and entry["site_name"] == "Shop"


FILTERS = [
    ({"priority": 4}, "all", {"waiting_en"}),
    ({"tag": "billing"}, "all", {"waiting_en", "bob_open"}),
    ({"tag": "vip"}, "all", {"waiting_en"}),  # tags match whole and in any case
    ({"tag": "bill"}, "all", set()),
    ({"language": "zh"}, "all", {"waiting_zh"}),  # "zh" matches "zh-CN"
    ({"language": "zh"}, "resolved", {"ann_resolved"}),
    ({"site": "store"}, "all", {"waiting_zh", "bob_open"}),
    ({"site": "shop", "priority": "4"}, "unassigned", {"waiting_en"}),
    ({"site": "", "tag": "", "priority": ""}, "unassigned", {"waiting_en", "waiting_zh"}),  # empty: no filter
]


@pytest.mark.parametrize(("filters", "view", "expected"), FILTERS)
def test_filters_narrow_a_view(team, filters, view, expected):
    filters = {k: team[v].key if k == "site" and v else v for k, v in filters.items()}
    listed = selectors.console_list(agent=team["ann"], view=view, filters=filters)
    assert names(team, listed) == expected


@pytest.mark.parametrize(("filters", "view", "expected"), FILTERS + [({}, view, None) for view in VIEWS])
def test_a_live_entry_is_listed_where_the_view_would_list_it(team, filters, view, expected):
    """The consoles decide from one broadcast entry whether their view lists it: the same answer as the query."""
    filters = selectors.console_filters_clean({k: team[v].key if k == "site" and v else v for k, v in filters.items()})
    listed = set(ids(selectors.console_list(agent=team["ann"], view=view, filters=filters)))
    every = [selectors.queue_entry(conversation_id=c.id) for c in team.values() if isinstance(c, Conversation)]
    matching = {
        e["id"] for e in every if e and selectors.console_entry_matches(e, view=view, filters=filters, username="ann")
    }
    assert matching == listed
    assert selectors.queue_entry(conversation_id=team["bot_only"].id) is None  # the bot's: in no view


@pytest.mark.parametrize(
    ("view", "filters", "before"),
    [
        ("archive", None, None),
        ("all", {"colour": "red"}, None),
        ("all", {"priority": 9}, None),
        ("all", {"priority": True}, None),
        ("all", {"site": ["a"]}, None),
        ("all", "site=a", None),
        ("resolved", None, "yesterday"),
    ],
)
def test_a_list_with_an_unknown_view_filter_or_cursor_is_refused(team, view, filters, before):
    with pytest.raises(ActionRefused) as refused:
        selectors.console_list(agent=team["ann"], view=view, filters=filters, before=before)
    assert refused.value.code == "invalid_frame"


def test_an_open_conversation_shows_its_rating_and_every_message_has_a_time(team):
    conversation = team["ann_resolved"]
    chat_services.rating_create(conversation_id=conversation.id, score=4, comment="Quick, thanks")
    data = selectors.conversation_for_staff(conversation_id=conversation.id)
    assert (data["rating"]["score"], data["rating"]["comment"]) == (4, "Quick, thanks")
    assert data["resolved_at"] and data["created_at"]
    assert data["messages"] and all(message["created_at"] for message in data["messages"])
    assert selectors.queue_entry(conversation_id=conversation.id)["rating"] == 4
    assert selectors.conversation_for_staff(conversation_id=team["ann_open"].id)["rating"] is None


def test_taking_over_moves_the_conversation_and_says_so_in_the_history(team):
    conversation = team["ann_open"]
    services.conversation_take_over(conversation_id=conversation.id, agent=team["bob"])
    conversation.refresh_from_db()
    assert conversation.assignee == team["bob"] and conversation.status == Conversation.Status.AGENT
    assert Ticket.objects.get(conversation=conversation).assignee == team["bob"]
    assert (
        conversation.messages.filter(role=Message.Role.SYSTEM)
        .order_by("-seq")
        .first()
        .content.startswith("You are now chatting with another member")
    )
    with pytest.raises(ActionRefused) as refused:
        services.conversation_take_over(conversation_id=conversation.id, agent=team["bob"])
    assert refused.value.code == "already_yours"


@pytest.mark.parametrize("which", ["waiting_en", "ann_resolved", "ann_snoozed"])
def test_only_a_conversation_an_agent_holds_can_be_taken_over(team, which):
    with pytest.raises(ActionRefused) as refused:
        services.conversation_take_over(conversation_id=team[which].id, agent=team["bob"])
    assert refused.value.code == "not_assigned"


def test_only_a_console_user_can_take_over(team):
    visitor = get_user_model().objects.create_user("visitor")
    with pytest.raises(ActionRefused) as refused:
        services.conversation_take_over(conversation_id=team["ann_open"].id, agent=visitor)
    assert refused.value.code == "unknown_agent"
    assert Conversation.objects.get(pk=team["ann_open"].pk).assignee == team["ann"]


# --- Over the socket --------------------------------------------------------------------------------------------


class Console:
    """A console socket of a signed-in agent, over the real ASGI application and Redis channel layer."""

    def __init__(self, user):
        client = Client()
        client.login(username=user.get_username(), password=PASSWORD)
        cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
        self.socket = WebsocketCommunicator(
            application,
            "/ws/console/",
            headers=[(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1"), (b"cookie", cookie)],
        )

    @classmethod
    async def of(cls, user) -> "Console":
        console = await database_sync_to_async(cls)(user)
        connected, _ = await console.socket.connect()
        assert connected
        await console.next("queue")
        return console

    async def send(self, **frame) -> None:
        await self.socket.send_json_to(frame)

    async def next(self, *types: str, timeout: float = 5, skip_errors: bool = False) -> dict:
        """The next frame of one of `types` (an error frame counts unless skipped); other frames are skipped."""
        while True:
            frame = await self.socket.receive_json_from(timeout)
            if frame["type"] in types or (frame["type"] == "error" and not skip_errors):
                return frame

    async def quiet(self, *types: str) -> list[dict]:
        """The frames of `types` that arrive until nothing comes for half a second."""
        got = []
        while not await self.socket.receive_nothing(0.5):
            frame = await self.socket.receive_json_from()
            if frame["type"] in types:
                got.append(frame)
        return got

    async def close(self) -> None:
        await self.socket.disconnect()


over_the_socket = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def _setup(*usernames):
    return [agent(name) for name in usernames]


@over_the_socket
async def test_a_console_keeps_its_view_up_to_date_as_conversations_move():
    (ann,) = await _setup("ann")
    shop = await database_sync_to_async(Site.objects.create)(name="Shop", allowed_origins="https://shop.example")
    console = await Console.of(ann)
    await console.send(type="list", view="mine", filters={})
    listed = await console.next("list")
    assert (listed["view"], listed["conversations"], listed["append"]) == ("mine", [], False)
    assert {"key": shop.key, "name": "Shop"} in listed["sites"]  # the site filter's choices
    waiting = await database_sync_to_async(handed_off)("Li Lei")
    removed = await console.next("queue_remove", "queue_item")  # waiting: not in "mine", but said so
    assert (removed["type"], removed["waiting"]) == ("queue_remove", True)
    await database_sync_to_async(services.conversation_claim)(conversation_id=waiting.id, agent=ann)
    item = await console.next("queue_item")
    assert (item["item"]["id"], item["item"]["assignee"]) == (str(waiting.id), "ann")
    await console.send(type="list", view="resolved")
    assert (await console.next("list"))["conversations"] == []
    await database_sync_to_async(chat_services.conversation_resolve)(conversation_id=waiting.id, agent=ann)
    item = await console.next("queue_item")
    assert (item["item"]["id"], item["item"]["status"]) == (str(waiting.id), "resolved")
    await console.send(type="list", view="nowhere")
    assert (await console.next("list"))["code"] == "invalid_frame"
    await console.close()


@over_the_socket
async def test_an_agent_reads_a_conversation_another_holds_but_cannot_act_until_taking_it_over():
    ann, bob = await _setup("ann", "bob")
    conversation = await database_sync_to_async(claimed)("Li Lei", ann)
    bob_console = await Console.of(bob)
    await bob_console.send(type="open", conversation=str(conversation.id))
    opened = await bob_console.next("conversation")
    assert opened["conversation"]["assignee"] == "ann"
    await bob_console.send(type="history", conversation=str(conversation.id), before_seq=2)
    assert (await bob_console.next("history"))["type"] == "history"
    await bob_console.send(type="message", conversation=str(conversation.id), content="hi", client_id="x")
    answer = await bob_console.next("ack")
    assert (answer["type"], answer.get("code")) == ("error", "forbidden")
    # A private note is for colleagues: acknowledged like a reply, and a resend (same client_id) stored once.
    for _ in range(2):
        await bob_console.send(type="note", conversation=str(conversation.id), content="VIP", client_id="n-1")
        ack = await bob_console.next("ack")
        assert (ack["type"], ack["client_id"]) == ("ack", "n-1")
    notes = Message.objects.filter(conversation=conversation, role="note", author=bob, client_id="n-1")
    assert await database_sync_to_async(notes.count)() == 1

    await bob_console.send(type="take_over", conversation=str(conversation.id))
    status = await bob_console.next("status")
    assert (status["status"], status["assignee"]) == ("agent", "bob")
    await bob_console.send(type="message", conversation=str(conversation.id), content="Bob here", client_id="b-1")
    assert (await bob_console.next("ack"))["client_id"] == "b-1"
    assert await database_sync_to_async(
        Message.objects.filter(conversation=conversation, author=bob, content="Bob here").exists
    )()
    await bob_console.close()


@over_the_socket
async def test_consoles_viewing_a_conversation_see_each_other_and_the_assignee_typing():
    ann, bob = await _setup("ann", "bob")
    conversation, other = await database_sync_to_async(lambda: (claimed("Li Lei", ann), handed_off("Wang")))()
    cid = str(conversation.id)
    ann_console, bob_console = await Console.of(ann), await Console.of(bob)
    await ann_console.send(type="open", conversation=cid)
    await ann_console.next("conversation")
    assert await ann_console.quiet("viewer") == []  # nobody else there yet

    await bob_console.send(type="open", conversation=cid)
    await bob_console.next("conversation")
    # Ann hears the newcomer; Bob learns from Ann's answer that she is there.
    assert (await ann_console.next("viewer"))["username"] == "bob"
    answer = await bob_console.next("viewer")
    assert (answer["conversation"], answer["username"], answer["on"]) == (cid, "ann", True)

    await ann_console.send(type="typing", conversation=cid, on=True)
    typing = await bob_console.next("typing")
    assert (typing["role"], typing["username"], typing["on"]) == ("agent", "ann", True)
    assert await ann_console.quiet("typing") == []  # her own typing is not news to her

    # Opening another conversation leaves this one; so does closing the console.
    await bob_console.send(type="open", conversation=str(other.id))
    await bob_console.next("conversation")
    left = await ann_console.next("viewer")
    assert (left["username"], left["on"]) == ("bob", False)
    await bob_console.send(type="open", conversation=cid)
    assert (await ann_console.next("viewer"))["on"] is True
    await bob_console.close()
    closed = await ann_console.next("viewer")
    assert (closed["username"], closed["on"]) == ("bob", False)
    await ann_console.close()


@over_the_socket
async def test_a_customer_message_in_an_agents_own_conversation_reaches_their_console_unopened():
    ann, _ = await _setup("ann", "bob")
    conversation = await database_sync_to_async(claimed)("Li Lei", ann)
    console = await Console.of(ann)  # the queue lists it as hers: the console follows it without opening it
    await database_sync_to_async(chat_services.message_post_customer)(
        conversation_id=conversation.id, content="Are you there?"
    )
    message = await console.next("message")
    assert (message["conversation"], message["message"]["role"]) == (str(conversation.id), "customer")
    await console.close()
