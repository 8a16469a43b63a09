"""The agents' console socket: `ws/console/`. Staff with the console permission only.

Client frames: {"type": "claim" | "open", "conversation": id}, {"type": "message" | "note", "conversation", "content",
"client_id"}, {"type": "hand_back" | "resolve", "conversation"}, {"type": "typing", "conversation", "on": bool}.
Server frames: "queue" (the whole list: on connect, then every CONSOLE_QUEUE_REFRESH_S), "queue_item" (one entry
added or changed) and "queue_remove" (it left this agent's list), "conversation" (a conversation with its latest
page of messages and `has_more`), "history" (an older page), "message", "note", "delta", "done", "status", "typing",
"summary", "suggestion", "pong", "error".
Also {"type": "history", "conversation", "before_seq"}: the page of messages before that sequence number;
{"type": "ping"} answered with "pong". Each frame type has a rate limit (chat.frame_limits), and frames over the
customer socket's size limit are refused unread.
Also {"type": "suggest", "conversation"}: the model drafts a reply into the agent's box, to edit before sending;
{"type": "transfer", "conversation", "to": username}: pass the conversation to another agent;
{"type": "ticket", "conversation", "status", "priority", "tags"}: edit the conversation's ticket.

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

    # The frame types the console accepts and their handlers (receive() dispatches from this table; what each
    # needs is helpdesk.selectors.CONSOLE_FRAME_ACCESS).
    FRAME_TYPES = {
        "claim": "receive_claim",
        "open": "receive_open",
        "message": "receive_message",
        "note": "receive_note",
        "hand_back": "receive_hand_back",
        "resolve": "receive_resolve",
        "typing": "receive_typing",
        "suggest": "receive_suggest",
        "transfer": "receive_transfer",
        "presence": "receive_presence",
        "ticket": "receive_ticket",
        "history": "receive_history",
        "ping": "receive_ping",
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
                await self.send_queue()
            except Exception:  # the database is down for now: the next refresh tries again
                logger.exception("could not refresh the queue of %s", self.user)

    async def disconnect(self, code: int) -> None:
        if self.counted:
            WEBSOCKETS.labels(kind="console").dec()
            self.counted = False
        if self.refresher is not None:
            self.refresher.cancel()
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
        await self.send_json({"type": "queue", "conversations": queue})

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
        message = await database_sync_to_async(chat_services.message_post_agent)(
            conversation_id=conversation_id,
            agent=self.user,
            content=frame.get("content"),
            client_id=str(frame.get("client_id", "")),
        )
        await self.send_json(
            {"type": "ack", "conversation": conversation_id, "seq": message.seq, "client_id": message.client_id}
        )

    async def receive_note(self, frame: dict, conversation_id: str) -> None:
        await database_sync_to_async(chat_services.note_post)(
            conversation_id=conversation_id, agent=self.user, content=frame.get("content")
        )

    async def receive_hand_back(self, frame: dict, conversation_id: str) -> None:
        await database_sync_to_async(chat_services.conversation_hand_back)(
            conversation_id=conversation_id, agent=self.user
        )

    async def receive_resolve(self, frame: dict, conversation_id: str) -> None:
        await database_sync_to_async(services.conversation_resolve_by_staff)(
            conversation_id=conversation_id, agent=self.user
        )

    async def receive_typing(self, frame: dict, conversation_id: str) -> None:
        await database_sync_to_async(chat_services.typing_signal)(
            conversation_id=conversation_id, role="agent", on=bool(frame.get("on"))
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
        if entry is not None and selectors.queue_entry_visible_to(entry, self.user.get_username()):
            await self.send_json({"type": "queue_item", "item": entry})
        else:
            await self.send_json({"type": "queue_remove", "conversation": event["conversation"]})

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
        if not await self.still_allowed(max_age_s=CONSOLE_RECHECK_S):
            return
        await self.send_json(
            {"type": "typing", "conversation": event.get("conversation"), "role": event["role"], "on": event["on"]}
        )

    async def staff_summary(self, event: dict) -> None:
        if not await self.still_allowed():
            return
        await self.send_json({"type": "summary", "conversation": event["conversation"], "summary": event["summary"]})

    async def staff_suggestion(self, event: dict) -> None:
        if event["for"] == self.user.get_username() and await self.still_allowed():
            await self.send_json({"type": "suggestion", "conversation": event["conversation"], "text": event["text"]})

    async def chat_contact_request(self, event: dict) -> None:
        """The customer was asked for contact details (no agent was available); nothing for the console."""
