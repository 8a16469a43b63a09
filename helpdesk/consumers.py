"""The agents' console socket: `ws/console/`. Staff with the console permission only.

Client frames: {"type": "claim" | "open", "conversation": id}, {"type": "message" | "note", "conversation", "content",
"client_id"}, {"type": "hand_back" | "resolve", "conversation"}, {"type": "typing", "conversation", "on": bool}.
Server frames: "queue" (the whole list: on connect, then every CONSOLE_QUEUE_REFRESH_S), "queue_item" (one entry
added or changed) and "queue_remove" (it left this agent's list), "conversation" (a conversation with its latest
page of messages and `has_more`), "history" (an older page), "message", "note", "delta", "done", "status", "typing",
"summary", "suggestion", "pong", "ack" (a reply or note stored: its seq and client_id, also for a resend), "error".
Also {"type": "history", "conversation", "before_seq"}: the page of messages before that sequence number;
{"type": "ping"} answered with "pong". Each frame type has a rate limit (chat.frame_limits), and frames over the
customer socket's size limit are refused unread.
Also {"type": "suggest", "conversation"}: the model drafts a reply into the agent's box, to edit before sending;
{"type": "transfer", "conversation", "to": username}: pass the conversation to another agent;
{"type": "ticket", "conversation", "status", "priority", "tags"}: edit the conversation's ticket;
{"type": "reopen", "conversation"}: reopen a resolved conversation and take it;
{"type": "snooze", "conversation", "until": ISO 8601 date and time, or null for "until the customer writes"}: put
one's conversation aside (status "snoozed"; it comes back to the agent, or the queue if they are gone);
{"type": "list", "view", "filters", "before"}: a view of the conversations (helpdesk.selectors.console_list: "queue",
"mine", "unassigned", "all", "snoozed", "resolved"; filters site, language, tag, priority; `before` the `next` cursor
of a resolved page), answered by {"type": "list", "view", "filters", "conversations", "next", "append"}; from then on
"queue_item"/"queue_remove" keep that view (not a `before` page's) up to date, and the periodic refresh sends it (a
"queue_remove" of a conversation waiting in the queue, outside the view, says `"waiting": true`, for the alerts);
{"type": "take_over", "conversation"}: take a conversation another agent holds (helpdesk.services).
Collision safety: the console viewing a conversation (the last one opened) announces itself to the others viewing it
("viewer" frames: username, on; those already there answer, so a newcomer learns them; opening another one or
closing the socket says off), and the assignee's typing reaches them as {"type": "typing", "role": "agent",
"username", "on"}. Any agent may open and read any conversation; acting on it needs it to be theirs.

The handshake checks the console permission, and so does every frame and relayed event after it (reloading the user
and their session: a sign-out, deactivation or removal from the agents ends the socket with an "access_revoked"
error and close code 4403). Each frame's rule on the conversation it names (queued or the agent's own; supervisors
any; the ticket permission for `ticket`) is helpdesk.selectors.CONSOLE_FRAME_ACCESS; a refusal is a "forbidden"
error and the socket stays open.
"""

import asyncio
import json
import logging
import uuid

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.core.exceptions import ObjectDoesNotExist, ValidationError

from chat import services as chat_services
from chat.frame_limits import CONSOLE_FRAME_LIMITS, FrameLimitedConsumer, frame_decode
from chat.metrics import WEBSOCKETS
from chat.models import Conversation
from helpdesk import selectors, services

logger = logging.getLogger(__name__)

CLOSE_FORBIDDEN = 4403
# The whole queue is sent again this often: waiting times move on, and an announcement the channel layer lost is
# made good (between refreshes, each change arrives as one entry, with no query per agent).
CONSOLE_QUEUE_REFRESH_S = 60.0
# Frequent relays (deltas, typing, queue entries) re-check the agent's right at most this often; every action frame
# and every relayed message, note or status checks it afresh.
CONSOLE_RECHECK_S = 1.0


def _may_use_console(user) -> bool:
    return user.is_authenticated and user.is_active and user.has_perm("helpdesk.use_console")


class AgentConsumer(FrameLimitedConsumer, AsyncWebsocketConsumer):
    """Relays an agent's actions to services and the queue's and open conversations' events to the agent."""

    refresher: asyncio.Task | None = None
    counted = False  # in helpdesk_websocket_connections{kind="console"}
    revoked = False  # the agent lost the right to the console: the socket is closing
    checked_at = 0.0  # when the agent's right was last confirmed (the event loop's clock)
    view = "queue"  # the list this console shows (a "list" frame changes it), and its filters
    filters: dict = {}
    viewing: str | None = None  # the conversation this console shows, announced to the others viewing it

    # The frame types the console accepts and their handlers (receive() dispatches from this table; what each
    # needs is helpdesk.selectors.CONSOLE_FRAME_ACCESS).
    FRAME_TYPES = {
        "claim": "receive_claim",
        "open": "receive_open",
        "message": "receive_message",
        "note": "receive_note",
        "hand_back": "receive_hand_back",
        "resolve": "receive_resolve",
        "reopen": "receive_reopen",
        "snooze": "receive_snooze",
        "typing": "receive_typing",
        "suggest": "receive_suggest",
        "transfer": "receive_transfer",
        "presence": "receive_presence",
        "ticket": "receive_ticket",
        "history": "receive_history",
        "ping": "receive_ping",
        "list": "receive_list",
        "take_over": "receive_take_over",
    }
    frame_limits = CONSOLE_FRAME_LIMITS
    metric_channel = "console"

    async def connect(self) -> None:
        self.user = self.scope.get("user")
        self.open_groups: set[str] = set()
        if self.user is None or not await database_sync_to_async(_may_use_console)(self.user):
            await self.close(code=CLOSE_FORBIDDEN)  # refused at the handshake: HTTP 403
            return
        session = self.scope.get("session")
        self.session_key = getattr(session, "session_key", None)
        await self.accept()
        self.checked_at = asyncio.get_running_loop().time()
        WEBSOCKETS.labels(kind="console").inc()
        self.counted = True
        self.presence = await database_sync_to_async(services.presence_connect)(agent=self.user)
        await self.channel_layer.group_add(services.AGENTS_GROUP, self.channel_name)
        await self.send_json({"type": "presence", "status": self.presence.status, "capacity": self.presence.capacity})
        await self.send_queue()
        self.refresher = asyncio.get_running_loop().create_task(self._refresh_queue())

    async def _refresh_queue(self) -> None:
        while True:
            await asyncio.sleep(CONSOLE_QUEUE_REFRESH_S)
            try:
                if not await self.still_allowed():
                    return
                if self.view == "queue" and not self.filters:
                    await self.send_queue()
                elif self.view != "resolved":  # a resolved view's pages stay as loaded: nothing in them ticks
                    await self.send_list(view=self.view, filters=self.filters)
            except Exception:  # the database is down for now: the next refresh tries again
                logger.exception("could not refresh the queue of %s", self.user)

    async def disconnect(self, code: int) -> None:
        if self.counted:
            WEBSOCKETS.labels(kind="console").dec()
            self.counted = False
        if self.refresher is not None:
            self.refresher.cancel()
        if self.viewing is not None:
            await self.viewer_announce(self.viewing, on=False)
        if getattr(self, "presence", None) is not None:
            await database_sync_to_async(services.presence_disconnect)(agent=self.user)
        for group in {services.AGENTS_GROUP, *self.open_groups}:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def send_json(self, data: dict) -> None:
        await self.send(text_data=json.dumps(data, ensure_ascii=False))

    async def send_error(self, code: str, message: str) -> None:
        await self.send_json({"type": "error", "code": code, "message": message})

    async def still_allowed(self, *, max_age_s: float = 0.0) -> bool:
        """Whether the agent may still use the console (checked again unless confirmed within `max_age_s`); if not,
        an error frame and the socket closes with 4403."""
        if self.revoked:
            return False
        now = asyncio.get_running_loop().time()
        if max_age_s and now - self.checked_at < max_age_s:
            return True
        try:
            self.user = await database_sync_to_async(selectors.console_user_current)(
                user_id=self.user.pk, session_key=self.session_key
            )
        except selectors.ConsoleAccessLost as exc:
            self.revoked = True
            await self.send_error("access_revoked", f"{exc} Sign in again.")
            await self.close(code=CLOSE_FORBIDDEN)
            return False
        except Exception:  # the database is down for now: nothing is relayed or done until the check passes again
            logger.exception("could not check the console access of %s", self.user)
            await self.send_error("service_unavailable", "That did not work; please try again.")
            return False
        self.checked_at = now
        return True

    async def send_queue(self) -> None:
        queue = await database_sync_to_async(selectors.queue_for_agent)(agent=self.user)
        await self.follow_own(queue)
        await self.send_json({"type": "queue", "conversations": queue})

    async def send_list(self, *, view: str, filters, before: str | None = None) -> None:
        listed = await database_sync_to_async(selectors.console_list)(
            agent=self.user, view=view, filters=filters, before=before
        )
        await self.follow_own(listed["conversations"])
        if not before:  # the filter's choices
            listed["sites"] = await database_sync_to_async(selectors.sites_for_choice)()
        await self.send_json({"type": "list", **listed, "append": bool(before)})

    async def follow_own(self, entries: list[dict]) -> None:
        """Hear the customer's messages in the agent's own conversations, opened or not: the console counts them as
        unread and may alert the agent."""
        username = self.user.get_username()
        for entry in entries:
            if entry["assignee"] == username and entry["status"] in selectors.CONSOLE_VIEWS["mine"][0]:
                group = Conversation(id=uuid.UUID(entry["id"])).group_name
                if group not in self.open_groups:
                    await self.channel_layer.group_add(group, self.channel_name)
                    self.open_groups.add(group)

    async def viewer_announce(self, conversation_id: str, *, on: bool, answer: bool = False) -> None:
        try:
            await database_sync_to_async(services.conversation_viewer_announce)(
                conversation_id=conversation_id,
                username=self.user.get_username(),
                on=on,
                channel=self.channel_name,
                answer=answer,
            )
        except Exception:  # news only: the others learn it with the next announcement
            logger.exception("could not announce the viewer of %s", conversation_id)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frame, problem = frame_decode(text_data)
        if not await self.frame_admitted(frame.get("type") if frame is not None else None):
            return
        if problem is not None:
            return await self.send_error(*problem)
        name = self.FRAME_TYPES.get(frame.get("type")) if isinstance(frame.get("type"), str) else None
        if name is None:
            return await self.send_error("unknown_type", f"Unknown frame type {str(frame.get('type'))[:40]!r}.")
        if not await self.still_allowed():
            return
        conversation_id = str(frame.get("conversation", ""))
        try:
            await database_sync_to_async(selectors.console_frame_check)(
                user=self.user, frame_type=frame["type"], conversation_id=conversation_id
            )
            await getattr(self, name)(frame, conversation_id)
        except chat_services.MessageRejected as exc:
            await self.send_error(exc.code, str(exc))
        except chat_services.ActionRefused as exc:
            await self.send_error(exc.code, str(exc))
        except (ObjectDoesNotExist, ValidationError, ValueError):
            await self.send_error("not_found", "No such conversation.")
        except Exception:  # a backend failure must not kill the agent's socket
            logger.exception("console action %s failed", frame.get("type"))
            await self.send_error("service_unavailable", "That did not work; please try again.")

    async def receive_claim(self, frame: dict, conversation_id: str) -> None:
        won = await database_sync_to_async(services.conversation_claim)(
            conversation_id=conversation_id, agent=self.user
        )
        if not won:
            return await self.send_error("already_claimed", "Another agent took this conversation.")
        await self.receive_open(frame, conversation_id)

    async def receive_open(self, frame: dict, conversation_id: str) -> None:
        data = await database_sync_to_async(selectors.conversation_for_staff)(conversation_id=conversation_id)
        conversation = Conversation(id=uuid.UUID(data["id"]))
        for group in (conversation.group_name, conversation.staff_group_name):
            if group not in self.open_groups:
                await self.channel_layer.group_add(group, self.channel_name)
                self.open_groups.add(group)
        data["canned"] = await database_sync_to_async(selectors.canned_responses_for)(
            conversation_id=conversation_id, agent=self.user
        )
        data["agents"] = await database_sync_to_async(selectors.agents_for_transfer)(exclude=self.user)
        await self.send_json({"type": "conversation", "conversation": data})
        if self.viewing != data["id"]:
            if self.viewing is not None:
                await self.viewer_announce(self.viewing, on=False)
            self.viewing = data["id"]
            await self.viewer_announce(self.viewing, on=True)

    async def receive_list(self, frame: dict, conversation_id: str) -> None:
        """A view of the conversations; without `before` it becomes the view this console keeps up to date."""
        view, before = frame.get("view"), frame.get("before")
        if not isinstance(view, str) or (before is not None and not isinstance(before, str)):
            return await self.send_error("invalid_frame", "A list needs a view, and `before` is a cursor.")
        filters = selectors.console_filters_clean(frame.get("filters"))
        await self.send_list(view=view, filters=filters, before=before)
        if not before:
            self.view, self.filters = view, filters

    async def receive_take_over(self, frame: dict, conversation_id: str) -> None:
        await database_sync_to_async(services.conversation_take_over)(conversation_id=conversation_id, agent=self.user)

    async def receive_history(self, frame: dict, conversation_id: str) -> None:
        """An older page of an open conversation: the messages before `before_seq`."""
        before_seq = frame.get("before_seq")
        if not isinstance(before_seq, int) or isinstance(before_seq, bool) or not 0 < before_seq < 2**31:
            return await self.send_error("invalid_frame", "before_seq must be a positive whole number.")
        messages, has_more = await database_sync_to_async(selectors.staff_messages_page)(
            conversation_id=conversation_id, before_seq=before_seq
        )
        await self.send_json(
            {"type": "history", "conversation": conversation_id, "messages": messages, "has_more": has_more}
        )

    async def receive_ping(self, frame: dict, conversation_id: str) -> None:
        await self.send_json({"type": "pong"})

    async def receive_message(self, frame: dict, conversation_id: str) -> None:
        await self._post_acknowledged(chat_services.message_post_agent, frame, conversation_id)

    async def receive_note(self, frame: dict, conversation_id: str) -> None:
        await self._post_acknowledged(chat_services.note_post, frame, conversation_id)

    async def _post_acknowledged(self, post, frame: dict, conversation_id: str) -> None:
        """A reply or a note, acknowledged with its seq and client_id (also for a resend, stored once): the console
        keeps the text in its box until then."""
        message = await database_sync_to_async(post)(
            conversation_id=conversation_id,
            agent=self.user,
            content=frame.get("content"),
            client_id=str(frame.get("client_id", "")),
        )
        await self.send_json(
            {"type": "ack", "conversation": conversation_id, "seq": message.seq, "client_id": message.client_id}
        )

    async def receive_hand_back(self, frame: dict, conversation_id: str) -> None:
        await database_sync_to_async(chat_services.conversation_hand_back)(
            conversation_id=conversation_id, agent=self.user
        )

    async def receive_resolve(self, frame: dict, conversation_id: str) -> None:
        await database_sync_to_async(services.conversation_resolve_by_staff)(
            conversation_id=conversation_id, agent=self.user
        )

    async def receive_reopen(self, frame: dict, conversation_id: str) -> None:
        await database_sync_to_async(services.conversation_reopen_by_staff)(
            conversation_id=conversation_id, agent=self.user
        )

    async def receive_snooze(self, frame: dict, conversation_id: str) -> None:
        await database_sync_to_async(services.conversation_snooze_by_staff)(
            conversation_id=conversation_id, agent=self.user, until=frame.get("until")
        )

    async def receive_typing(self, frame: dict, conversation_id: str) -> None:
        await database_sync_to_async(services.agent_typing_signal)(
            conversation_id=conversation_id, username=self.user.get_username(), on=bool(frame.get("on"))
        )

    async def receive_ticket(self, frame: dict, conversation_id: str) -> None:
        ticket = await database_sync_to_async(services.ticket_update)(
            conversation_id=conversation_id,
            agent=self.user,
            status=frame.get("status"),
            priority=frame.get("priority"),
            tags=frame.get("tags"),
        )
        await self.send_json(
            {
                "type": "ticket",
                "conversation": conversation_id,
                "ticket": {"id": ticket.pk, "status": ticket.status, "priority": ticket.priority, "tags": ticket.tags},
            }
        )

    async def receive_presence(self, frame: dict, conversation_id: str) -> None:
        presence = await database_sync_to_async(services.presence_set)(agent=self.user, status=frame.get("status"))
        await self.send_json({"type": "presence", "status": presence.status, "capacity": presence.capacity})

    async def receive_transfer(self, frame: dict, conversation_id: str) -> None:
        await database_sync_to_async(services.conversation_transfer)(
            conversation_id=conversation_id, from_agent=self.user, to_username=str(frame.get("to", ""))
        )

    async def receive_suggest(self, frame: dict, conversation_id: str) -> None:
        await database_sync_to_async(chat_services.reply_suggest_request)(
            conversation_id=conversation_id, agent=self.user
        )

    # Events from services: the agents' group and the conversations this agent opened. Each is relayed only while
    # the agent may still use the console.

    async def queue_entry(self, event: dict) -> None:
        """A conversation changed in the queue (services.queue_announce): add, update or remove it here."""
        if not await self.still_allowed(max_age_s=CONSOLE_RECHECK_S):
            return
        entry = event["entry"]
        username = self.user.get_username()
        if entry is not None:
            await self.follow_own([entry])
        if entry is not None and selectors.console_entry_matches(
            entry, view=self.view, filters=self.filters, username=username
        ):
            await self.send_json({"type": "queue_item", "item": entry})
        else:
            frame = {"type": "queue_remove", "conversation": event["conversation"]}
            if entry is not None and entry["status"] == Conversation.Status.QUEUED:
                frame["waiting"] = True  # not in this view, but a customer waits: the console may alert the agent
            await self.send_json(frame)

    async def chat_message(self, event: dict) -> None:
        if not await self.still_allowed():
            return
        await self.send_json(
            {"type": "message", "conversation": event.get("conversation"), "message": event["message"]}
        )

    async def staff_note(self, event: dict) -> None:
        if not await self.still_allowed():
            return
        await self.send_json({"type": "note", "conversation": event.get("conversation"), "message": event["message"]})

    async def chat_delta(self, event: dict) -> None:
        if not await self.still_allowed(max_age_s=CONSOLE_RECHECK_S):
            return
        await self.send_json(
            {"type": "delta", "conversation": event.get("conversation"), "seq": event["seq"], "text": event["text"]}
        )

    async def chat_done(self, event: dict) -> None:
        if not await self.still_allowed():
            return
        await self.send_json({"type": "done", "conversation": event.get("conversation"), "message": event["message"]})

    async def chat_withdrawn(self, event: dict) -> None:
        if not await self.still_allowed():
            return
        await self.send_json({"type": "withdrawn", "conversation": event.get("conversation"), "seq": event["seq"]})

    async def chat_status(self, event: dict) -> None:
        if not await self.still_allowed():
            return
        await self.send_json(
            {
                "type": "status",
                "conversation": event.get("conversation"),
                "status": event["status"],
                "assignee": event.get("assignee"),
            }
        )
        await self.follow_only_if_allowed(event.get("conversation"))

    async def follow_only_if_allowed(self, conversation_id) -> None:
        """A conversation this agent opened changed hands: if they may no longer read it (another agent took it),
        its events stop coming here, as an `open` would now be refused."""
        try:
            await database_sync_to_async(selectors.console_frame_check)(
                user=self.user, frame_type="open", conversation_id=conversation_id
            )
        except chat_services.ActionRefused:
            conversation = Conversation(id=uuid.UUID(str(conversation_id)))
            for group in (conversation.group_name, conversation.staff_group_name):
                self.open_groups.discard(group)
                await self.channel_layer.group_discard(group, self.channel_name)
        except Exception:  # the database is down for now: the next change (or a reconnect) decides
            logger.exception("could not check who may follow conversation %s", conversation_id)

    async def chat_typing(self, event: dict) -> None:
        if event["role"] == "agent":  # the staff hear it with the agent's name (staff_typing)
            return
        if not await self.still_allowed(max_age_s=CONSOLE_RECHECK_S):
            return
        await self.send_json(
            {"type": "typing", "conversation": event.get("conversation"), "role": event["role"], "on": event["on"]}
        )

    async def staff_typing(self, event: dict) -> None:
        """The assignee is typing in a conversation this console follows (services.agent_typing_signal)."""
        if event["username"] == self.user.get_username():  # the agent knows they are typing
            return
        if not await self.still_allowed(max_age_s=CONSOLE_RECHECK_S):
            return
        await self.send_json(
            {
                "type": "typing",
                "conversation": event["conversation"],
                "role": "agent",
                "username": event["username"],
                "on": event["on"],
            }
        )

    async def staff_viewer(self, event: dict) -> None:
        """Another console started or stopped viewing a conversation this one follows: shown here if this console
        views it too, and a newcomer is answered so it learns this console is there."""
        if event["channel"] == self.channel_name or event["conversation"] != self.viewing:
            return
        if not await self.still_allowed(max_age_s=CONSOLE_RECHECK_S):
            return
        await self.send_json(
            {"type": "viewer", "conversation": event["conversation"], "username": event["username"], "on": event["on"]}
        )
        if event["on"] and not event["answer"]:
            await self.viewer_announce(self.viewing, on=True, answer=True)

    async def staff_summary(self, event: dict) -> None:
        if not await self.still_allowed():
            return
        await self.send_json({"type": "summary", "conversation": event["conversation"], "summary": event["summary"]})

    async def staff_suggestion(self, event: dict) -> None:
        if event["for"] == self.user.get_username() and await self.still_allowed():
            await self.send_json({"type": "suggestion", "conversation": event["conversation"], "text": event["text"]})

    async def chat_contact_request(self, event: dict) -> None:
        """The customer was asked for contact details (no agent was available); nothing for the console."""
