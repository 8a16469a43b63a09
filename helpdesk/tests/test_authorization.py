"""Staff and API authorization, one test per weakness found in the hardening review (issue 14): rights checked on
every console frame and relay, object-level checks on conversations, the ticket and playground permissions, the
admin group and admin actions, API keys reading only their own sessions, and reopened tickets' priority."""

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.test import Client, RequestFactory

from chat import services as chat_services
from chat.api.keys import api_key_create
from chat.models import ApiKey, Conversation, HandoffReason, Rating
from helpdesk import consumers, services
from helpdesk.asgi import application
from helpdesk.models import Ticket
from inference import services as bot_services

# The roles (groups) come back after each flush (helpdesk.roles syncs them after every migrate and flush).
pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "pw-staff-123"


def staff(username: str, *, groups=(), perms=(), is_staff: bool = False):
    user = get_user_model().objects.create_user(username, password=PASSWORD, is_staff=is_staff)
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    for code in perms:
        app_label, codename = code.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


def signed_in(user) -> Client:
    client = Client()
    client.login(username=user.get_username(), password=PASSWORD)
    return client


def queued(customer: str = "Li Lei") -> Conversation:
    conversation, _ = chat_services.conversation_start(customer_name=customer)
    chat_services.message_post_customer(conversation_id=conversation.id, content="I need a person")
    chat_services.conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.CUSTOMER_REQUEST)
    return Conversation.objects.get(pk=conversation.pk)


class Console:
    """A console socket of a signed-in user, over the real ASGI application."""

    def __init__(self, client: Client):
        self.client = client
        cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
        self.socket = WebsocketCommunicator(
            application,
            "/ws/console/",
            headers=[(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1"), (b"cookie", cookie)],
        )

    async def open(self) -> "Console":
        connected, _ = await self.socket.connect()
        assert connected
        await self.next("queue")
        return self

    async def send(self, **frame) -> None:
        await self.socket.send_json_to(frame)

    async def next(self, *types: str, timeout: float = 5) -> dict:
        """The next frame of one of `types` (an error frame always counts); other frames are skipped."""
        while True:
            frame = await self.socket.receive_json_from(timeout)
            if frame["type"] in types or frame["type"] == "error":
                return frame

    async def closed_with(self, timeout: float = 5) -> int:
        """Read up to the close; its code (frames before it are dropped)."""
        while True:
            output = await self.socket.receive_output(timeout)
            if output["type"] == "websocket.close":
                return output.get("code")


async def console_of(user) -> Console:
    client = await database_sync_to_async(signed_in)(user)
    return await Console(client).open()


# 1. The console's right is checked on every frame and relay, not only at the handshake.

LOSSES = {
    "signed out": lambda user, client: client.logout(),
    "deactivated": lambda user, client: get_user_model().objects.filter(pk=user.pk).update(is_active=False),
    "removed from the agents": lambda user, client: user.groups.clear(),
    "password changed": lambda user, client: (user.set_password("another-pw-456"), user.save()),
}


@pytest.mark.parametrize("loss", LOSSES)
async def test_the_console_closes_on_the_next_frame_once_the_agent_lost_the_right(loss):
    user = await database_sync_to_async(staff)("ann", groups=["agent"])
    console = await console_of(user)
    await database_sync_to_async(LOSSES[loss])(user, console.client)
    await console.send(type="presence", status="away")
    frame = await console.next("presence")
    assert (frame["type"], frame.get("code")) == ("error", "access_revoked")
    assert await console.closed_with() == consumers.CLOSE_FORBIDDEN


async def test_an_agent_who_lost_the_right_stops_receiving_the_customers_messages():
    user = await database_sync_to_async(staff)("ann", groups=["agent"])
    conversation = await database_sync_to_async(queued)()
    console = await console_of(user)
    await console.send(type="open", conversation=str(conversation.id))
    assert (await console.next("conversation"))["type"] == "conversation"

    await database_sync_to_async(user.groups.clear)()
    await database_sync_to_async(chat_services.message_post_customer)(
        conversation_id=conversation.id, content="my card number is 4111 1111 1111 1111"
    )
    frame = await console.next("message")
    assert (frame["type"], frame.get("code")) == ("error", "access_revoked")
    assert await console.closed_with() == consumers.CLOSE_FORBIDDEN


async def test_the_periodic_queue_refresh_checks_the_right_first(monkeypatch):
    monkeypatch.setattr(consumers, "CONSOLE_QUEUE_REFRESH_S", 0.2)
    user = await database_sync_to_async(staff)("ann", groups=["agent"])
    console = await console_of(user)
    await database_sync_to_async(get_user_model().objects.filter(pk=user.pk).update)(is_active=False)
    frame = await console.next("queue")
    assert (frame["type"], frame.get("code")) == ("error", "access_revoked")
    assert await console.closed_with() == consumers.CLOSE_FORBIDDEN


# 2. The console's ticket frame needs the ticket permission (agents have it through their group).


async def test_the_ticket_frame_needs_the_permission_to_change_tickets():
    bare = await database_sync_to_async(staff)("ann", perms=["helpdesk.use_console"])
    agent = await database_sync_to_async(staff)("bob", groups=["agent"])
    for user, allowed in ((bare, False), (agent, True)):
        conversation = await database_sync_to_async(queued)()
        console = await console_of(user)
        await console.send(type="claim", conversation=str(conversation.id))
        await console.next("conversation")
        await console.send(type="ticket", conversation=str(conversation.id), priority=4, tags="vip")
        frame = await console.next("ticket")
        ticket = await database_sync_to_async(Ticket.objects.get)(conversation=conversation)
        if allowed:
            assert frame["type"] == "ticket" and (ticket.priority, ticket.tags) == (4, "vip")
        else:
            assert (frame["type"], frame.get("code")) == ("error", "forbidden")
            assert (ticket.priority, ticket.tags) == (Ticket.Priority.NORMAL, "")
        await console.socket.disconnect()


# 6. Agents read any conversation but act on queued ones and their own only; supervisors act on any.


async def test_an_agent_can_read_and_annotate_but_not_act_on_a_conversation_another_agent_holds():
    ann = await database_sync_to_async(staff)("ann", groups=["agent"])
    bob = await database_sync_to_async(staff)("bob", groups=["agent"])
    conversation = await database_sync_to_async(queued)()
    assert await database_sync_to_async(chat_services.conversation_assign)(
        conversation_id=conversation.id, agent=ann, expected_status=Conversation.Status.QUEUED
    )
    console = await console_of(bob)
    await console.send(type="open", conversation=str(conversation.id))
    assert (await console.next("conversation"))["conversation"]["assignee"] == "ann"  # reading is allowed
    for frame in (
        {"type": "resolve"},
        {"type": "typing", "on": True},
        {"type": "suggest"},
        {"type": "ticket", "priority": 4},
        {"type": "message", "content": "hi", "client_id": "x"},
        {"type": "hand_back"},
        {"type": "transfer", "to": "bob"},
    ):
        await console.send(conversation=str(conversation.id), **frame)
        answer = await console.next("conversation", "ack", "ticket")
        assert (answer["type"], answer.get("code")) == ("error", "forbidden"), frame
    conversation = await database_sync_to_async(Conversation.objects.get)(pk=conversation.pk)
    assert conversation.status == Conversation.Status.AGENT and conversation.assignee_id == ann.pk
    assert not await database_sync_to_async(conversation.messages.filter(role__in=("agent", "note")).exists)()
    # A private note is for colleagues: Bob may leave one for Ann.
    await console.send(type="note", conversation=str(conversation.id), content="She called yesterday")
    assert (await console.next("note"))["message"]["content"] == "She called yesterday"


async def test_an_agent_cannot_resolve_a_queued_conversation_without_claiming_it_but_may_annotate_it():
    bob = await database_sync_to_async(staff)("bob", groups=["agent"])
    conversation = await database_sync_to_async(queued)()
    console = await console_of(bob)
    await console.send(type="open", conversation=str(conversation.id))
    assert (await console.next("conversation"))["type"] == "conversation"  # reading the queue is allowed
    await console.send(type="resolve", conversation=str(conversation.id))
    answer = await console.next("conversation")
    assert (answer["type"], answer.get("code")) == ("error", "forbidden")
    await console.send(type="note", conversation=str(conversation.id), content="Refund already sent")
    assert (await console.next("note"))["message"]["author"] == "bob"
    conversation = await database_sync_to_async(Conversation.objects.get)(pk=conversation.pk)
    assert conversation.status == Conversation.Status.QUEUED and conversation.assignee_id is None


async def test_a_manager_may_open_and_annotate_any_conversation():
    ann = await database_sync_to_async(staff)("ann", groups=["agent"])
    boss = await database_sync_to_async(staff)("boss", groups=["manager"])
    conversation = await database_sync_to_async(queued)()
    await database_sync_to_async(chat_services.conversation_assign)(
        conversation_id=conversation.id, agent=ann, expected_status=Conversation.Status.QUEUED
    )
    console = await console_of(boss)
    await console.send(type="open", conversation=str(conversation.id))
    assert (await console.next("conversation"))["type"] == "conversation"
    await console.send(type="note", conversation=str(conversation.id), content="watch the refund")
    assert (await console.next("note"))["type"] == "note"


# 3. The playground needs its permission; the prompt needs the prompt permissions.


def test_the_playground_is_not_open_to_any_staff_account():
    clerk = staff("clerk", is_staff=True)
    client = signed_in(clerk)
    assert client.get("/playground/").status_code == 403
    answer = client.post("/playground/retrieval", data={"question": "x"}, content_type="application/json")
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "forbidden"
    assert signed_in(staff("ann", groups=["agent"])).get("/playground/").status_code == 403
    assert signed_in(staff("boss", groups=["manager"])).get("/playground/").status_code == 200


def test_the_playground_shows_the_prompt_only_to_those_who_may_view_prompts():
    bot_services.system_prompt_publish(template="SECRET-TEMPLATE-MARK {{company_name}}", note="", created_by=None)
    tester = signed_in(staff("tess", perms=["helpdesk.use_playground"]))
    page = tester.get("/playground/")
    assert page.status_code == 200 and "SECRET-TEMPLATE-MARK" not in page.content.decode()
    published = tester.post("/playground/prompt", data={"template": "x"}, content_type="application/json")
    assert published.status_code == 403
    draft = {
        "messages": [{"role": "user", "content": "hi"}],
        "system_prompt": "draft",
        "params": {"temperature": 0.2, "top_p": 0.9, "max_tokens": 8, "frequency_penalty": 0},
    }
    assert tester.post("/playground/generate", data=draft, content_type="application/json").status_code == 403
    manager_page = signed_in(staff("boss", groups=["manager"])).get("/playground/").content.decode()
    assert "SECRET-TEMPLATE-MARK" in manager_page


# 4. The admin group holds every permission, also of models added after its migration.


def test_the_admin_group_holds_every_permission():
    held = set(Group.objects.get(name="admin").permissions.values_list("pk", flat=True))
    missing = [str(p) for p in Permission.objects.all() if p.pk not in held]
    assert not missing


def test_migrate_gives_the_admin_group_the_permissions_of_new_models():
    content_type = ContentType.objects.get_for_model(Ticket)
    new = Permission.objects.create(content_type=content_type, codename="brand_new", name="A later model's")
    call_command("migrate", verbosity=0)
    assert Group.objects.get(name="admin").permissions.filter(pk=new.pk).exists()


def test_the_roles_are_what_the_migrations_made_and_come_back_after_a_flush():
    """helpdesk.roles.DEFAULT_ROLES is the one table of a new install's roles: what the migrations granted, and what
    a flushed database gets back from the post_migrate sync."""
    import importlib

    from helpdesk.roles import DEFAULT_ROLES

    roles, reports, hardening, invites = (
        importlib.import_module(f"helpdesk.migrations.{name}")
        for name in (
            "0003_roles",
            "0008_reports_permission",
            "0009_authorization",
            "0011_manager_invites_and_knowledge",
        )
    )
    migrated = {name: set(codes) for name, codes in roles.ROLES.items()}
    migrated["manager"].add("helpdesk.view_reports")
    assert "manager" in reports.GROUPS
    for name, codes in (*hardening.GRANTS.items(), *invites.GRANTS.items()):
        migrated[name] |= set(codes)
    assert migrated == {name: set(codes) for name, codes in DEFAULT_ROLES.items()}

    def held(name):
        return {f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name=name).permissions.all()}

    Group.objects.all().delete()
    call_command("flush", verbosity=0, interactive=False)
    for name, codes in DEFAULT_ROLES.items():
        assert held(name) == set(codes), name
    assert Group.objects.get(name="admin").permissions.count() == Permission.objects.count()


# 5. Admin actions declare the permissions they need: nobody with only the view permission runs one.

# Actions that change nothing (none today) would be listed here with the reason.
HARMLESS_ACTIONS: dict[str, str] = {}


def test_every_admin_action_needs_more_than_the_view_permission():
    request = RequestFactory().get("/admin/")
    request.user = get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    checked = []
    for model, model_admin in admin.site._registry.items():
        for func, name, _description in model_admin.get_actions(request).values():
            label = f"{model._meta.label}.{name}"
            needs = set(getattr(func, "allowed_permissions", ()))
            if label not in HARMLESS_ACTIONS:
                assert needs - {"view"}, f"{label} runs for anyone who may view {model._meta.verbose_name_plural}"
            checked.append(label)
    assert "chat.ApiKey.revoke" in checked and "inference.SystemPrompt.activate" in checked


def test_a_user_who_may_only_view_api_keys_cannot_revoke_them(settings):
    key, _raw = api_key_create(name="shop", scopes=["chat"])
    viewer = signed_in(staff("viewer", perms=["chat.view_apikey"], is_staff=True))
    assert viewer.get("/admin/chat/apikey/").status_code == 200
    viewer.post("/admin/chat/apikey/", {"action": "revoke", "_selected_action": [str(key.pk)]})
    key.refresh_from_db()
    assert key.revoked_at is None


# 7. A read key reads the widget's conversations and its own API sessions, not other keys' sessions.


def test_a_read_key_reads_its_own_sessions_but_not_another_keys(settings):
    settings.API_RATE_LIMIT_PER_IP = 100_000
    mine, my_raw = api_key_create(name="mine", scopes=["chat", "read"])
    theirs, _ = api_key_create(name="theirs", scopes=["chat"])
    _admin, admin_raw = api_key_create(name="root", scopes=["admin"])
    own = chat_services.conversation_for_api_session(api_key=mine, session_id="s1")
    other = chat_services.conversation_for_api_session(api_key=theirs, session_id="s1")
    widget, _ = chat_services.conversation_start(customer_name="Li Lei")
    Ticket.objects.create(conversation=other, subject="their ticket")
    Rating.objects.create(conversation=other, score=1)
    reader = Client(headers={"Authorization": f"Bearer {my_raw}"})
    listed = {item["id"] for item in reader.get("/api/v1/conversations").json()["items"]}
    assert listed == {str(own.id), str(widget.id)}
    for path in ("", "/messages", "/export"):
        assert reader.get(f"/api/v1/conversations/{other.id}{path}").status_code == 404
        assert reader.get(f"/api/v1/conversations/{own.id}{path}").status_code == 200
    assert reader.get("/api/v1/tickets").json()["items"] == []
    assert reader.get(f"/api/v1/tickets/{Ticket.objects.get().pk}").status_code == 404
    assert reader.get("/api/v1/ratings").json()["items"] == []
    root = Client(headers={"Authorization": f"Bearer {admin_raw}"})
    assert len(root.get("/api/v1/conversations").json()["items"]) == 3
    assert root.get(f"/api/v1/conversations/{other.id}").status_code == 200
    assert ApiKey.objects.count() == 3


# 8. A customer's return to the queue starts at the default priority.


def test_a_reopened_conversation_does_not_bring_back_the_old_urgent_priority():
    ann = staff("ann", groups=["agent"])
    conversation = queued()
    chat_services.conversation_assign(
        conversation_id=conversation.id, agent=ann, expected_status=Conversation.Status.QUEUED
    )
    Ticket.objects.filter(conversation=conversation).update(priority=Ticket.Priority.URGENT)
    chat_services.conversation_resolve(conversation_id=conversation.id, agent=ann)
    chat_services.message_post_customer(conversation_id=conversation.id, content="me again")
    chat_services.conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.CUSTOMER_REQUEST)
    ticket = Ticket.objects.get(conversation=conversation)
    assert ticket.status == Ticket.Status.OPEN and ticket.priority == Ticket.Priority.NORMAL


def test_a_read_key_lists_no_other_keys_sessions_in_the_report_export(settings):
    settings.API_RATE_LIMIT_PER_IP = 100_000
    _mine, my_raw = api_key_create(name="mine", scopes=["read"])
    theirs, _ = api_key_create(name="theirs", scopes=["chat"])
    other = chat_services.conversation_for_api_session(api_key=theirs, session_id="s1")
    widget, _ = chat_services.conversation_start(customer_name="Li Lei")
    for conversation in (other, widget):  # the reports count conversations in which a customer wrote
        chat_services.message_post_customer(conversation_id=conversation.id, content="Hello")
    csv = b"".join(
        Client(headers={"Authorization": f"Bearer {my_raw}"}).get("/api/v1/reports/conversations").streaming_content
    ).decode()
    assert str(widget.id) in csv and str(other.id) not in csv


async def test_an_agent_keeps_following_a_conversation_another_agent_takes_but_cannot_reply():
    ann = await database_sync_to_async(staff)("ann", groups=["agent"])
    bob = await database_sync_to_async(staff)("bob", groups=["agent"])
    conversation = await database_sync_to_async(queued)()
    console = await console_of(bob)
    await console.send(type="open", conversation=str(conversation.id))  # reading the queue is allowed
    await console.next("conversation")
    await database_sync_to_async(services.conversation_claim)(conversation_id=conversation.id, agent=ann)
    assert (await console.next("status"))["assignee"] == "ann"
    await database_sync_to_async(chat_services.message_post_customer)(
        conversation_id=conversation.id, content="my address is 1 Main St"
    )
    # Any agent may read any conversation (collision safety shows who has it), so the news keeps coming.
    assert (await console.next("message"))["message"]["content"] == "my address is 1 Main St"
    await console.send(type="message", conversation=str(conversation.id), content="me too", client_id="b")
    answer = await console.next("ack")
    assert (answer["type"], answer.get("code")) == ("error", "forbidden")
