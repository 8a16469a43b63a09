"""The authorization matrix: every HTTP route and every socket frame type, for every kind of caller.

The routes are GENERATED from the URL resolver (helpdesk.urls, the admin's and the API's patterns included) and the
frame types from the consumers (AgentConsumer.FRAME_TYPES; the customer socket's frame-limit table names each of its
types). The expected answer of each cell is data below. A route or frame type without a row fails the test, so a new
endpoint cannot escape the matrix. Admin pages are covered generically: each registered ModelAdmin's changelist,
add, change, history, delete and object pages, expected from the roles' permissions written out here.

Outcomes: an HTTP status (200, 400, 401, 403, 404, 405, ...); "login" (302 to the staff sign-in page); "admin-login"
(302 to the admin's); "redirect" (another 302); "shadowed" (an earlier route answers that path: nothing to test).
Sockets: "refused" (the handshake), "closed:<code>" (closed after an error frame), "error:<code>" (an error frame,
the socket stays open), "ok" (no direct answer and no error) or the type of the direct answer ("conversation",
"ack", "ready", "pong", ...).

Principals: anonymous; customer_a and customer_b (for the customer socket: customer_b says hello with their own
secret on customer_a's conversation); agent (the conversation's assignee) and agent_other (an agent it is not
assigned to); manager; admin (the admin group, not a superuser); removed (for HTTP, a manager taken out of their
group between two requests; for the console, an agent taken out of the agents while connected); API keys with the
chat, read, contacts and admin scope, agent keys (acting as the agent; acting as nobody; acting as a user without
the console), and a revoked one.

`python -m pytest tests/test_authorization_matrix.py -q` prints how many cells were checked (CELLS_CHECKED).
"""

import json
import re
import uuid
from urllib.parse import urlsplit

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from chat import services as chat_services
from chat.api.keys import api_key_create, api_key_revoke
from chat.frame_limits import CUSTOMER_FRAME_LIMITS, OTHER
from chat.models import ApiKey, Conversation, EmailSuppression, HandoffReason, Message, Rating, Site
from helpdesk.asgi import application, websocket_urlpatterns
from helpdesk.consumers import AgentConsumer
from helpdesk.invitations import invitation_create
from helpdesk.models import CannedResponse, CustomerNote, Ticket, Webhook, WebhookDelivery
from inference.models import FallbackRule
from inference.services import system_prompt_publish
from knowledge.services import ArticleInput, article_save

# The roles come back after each flush (helpdesk.roles syncs them after every migrate and flush).
pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "pw-matrix-123"
SITE_ORIGIN = "https://shop.example"
CELLS_CHECKED = {"http": 0, "socket": 0}

NOBODY = ("anonymous", "customer_a", "customer_b")
STAFF = ("agent", "agent_other", "manager", "admin", "removed")
# key_agent acts as the agent; key_agent_unbound as nobody (its member was deleted); key_agent_unprivileged as a
# user without the console. key_admin acts as nobody.
KEYS = (
    "key_chat",
    "key_read",
    "key_agent",
    "key_contacts",
    "key_agent_unbound",
    "key_agent_unprivileged",
    "key_admin",
    "key_revoked",
)
PRINCIPALS = (*NOBODY, *STAFF, *KEYS)


def expect(**cells) -> dict[str, object]:
    """A row: an outcome per principal. Groups: `everyone`, `sessionless` (nobody and the keys: no staff session),
    `nobody`, `staff`, `keys`, `agents` (agent and agent_other), `supervisors` (manager and admin); a principal's own
    name overrides its group's."""
    groups = {
        "everyone": PRINCIPALS,
        "sessionless": (*NOBODY, *KEYS),
        "nobody": NOBODY,
        "staff": STAFF,
        "keys": KEYS,
        "agents": ("agent", "agent_other"),
        "supervisors": ("manager", "admin"),
    }
    row: dict[str, object] = {}
    for name in ("everyone", "sessionless", "nobody", "staff", "keys", "agents", "supervisors"):
        if name in cells:
            row.update(dict.fromkeys(groups[name], cells.pop(name)))
    unknown = set(cells) - set(PRINCIPALS)
    assert not unknown, f"unknown principals {unknown}"
    row.update(cells)
    missing = set(PRINCIPALS) - set(row)
    assert not missing, f"a row must name every principal: {missing}"
    return row


def api_row(**cells) -> dict:
    """A REST API row: no key (or a revoked one) 401, a key without the endpoint's scope 403; `cells` the rest."""
    return expect(everyone=401, keys=403, key_revoked=401, **cells)


def staff_page(ok=200, *, post=None):
    """A staff page: callers without a session sign in first."""
    return expect(sessionless="login", staff=ok) if post is None else expect(sessionless="login", staff=post)


# --- Expected answers of the HTTP routes (route name, or pattern for unnamed ones) x method -------------------------

CONSOLE = expect(sessionless="login", agents=200, supervisors=200, removed=403)
HTTP: dict[tuple[str, str], dict] = {
    # The staff sign-in, its throttled twin for the admin, sign-out and the password pages of django.contrib.auth.
    ("login", "GET"): expect(everyone=200),
    ("login", "POST"): expect(everyone=200),  # the form again, with "wrong username or password"
    # Signed-in staff are sent on to the admin's index.
    ("admin/login/", "GET"): expect(everyone=200, supervisors="redirect", removed="redirect"),
    ("admin/login/", "POST"): expect(everyone=200),
    ("admin:login", "GET"): "shadowed",
    ("admin:login", "POST"): "shadowed",
    ("password_reset", "GET"): expect(everyone=200),
    ("password_reset", "POST"): expect(everyone=200),  # the form again: no address given
    ("logout", "GET"): expect(everyone=405),
    ("logout", "POST"): expect(everyone="login"),
    ("password_change", "GET"): staff_page(),
    ("password_change", "POST"): staff_page(200),
    ("password_change_done", "GET"): staff_page(),
    ("password_change_done", "POST"): staff_page(405),
    ("password_reset_done", "GET"): expect(everyone=200),
    ("password_reset_done", "POST"): expect(everyone=405),
    ("password_reset_confirm", "GET"): expect(everyone=200),  # "the link was invalid"
    ("password_reset_confirm", "POST"): expect(everyone=200),
    ("password_reset_complete", "GET"): expect(everyone=200),
    ("password_reset_complete", "POST"): expect(everyone=405),
    # The admin site's own pages (the model pages are generated below).
    ("admin:index", "GET"): expect(sessionless="admin-login", agents="admin-login", supervisors=200, removed=200),
    ("admin:index", "POST"): expect(sessionless="admin-login", agents="admin-login", supervisors=200, removed=200),
    ("admin:logout", "GET"): expect(sessionless="redirect", agents="redirect", supervisors=405, removed=405),
    ("admin:logout", "POST"): expect(sessionless="redirect", agents="redirect", supervisors="login", removed="login"),
    ("admin:password_change", "GET"): expect(
        sessionless="admin-login", agents="admin-login", supervisors=200, removed=200
    ),
    ("admin:password_change", "POST"): expect(
        sessionless="admin-login", agents="admin-login", supervisors=200, removed=200
    ),
    ("admin:password_change_done", "GET"): expect(
        sessionless="admin-login", agents="admin-login", supervisors=200, removed=200
    ),
    ("admin:password_change_done", "POST"): expect(
        sessionless="admin-login", agents="admin-login", supervisors=405, removed=405
    ),
    ("admin:autocomplete", "GET"): expect(
        sessionless="admin-login", agents="admin-login", supervisors=403, removed=403
    ),
    ("admin:autocomplete", "POST"): expect(
        sessionless="admin-login", agents="admin-login", supervisors=405, removed=405
    ),
    ("admin:jsi18n", "GET"): expect(sessionless="admin-login", agents="admin-login", supervisors=200, removed=200),
    ("admin:jsi18n", "POST"): expect(sessionless="admin-login", agents="admin-login", supervisors=405, removed=405),
    # A user's password form: changing users is the admin group's alone.
    ("admin:auth_user_password_change", "GET"): expect(
        sessionless="admin-login", agents="admin-login", manager=403, admin=200, removed=403
    ),
    ("admin:auth_user_password_change", "POST"): expect(
        sessionless="admin-login", agents="admin-login", manager=403, admin=200, removed=403
    ),
    ("admin:view_on_site", "GET"): expect(
        sessionless="admin-login", agents="admin-login", supervisors=404, removed=404
    ),
    ("admin:view_on_site", "POST"): expect(
        sessionless="admin-login", agents="admin-login", supervisors=404, removed=404
    ),
    ("admin/(?P<url>.*)$", "GET"): expect(
        sessionless="admin-login", agents="admin-login", supervisors=404, removed=404
    ),
    ("admin/(?P<url>.*)$", "POST"): expect(
        sessionless="admin-login", agents="admin-login", supervisors=404, removed=404
    ),
    # The console and its pages.
    ("console", "GET"): CONSOLE,
    ("console", "POST"): expect(everyone=405),
    # Search and the customer profile: console users; a note needs a valid email (an empty form is a 400).
    ("console-search", "GET"): CONSOLE,
    ("console-search", "POST"): expect(everyone=405),
    ("console-customer", "GET"): CONSOLE,
    ("console-customer", "POST"): expect(sessionless="login", agents=400, supervisors=400, removed=403),
    # A file from the console: only the assignee (the agent) or a supervisor gets as far as the body (not a file).
    ("console-attachment-upload", "GET"): expect(everyone=405),
    ("console-attachment-upload", "POST"): expect(
        sessionless=401, agent=400, agent_other=403, supervisors=400, removed=403
    ),
    # Knowledge gaps need the knowledge base's view permission (managers and admins); drafts its add permission.
    ("knowledge-gaps", "GET"): expect(sessionless="login", agents=403, supervisors=200, removed=403),
    ("knowledge-gaps", "POST"): expect(everyone=405),
    ("knowledge-gap-draft", "GET"): expect(everyone=405),
    ("knowledge-gap-draft", "POST"): expect(sessionless="login", agents=403, supervisors=409, removed=403),
    # The playground: managers and admins (agents only if granted); publishing needs the prompt permissions.
    ("playground", "GET"): expect(sessionless="login", agents=403, supervisors=200, removed=403),
    ("playground", "POST"): expect(everyone=405),
    ("playground-generate", "GET"): expect(everyone=405),
    ("playground-generate", "POST"): expect(sessionless=401, agents=403, supervisors=400, removed=403),
    ("playground-prompt", "GET"): expect(everyone=405),
    ("playground-prompt", "POST"): expect(sessionless=401, agents=403, supervisors=400, removed=403),
    ("playground-retrieval", "GET"): expect(everyone=405),
    ("playground-retrieval", "POST"): expect(sessionless=401, agents=403, supervisors=400, removed=403),
    # Reports: agents see their own figures, managers everyone's.
    ("reports", "GET"): expect(sessionless="login", agents=200, supervisors=200, removed=403),
    ("reports", "POST"): expect(everyone=405),
    ("reports-conversations", "GET"): expect(sessionless="login", agents=200, supervisors=200, removed=403),
    ("reports-conversations", "POST"): expect(everyone=405),
    ("reports-transcript", "GET"): expect(
        sessionless="login", agent=200, agent_other=404, supervisors=200, removed=403
    ),
    ("reports-transcript", "POST"): expect(everyone=405),
    ("reports-export", "GET"): expect(sessionless="login", agents=200, supervisors=200, removed=403),
    ("reports-export", "POST"): expect(everyone=405),
    # Inviting teammates: managers and admins (helpdesk.add_invitation); an empty form is a 400. The invitee's page
    # is public: an unknown token answers 404 before anything else.
    ("invite", "GET"): expect(sessionless="login", agents=403, supervisors=200, removed=403),
    ("invite", "POST"): expect(sessionless="login", agents=403, supervisors=400, removed=403),
    ("invite-accept", "GET"): expect(everyone=404),
    ("invite-accept", "POST"): expect(everyone=404),
    # Health and metrics (the test client is on loopback, which /metrics trusts without METRICS_TOKEN).
    ("healthz", "GET"): expect(everyone=200),
    ("healthz", "POST"): expect(everyone=405),
    ("readyz", "GET"): expect(everyone=200),
    ("readyz", "POST"): expect(everyone=405),
    ("metrics", "GET"): expect(everyone=200),
    ("metrics", "POST"): expect(everyone=405),
    # The customers' side: public, limited by the site's origins (the requests carry one of the site's).
    ("chat:page", "GET"): expect(everyone=200),
    ("chat:page", "POST"): expect(everyone=405),
    ("chat:site-config", "GET"): expect(everyone=200),
    ("chat:site-config", "POST"): expect(everyone=405),
    ("chat:conversation-create", "GET"): expect(everyone=405),
    ("chat:conversation-create", "POST"): expect(everyone=201),
    ("chat:message-leave", "GET"): expect(everyone=405),
    ("chat:message-leave", "POST"): expect(everyone=400),
    # No signed identity in the cell's body: refused (chat.identity), whoever asks.
    # Email (chat.email): Mailgun's webhook refuses what its key did not sign (no key is set here); the unsubscribe
    # page's token here is no token: 404 for everyone.
    ("chat-email:inbound-mailgun", "GET"): expect(everyone=405),
    ("chat-email:inbound-mailgun", "POST"): expect(everyone=403),
    ("chat-email:unsubscribe", "GET"): expect(everyone=404),
    ("chat-email:unsubscribe", "POST"): expect(everyone=404),
    # An agent's own notification choices: any console user; saving redirects back to the page.
    ("console-notifications", "GET"): CONSOLE,
    ("console-notifications", "POST"): expect(
        sessionless="login", agents="redirect", supervisors="redirect", removed=403
    ),
    ("chat:identity", "GET"): expect(everyone=405),
    ("chat:identity", "POST"): expect(everyone=403),
    # Attachments: a customer proves the conversation with its secret in a header, which no principal here sends (a
    # stranger's 404 is the same as for nothing there); staff with the console download any conversation's files.
    ("chat:attachment-upload", "GET"): expect(everyone=405),
    ("chat:attachment-upload", "POST"): expect(everyone=404),
    ("chat:attachment", "GET"): expect(everyone=404, agents=200, supervisors=200),
    ("chat:attachment", "POST"): expect(everyone=405),
    # The REST API: a key with the endpoint's scope (admin has all); no key 401, a revoked key 401.
    ("api:openapi-json", "GET"): expect(everyone=200),
    ("api:openapi-json", "POST"): expect(everyone=200),  # the public schema, whatever the method
    ("api:openapi-view", "GET"): expect(everyone=200),
    ("api:openapi-view", "POST"): expect(everyone=200),
    ("api:api-root", "GET"): "shadowed",
    ("api:api-root", "POST"): "shadowed",
    ("api:chat", "GET"): expect(everyone=405),
    ("api:chat", "POST"): api_row(key_chat=400, key_admin=400),
    ("api:models", "GET"): api_row(key_chat=200, key_admin=200),
    ("api:models", "POST"): expect(everyone=405),
    ("api:chat_completions", "GET"): expect(everyone=405),
    ("api:chat_completions", "POST"): api_row(key_chat=400, key_admin=400),
    ("api:conversations_list", "GET"): api_row(key_read=200, key_admin=200),
    ("api:conversations_list", "POST"): expect(everyone=405),
    # The conversation of these three is an API session of another key: a read key gets 404, as for no such id.
    ("api:conversation_detail", "GET"): api_row(key_read=404, key_admin=200),
    ("api:conversation_detail", "POST"): expect(everyone=405),
    ("api:conversation_messages", "GET"): api_row(key_read=404, key_admin=200),
    # A reply (the agent API, at the same address): the agent key's body lacks its content; the admin key acts as
    # nobody, and so does the unbound agent key; the unprivileged one acts as a member without the console.
    ("api:conversation_messages", "POST"): api_row(key_agent=400),
    ("api:message_post", "GET"): "shadowed",
    ("api:message_post", "POST"): "shadowed",
    # A file of the widget's conversation (test_api_read covers another key's session: 404).
    ("api:attachment_download", "GET"): api_row(key_read=200, key_admin=200),
    ("api:attachment_download", "POST"): expect(everyone=405),
    ("api:conversation_export", "GET"): api_row(key_read=404, key_admin=200),
    ("api:conversation_export", "POST"): expect(everyone=405),
    ("api:ratings_list", "GET"): api_row(key_read=200, key_admin=200),
    ("api:ratings_list", "POST"): expect(everyone=405),
    ("api:api_keys_list", "GET"): api_row(key_admin=200),
    ("api:api_keys_list", "POST"): expect(everyone=405),
    ("api:api_key_revoke_view", "GET"): expect(everyone=405),
    ("api:api_key_revoke_view", "POST"): api_row(key_admin=200),
    # The ticket of these is the widget conversation's: every read key may read it.
    ("api:tickets_list", "GET"): api_row(key_read=200, key_admin=200),
    ("api:tickets_list", "POST"): expect(everyone=405),
    ("api:ticket_detail", "GET"): api_row(key_read=200, key_admin=200),
    ("api:ticket_detail", "POST"): expect(everyone=405),
    ("api:ticket_edit", "GET"): "shadowed",  # PATCH, in test_patch_cells
    ("api:ticket_edit", "POST"): "shadowed",
    ("api:reports_summary", "GET"): api_row(key_read=200, key_admin=200),
    ("api:reports_summary", "POST"): expect(everyone=405),
    ("api:reports_conversations", "GET"): api_row(key_read=200, key_admin=200),
    ("api:reports_conversations", "POST"): expect(everyone=405),
    # The agent API on that session (the bot has it; it is nobody's): the agent key's claim finds nothing waiting,
    # and it is not the agent's to hand back or resolve, nor resolved; a transfer's body lacks the agent.
    ("api:conversation_assign", "GET"): expect(everyone=405),
    ("api:conversation_assign", "POST"): api_row(key_agent=409),
    ("api:conversation_transfer", "GET"): expect(everyone=405),
    ("api:conversation_transfer", "POST"): api_row(key_agent=400),
    ("api:conversation_hand_back", "GET"): expect(everyone=405),
    ("api:conversation_hand_back", "POST"): api_row(key_agent=409),
    ("api:conversation_resolve", "GET"): expect(everyone=405),
    ("api:conversation_resolve", "POST"): api_row(key_agent=409),
    ("api:conversation_reopen", "GET"): expect(everyone=405),
    ("api:conversation_reopen", "POST"): api_row(key_agent=409),
    # Contacts: the contacts and admin keys (an empty new contact or link is a 400). PATCH in test_patch_cells.
    ("api:contacts_list", "GET"): api_row(key_contacts=200, key_admin=200),
    ("api:contacts_list", "POST"): api_row(key_contacts=400, key_admin=400),
    ("api:contact_create", "GET"): "shadowed",
    ("api:contact_create", "POST"): "shadowed",
    ("api:contact_detail", "GET"): api_row(key_contacts=200, key_admin=200),
    ("api:contact_detail", "POST"): expect(everyone=405),
    ("api:contact_update", "GET"): "shadowed",
    ("api:contact_update", "POST"): "shadowed",
    ("api:conversation_contact_link", "GET"): expect(everyone=405),
    ("api:conversation_contact_link", "POST"): api_row(key_contacts=400, key_admin=400),
    ("^(?:api|v1)/(?P<rest>.*)$", "GET"): expect(everyone=404),
    ("^(?:api|v1)/(?P<rest>.*)$", "POST"): expect(everyone=404),
}

# --- The admin's model pages, generically -----------------------------------------------------------------------

# What the manager role may do in the admin, per model (migrations 0003, 0008, 0009 and 0011 of helpdesk):
# "view", "add", "change", "delete". The admin group has every permission; the ModelAdmins refuse some pages to
# everyone (ADMIN_REFUSED).
MANAGER_ADMIN = {
    "chat.conversation": {"view"},
    "chat.message": {"view"},
    "chat.rating": {"view"},
    "helpdesk.ticket": {"view", "change"},
    "inference.systemprompt": {"view", "add"},
    "inference.fallbackrule": {"view", "add", "change"},
    "knowledge.article": {"view", "add", "change"},
}
ADMIN_REFUSED = {
    ("chat.conversation", "add"),
    ("chat.message", "add"),
    ("chat.rating", "add"),
    ("helpdesk.ticket", "add"),
    ("helpdesk.webhookdelivery", "add"),
    ("helpdesk.invitation", "add"),  # made on the invitation page, which shows the one-time link
    ("helpdesk.customernote", "add"),  # written on the customer's profile page
    ("inference.systemprompt", "delete"),
}
# Each page and the permission it needs ("view" is also granted by "change", as in the admin).
ADMIN_PAGES = {"changelist": "view", "add": "add", "change": "view", "history": "view", "delete": "delete"}


def admin_page_expected(model_label: str, page: str) -> dict:
    """The row of one model page: without a staff session, the admin's sign-in; staff get 200 if their role may,
    403 otherwise. The unnamed `<object_id>/` page redirects staff to the change page whatever they may."""
    if page == "object":
        return expect(sessionless="admin-login", agents="admin-login", supervisors="redirect", removed="redirect")
    need = ADMIN_PAGES[page]

    def allowed(perms: set[str]) -> bool:
        return (model_label, page) not in ADMIN_REFUSED and (need in perms or (need == "view" and "change" in perms))

    return expect(
        sessionless="admin-login",
        agents="admin-login",
        manager=200 if allowed(MANAGER_ADMIN.get(model_label, set())) else 403,
        admin=200 if allowed({"view", "add", "change", "delete"}) else 403,
        removed=403,
    )


# The admin's app pages: 404 for staff who may see nothing of the app.
ADMIN_APPS_MANAGER = {"chat", "helpdesk", "inference", "knowledge"}

# --- Expected answers of the console's frames (AgentConsumer.FRAME_TYPES) ----------------------------------------

# The frame sent (besides its type and the conversation) and the conversation it names: "assigned" (the agent's),
# "queued" (waiting, for a claim) or "resolved" (the agent's, then resolved, for a reopen).
FRAME_SAMPLES = {
    "claim": ({}, "queued"),
    "open": ({}, "assigned"),
    "history": ({"before_seq": 2}, "assigned"),
    "message": ({"content": "Hello", "client_id": "m-1"}, "assigned"),
    "note": ({"content": "A note"}, "assigned"),
    "hand_back": ({}, "assigned"),
    "resolve": ({}, "assigned"),
    "typing": ({"on": True}, "assigned"),
    "suggest": ({}, "assigned"),
    "transfer": ({"to": "admin"}, "assigned"),
    "presence": ({"status": "away"}, "assigned"),
    "ticket": ({"priority": 3, "tags": "vip"}, "assigned"),
    "ping": ({}, "assigned"),
    "list": ({"view": "all", "filters": {"priority": 2}}, "assigned"),
    "take_over": ({}, "assigned"),
    "reopen": ({}, "resolved"),
    "snooze": ({"until": None}, "assigned"),
}
REFUSED_AT_HANDSHAKE = dict.fromkeys((*NOBODY, *KEYS), "refused")
REVOKED = "closed:4403"


def console_row(agent, agent_other="error:forbidden", supervisors=None) -> dict:
    """A console frame's row: refused at the handshake without a staff session, closed for the agent who lost the
    right while connected."""
    return expect(
        **REFUSED_AT_HANDSHAKE,
        agent=agent,
        agent_other=agent_other,
        supervisors=agent if supervisors is None else supervisors,
        removed=REVOKED,
    )


CONSOLE_FRAMES = {
    "claim": console_row("conversation", agent_other="conversation"),  # a queued conversation: anyone may claim it
    # Any console user reads any conversation (to see who has it, and take it over); acting needs it to be theirs.
    "open": console_row("conversation", agent_other="conversation"),
    "history": console_row("history", agent_other="history"),
    "list": console_row("list", agent_other="list"),
    # Taking over is for a conversation another agent holds: any console user may, the assignee has it already.
    "take_over": console_row("error:already_yours", agent_other="ok", supervisors="ok"),
    # A resolved conversation is reopened by its last agent (or a supervisor); snoozed by its assignee (or one).
    "reopen": console_row("ok"),
    "snooze": console_row("ok"),
    # Only the assignee replies, hands back and transfers (chat's rule, for supervisors too: a manager does those in
    # the admin); a supervisor may resolve any conversation.
    "message": console_row("ack", supervisors="error:not_assigned"),
    "hand_back": console_row("ok", supervisors="error:not_assigned"),
    "resolve": console_row("ok"),
    "transfer": console_row("ok", supervisors="error:not_assigned"),
    "note": console_row("ack", agent_other="ack"),  # a note for colleagues: on any conversation
    "typing": console_row("ok"),
    "suggest": console_row("ok"),
    "ticket": console_row("ticket"),
    "presence": console_row("presence", agent_other="presence"),
    "ping": console_row("pong", agent_other="pong"),
}

# --- Expected answers of the customer socket's frames (chat.frame_limits.CUSTOMER_FRAME_LIMITS names them) --------

# customer_a says hello with their secret first (their own conversation); customer_b says hello with their own
# secret on customer_a's conversation (refused like a wrong secret); the others send the frame without a hello.
CUSTOMER_SAMPLES = {
    "hello": {},
    "ping": {},
    "message": {"content": "Where is my parcel?", "client_id": "c-1"},
    "typing": {"on": True},
    "contact": {"name": "Li Lei", "email": "li@example.com"},
    "rate": {"score": 5},
    "resolve": {},
    "transcript": {},
}
NO_HELLO = "closed:4401"
CUSTOMER_FRAMES = {
    "hello": expect(everyone="closed:4401", customer_a="ready", customer_b="closed:4403"),
    "ping": expect(everyone="pong", customer_b="closed:4403"),
    "message": expect(everyone=NO_HELLO, customer_a="ack", customer_b="closed:4403"),
    "typing": expect(everyone=NO_HELLO, customer_a="ok", customer_b="closed:4403"),
    "contact": expect(everyone=NO_HELLO, customer_a="contact_saved", customer_b="closed:4403"),
    "rate": expect(everyone=NO_HELLO, customer_a="error:not_resolved", customer_b="closed:4403"),
    "resolve": expect(everyone=NO_HELLO, customer_a="ok", customer_b="closed:4403"),
    # customer_a left no email address: there is nowhere to send the transcript.
    "transcript": expect(everyone=NO_HELLO, customer_a="error:no_email", customer_b="closed:4403"),
}


# --- The routes, from the resolver ------------------------------------------------------------------------------


def url_routes() -> list[tuple[str, str, URLPattern]]:
    """(key, full pattern, pattern) for every URL pattern under ROOT_URLCONF; the key is the route's name (with its
    namespace) or, for an unnamed one, its full pattern."""
    found = []

    def walk(patterns, prefix: str, namespace: str | None) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern), pattern.namespace or namespace)
            else:
                route = prefix + str(pattern.pattern)
                key = (f"{namespace}:{pattern.name}" if namespace else pattern.name) if pattern.name else route
                found.append((key, route, pattern))

    walk(get_resolver().url_patterns, "", None)
    return found


def model_admin_page(pattern: URLPattern) -> tuple[str, str] | None:
    """(model label, page) for a ModelAdmin's page, else None."""
    model_admin = getattr(pattern.callback, "model_admin", None)
    if model_admin is None:
        return None
    label = model_admin.model._meta.label_lower
    page = pattern.name.rsplit("_", 1)[1] if pattern.name else "object"
    return label, page


class World:
    """The data every cell runs against: users of each role, API keys, conversations and a ticket."""

    def __init__(self):
        users = get_user_model().objects
        self.site = Site.objects.create(name="Shop", allowed_origins=SITE_ORIGIN, conversations_per_ip=1_000_000)
        self.users = {}
        for name, group, is_staff in (
            ("agent", "agent", False),
            ("agent_other", "agent", False),
            ("manager", "manager", True),
            ("admin", "admin", True),
            ("removed", "manager", True),
        ):
            user = users.create_user(name, password=PASSWORD, is_staff=is_staff)
            user.groups.add(Group.objects.get(name=group))
            self.users[name] = user
        self.keys = {}
        for name, scopes in (
            ("key_chat", ["chat"]),
            ("key_read", ["read"]),
            ("key_contacts", ["contacts"]),
            ("key_admin", ["admin"]),
        ):
            self.keys[name] = api_key_create(name=name, scopes=scopes)
        bystander = users.create_user("bystander", password=PASSWORD)  # in no role: no console
        for name, acts_as in (
            ("key_agent", self.users["agent"]),
            ("key_agent_unbound", bystander),
            ("key_agent_unprivileged", bystander),
        ):
            self.keys[name] = api_key_create(name=name, scopes=["agent"], acts_as=acts_as)
        ApiKey.objects.filter(pk=self.keys["key_agent_unbound"][0].pk).update(acts_as=None)
        revoked, raw = api_key_create(name="revoked", scopes=["admin"])
        api_key_revoke(key_id=revoked.pk)
        self.keys["key_revoked"] = (revoked, raw)
        self.victim, _ = api_key_create(name="victim", scopes=["chat"])
        self.clients: dict[str, Client] = {}

        # Customer A's conversation: handed off and claimed by the agent; customer B's own, elsewhere.
        self.conversation_a, self.secret_a = chat_services.conversation_start(site=self.site, customer_name="A")
        chat_services.message_post_customer(conversation_id=self.conversation_a.id, content="I need a person")
        chat_services.conversation_hand_off(
            conversation_id=self.conversation_a.id, reason=HandoffReason.CUSTOMER_REQUEST
        )
        chat_services.conversation_assign(
            conversation_id=self.conversation_a.id, agent=self.users["agent"], expected_status="queued"
        )
        chat_services.message_post_agent(
            conversation_id=self.conversation_a.id, agent=self.users["agent"], content="Happy to help"
        )
        self.conversation_b, self.secret_b = chat_services.conversation_start(site=self.site, customer_name="B")
        self.ticket = Ticket.objects.get(conversation=self.conversation_a)
        # An API session of another key (the victim's): the API routes that name a conversation use it.
        self.api_session = chat_services.conversation_for_api_session(api_key=self.victim, session_id="s-1")
        self.contact = chat_services.contact_create(name="Ada", email="ada@example.com")
        # One object of every model the admin shows, for its object pages.
        system_prompt_publish(template="You help {{company_name}} customers.", note="", created_by=None)
        FallbackRule.objects.create(name="hello", keywords="hello", answer="Hi!")
        article_save(data=ArticleInput(slug="returns", title="Returns", body="Returns are free within 30 days."))
        Rating.objects.create(conversation=self.conversation_b, score=4)
        CannedResponse.objects.create(title="Hi", body="Hello {{customer_name}}")
        webhook = Webhook.objects.create(name="crm", url="https://crm.example.com/hook")
        WebhookDelivery.objects.create(webhook=webhook, event=Webhook.Event.RESOLVED, payload={})
        invitation_create(email="new@example.com", role="agent", invited_by=self.users["admin"])
        CustomerNote.objects.create(customer_email="ada@example.com", body="Prefers email.", author=self.users["admin"])
        EmailSuppression.objects.create(email="gone@example.com")
        self.attachment = chat_services.attachment_post_customer(
            conversation_id=self.conversation_a.id, upload=SimpleUploadedFile("invoice.pdf", b"%PDF-1.4\n%%EOF\n")
        )[0].attachments.get()
        assert Message.objects.exists()

    def client(self, principal: str) -> Client:
        """The principal's client, signed in once and reused (`fresh_clients` after a sign-out); the removed
        manager is a manager for one request, then taken out of the group before the cell's request."""
        client = self.clients.get(principal)
        if client is None:
            client = self.clients[principal] = self._client(principal)
        if principal == "removed":
            self.users["removed"].groups.add(Group.objects.get(name="manager"))
            assert client.get("/console/").status_code == 200  # a manager until now ...
            self.users["removed"].groups.clear()  # ... taken out of the group before the next request
        return client

    def fresh_clients(self) -> None:
        self.clients = {}

    def _client(self, principal: str) -> Client:
        headers = {"Origin": SITE_ORIGIN} if principal in NOBODY else {}
        if principal in KEYS:
            headers["Authorization"] = f"Bearer {self.keys[principal][1]}"
        client = Client(headers=headers, raise_request_exception=False)  # a 500 is a cell's answer too
        if principal in STAFF:
            client.force_login(self.users[principal])
        return client

    def url(self, key: str, route: str, *, object_id: str | None = None) -> str:
        """A path for the route, its parameters filled with this world's objects."""
        values = {
            "conversation_id": str(self.conversation_a.id),
            "site_key": self.site.key,
            "ticket_id": str(self.ticket.pk),
            "prefix": self.victim.prefix,
            "uidb64": "MQ",
            "token": "set-password",
            "rest": "no-such-endpoint",
            "url": "no-such-page/",
            "content_type_id": "1",
            "object_id": object_id or "1",
            "id": str(self.users["agent"].pk),
            "app_label": "helpdesk",
            "contact_id": str(self.contact.pk),
            "attachment_id": str(self.attachment.id),
        }
        if key.startswith("api:"):  # the API's conversation routes read another key's session
            values["conversation_id"] = str(self.api_session.id)
        if key == "knowledge-gap-draft":
            values["conversation_id"] = str(self.conversation_b.id)
        if key == "api:attachment_download":  # the widget's conversation, which read keys see, and its file
            values["conversation_id"] = str(self.conversation_a.id)
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], route)
        path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: values[m.group(1)], path)
        return "/" + path.lstrip("^").rstrip("$")


def outcome(response) -> object:
    if response.status_code in (301, 302):
        location = urlsplit(response["Location"]).path
        if location.startswith("/accounts/login/"):
            return "login"
        if location.startswith("/admin/login/"):
            return "admin-login"
        return "redirect"
    return response.status_code


def admin_rows() -> dict[tuple[str, str], dict]:
    """The expected rows of every ModelAdmin page (GET), and of the admin's app pages."""
    rows = {}
    for key, _route, pattern in url_routes():
        page = model_admin_page(pattern)
        if page is None:
            continue
        label, kind = page
        rows[(key, "GET")] = admin_page_expected(label, kind)
    return rows


@pytest.fixture
def world(settings) -> World:
    settings.API_RATE_LIMIT_PER_IP = settings.API_RATE_LIMIT_PER_KEY = 1_000_000
    # The matrix makes many requests from one address: the throttles have their own tests.
    settings.LOGIN_FAILURES_PER_ADDRESS = settings.LOGIN_FAILURES_PER_USERNAME = 1_000_000
    settings.PASSWORD_RESET_PER_ADDRESS = 1_000_000
    return World()


def test_every_route_has_an_expected_row_and_each_cell_holds(world, settings):
    rows = {**HTTP, **admin_rows()}
    missing, wrong = [], []
    for key, route, pattern in url_routes():
        admin_page = model_admin_page(pattern)
        methods = ("GET",) if admin_page else ("GET", "POST")
        if key == "admin:app_list":
            continue  # below, one app at a time
        for method in methods:
            row = rows.get((key, method))
            if row is None:
                missing.append(f"{method} {key}")
                continue
            object_id = None
            if admin_page and admin_page[1] in ("change", "history", "delete", "object"):
                obj = _model_for(admin_page[0])._default_manager.order_by("pk").first()
                assert obj is not None, f"the matrix's world needs a {admin_page[0]} for {key}"
                object_id = str(obj.pk)
            path = world.url(key, route, object_id=object_id)
            if row == "shadowed":
                if resolve(path).func is pattern.callback:
                    wrong.append(f"{key} is not shadowed at {path}: give it a row")
                continue
            for principal in PRINCIPALS:
                client = world.client(principal)
                body = {} if method == "POST" else None
                response = (
                    client.post(path, data=body, content_type="application/json")
                    if method == "POST"
                    else client.get(path)
                )
                got = outcome(response)
                CELLS_CHECKED["http"] += 1
                if got != row[principal]:
                    wrong.append(f"{method} {key} ({path}) as {principal}: expected {row[principal]}, got {got}")
            if key in ("logout", "admin:logout"):
                world.fresh_clients()
    for app_label in sorted({model._meta.app_label for model in admin.site._registry}):
        for principal in PRINCIPALS:
            got = outcome(world.client(principal).get(f"/admin/{app_label}/"))
            CELLS_CHECKED["http"] += 1
            if principal in (*NOBODY, *KEYS, "agent", "agent_other"):
                want = "admin-login"
            elif principal == "manager":
                want = 200 if app_label in ADMIN_APPS_MANAGER else 404
            elif principal == "admin":
                want = 200
            else:
                want = 404
            if got != want:
                wrong.append(f"GET /admin/{app_label}/ as {principal}: expected {want}, got {got}")
    print(f"\nauthorization matrix: {CELLS_CHECKED['http']} HTTP cells, {SOCKET_CELLS} socket cells")
    assert not missing, "routes without an expected row (add them to HTTP):\n" + "\n".join(missing)
    assert not wrong, f"{len(wrong)} cells differ:\n" + "\n".join(wrong)


# The routes that answer PATCH (the generic test sends GET and POST): an empty change of the agent's ticket (the
# agent key acts as its agent) and of a contact.
PATCH = {
    "api:ticket_edit": api_row(key_agent=200),
    "api:contact_update": api_row(key_contacts=200, key_admin=200),
}


def test_patch_cells(world):
    routes = {key: route for key, route, _pattern in url_routes()}
    wrong = []
    for key, row in PATCH.items():
        path = world.url(key, routes[key])
        for principal in PRINCIPALS:
            got = outcome(world.client(principal).patch(path, data={}, content_type="application/json"))
            CELLS_CHECKED["http"] += 1
            if got != row[principal]:
                wrong.append(f"PATCH {key} ({path}) as {principal}: expected {row[principal]}, got {got}")
    assert not wrong, "\n".join(wrong)


def _model_for(label: str):
    for model in admin.site._registry:
        if model._meta.label_lower == label:
            return model
    raise LookupError(label)


# --- Sockets ----------------------------------------------------------------------------------------------------

SOCKET_ROUTES = {"ws/chat/<uuid:conversation_id>/": "customer", "ws/console/": "console", "^ws/": "fallback"}


def test_every_socket_route_and_frame_type_has_expected_rows():
    routes = {str(pattern.pattern) for pattern in websocket_urlpatterns}
    assert routes == set(SOCKET_ROUTES), f"socket routes without rows: {routes - set(SOCKET_ROUTES)}"
    assert set(AgentConsumer.FRAME_TYPES) == set(CONSOLE_FRAMES) == set(FRAME_SAMPLES)
    customer_types = set(CUSTOMER_FRAME_LIMITS) - {OTHER}
    assert customer_types == set(CUSTOMER_FRAMES) == set(CUSTOMER_SAMPLES)


class Socket:
    def __init__(self, path: str, *, origin: str, cookie: str | None = None):
        headers = [(b"host", b"127.0.0.1"), (b"origin", origin.encode())]
        if cookie:
            headers.append((b"cookie", cookie.encode()))
        self.communicator = WebsocketCommunicator(application, path, headers=headers)
        self.stale_pongs = 0  # barrier pings of earlier frames still to be answered

    async def connect(self) -> bool:
        connected, _ = await self.communicator.connect()
        return connected

    async def answer(self, frame: dict, *, direct: set[str]) -> str:
        """The outcome of one frame: the first direct answer or error, "closed:<code>", or "ok" when the pong that
        follows it comes first (a ping is sent after the frame as a barrier)."""
        await self.communicator.send_json_to(frame)
        barrier = frame["type"] != "ping"
        if barrier:
            await self.communicator.send_json_to({"type": "ping"})
        error = None
        while True:
            try:
                output = await self.communicator.receive_output(5)
            except TimeoutError:
                return "timeout"
            if output["type"] == "websocket.close":
                return f"closed:{output.get('code')}"
            data = json.loads(output["text"])
            if data["type"] == "error" and error is None:
                error = f"error:{data.get('code')}"
                continue
            if data["type"] == "pong" and self.stale_pongs:
                self.stale_pongs -= 1
                continue
            if data["type"] == "pong" and barrier:
                return error or "ok"
            if data["type"] in direct or data["type"] == "pong":
                self.stale_pongs += barrier
                return error or data["type"]

    async def close(self) -> None:
        await self.communicator.disconnect()


CONSOLE_DIRECT = {"conversation", "ack", "ticket", "presence", "history", "list", "pong"}
CUSTOMER_DIRECT = {"ready", "ack", "contact_saved", "rated", "pong"}


@database_sync_to_async
def _world() -> World:
    return World()


@database_sync_to_async
def _session_cookie(world: World, principal: str) -> str | None:
    if principal not in STAFF:
        return None
    client = Client()
    client.force_login(world.users[principal])
    return f"sessionid={client.cookies['sessionid'].value}"


@database_sync_to_async
def _queued(world: World) -> Conversation:
    conversation, _ = chat_services.conversation_start(site=world.site, customer_name="Q")
    chat_services.message_post_customer(conversation_id=conversation.id, content="A person please")
    chat_services.conversation_hand_off(conversation_id=conversation.id, reason=HandoffReason.CUSTOMER_REQUEST)
    return conversation


@pytest.mark.parametrize("frame_type", sorted(FRAME_SAMPLES))
async def test_console_frame_cells(frame_type, settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    world = await _world()
    extra, target = FRAME_SAMPLES[frame_type]
    wrong = []
    for principal in PRINCIPALS:
        conversation = await _queued(world)
        if target in ("assigned", "resolved"):
            await database_sync_to_async(chat_services.conversation_assign)(
                conversation_id=conversation.id, agent=world.users["agent"], expected_status="queued"
            )
            await database_sync_to_async(Ticket.objects.filter(conversation=conversation).update)(
                assignee=world.users["agent"]
            )
        if target == "resolved":
            await database_sync_to_async(chat_services.conversation_resolve)(conversation_id=conversation.id)
        cookie = await _session_cookie(world, principal)
        socket = Socket("/ws/console/", origin="http://127.0.0.1", cookie=cookie)
        if not await socket.connect():
            got = "refused"
        else:
            await socket.communicator.receive_json_from(5)  # presence
            await socket.communicator.receive_json_from(5)  # queue
            if principal == "removed":
                await database_sync_to_async(world.users["removed"].groups.clear)()
            frame = {"type": frame_type, "conversation": str(conversation.id), **extra}
            got = await socket.answer(frame, direct=CONSOLE_DIRECT)
            await socket.close()
        CELLS_CHECKED["socket"] += 1
        if got != CONSOLE_FRAMES[frame_type][principal]:
            wrong.append(f"{frame_type} as {principal}: expected {CONSOLE_FRAMES[frame_type][principal]}, got {got}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("frame_type", sorted(CUSTOMER_SAMPLES))
async def test_customer_frame_cells(frame_type, settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    world = await _world()
    wrong = []
    for principal in PRINCIPALS:
        conversation, secret_a = await database_sync_to_async(chat_services.conversation_start)(
            site=world.site, customer_name="A"
        )
        cookie = await _session_cookie(world, principal)
        socket = Socket(f"/ws/chat/{conversation.id}/", origin=SITE_ORIGIN, cookie=cookie)
        assert await socket.connect()
        frame = {"type": frame_type, **CUSTOMER_SAMPLES[frame_type]}
        if principal in ("customer_a", "customer_b"):
            secret = secret_a if principal == "customer_a" else world.secret_b
            hello = await socket.answer({"type": "hello", "secret": secret}, direct=CUSTOMER_DIRECT)
            got = hello if frame_type == "hello" or hello != "ready" else None
            if got is None:
                got = await socket.answer(frame, direct=CUSTOMER_DIRECT)
        elif frame_type == "hello":
            got = await socket.answer({"type": "hello"}, direct=CUSTOMER_DIRECT)
        else:
            got = await socket.answer(frame, direct=CUSTOMER_DIRECT)
        await socket.close()
        CELLS_CHECKED["socket"] += 1
        if got != CUSTOMER_FRAMES[frame_type][principal]:
            wrong.append(f"{frame_type} as {principal}: expected {CUSTOMER_FRAMES[frame_type][principal]}, got {got}")
    assert not wrong, "\n".join(wrong)


# The socket cells, for the README's count (the HTTP cells are counted as they run: the routes are generated).
SOCKET_CELLS = len(PRINCIPALS) * (len(CONSOLE_FRAMES) + len(CUSTOMER_FRAMES) + 1)


async def test_other_socket_paths_are_refused_to_everyone(settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    world = await _world()
    for principal in PRINCIPALS:
        cookie = await _session_cookie(world, principal)
        socket = Socket(f"/ws/{uuid.uuid4()}/", origin="http://127.0.0.1", cookie=cookie)
        assert not await socket.connect(), principal
        CELLS_CHECKED["socket"] += 1
