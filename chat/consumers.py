"""The customer's websocket: `ws/chat/<conversation_id>/`.

Frames are JSON objects with a `type`. The client speaks first:
  {"type": "hello", "secret": "...", "last_seq": 0}       prove ownership; replay messages after last_seq
  {"type": "message", "content": "...", "client_id": "..."} a customer message (client_id makes resends safe)
  {"type": "ping"}
  {"type": "typing", "on": true}                          the customer is typing (or stopped)
  {"type": "rate", "score": 1-5, "comment": "..."}       rate a resolved conversation, once
  {"type": "contact", "name": "...", "email": "..."}      leave contact details when no one is available
  {"type": "resolve"}                                     the customer ends the chat
  {"type": "transcript"}                                  email me the transcript (answered transcript_sent)
The handshake is refused (HTTP 403) when the page's Origin is allowed by no site (nor is the helpdesk's own); the
hello is refused like a wrong secret when it is not one of the conversation's own site's, so whether a conversation
id exists is never told apart from a wrong secret. Each frame type has a rate limit (chat.frame_limits).
The server answers with `ready`, `ack`, `message`, `delta`, `done`, `pong` and `error` frames
({"type": "error", "code": "...", "message": "..."}). A `delta` says where its text starts in the reply (`offset`);
what the channel layer lost on the way is made good from the database on the same socket (chat.delivery).
A bad frame gets an error frame and the socket stays open; failing to prove ownership gets an error frame, then a
close with one of the codes below.
"""

import asyncio
import json
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from chat import outages, presence, selectors, services
from chat.delivery import STREAM_QUIET_S, Delivery
from chat.email.outbound import transcript_request
from chat.frame_limits import CUSTOMER_FRAME_LIMITS, FrameLimitedConsumer, frame_decode
from chat.metrics import RATE_LIMITED, WEBSOCKETS, first_delivery_observe
from chat.models import Conversation
from chat.origins import origin_allowed
from chat.outages import SOCKET_MESSAGE, backend_unavailable
from chat.serializers import conversation_to_dict, message_to_dict
from chat.socket_guards import scope_header, scope_own_origin

logger = logging.getLogger(__name__)

CLOSE_HELLO_REQUIRED = 4401  # no hello (with a secret) first, or not within CHAT_HELLO_TIMEOUT
CLOSE_ACCESS_DENIED = 4403  # wrong secret or unknown conversation
CLOSE_TRY_AGAIN_LATER = outages.CLOSE_TRY_AGAIN_LATER  # a backend is down; the client reconnects with backoff


class CustomerConsumer(FrameLimitedConsumer, AsyncWebsocketConsumer):
    """Relays one customer's frames to chat services and the conversation's events back to the customer."""

    frame_limits = CUSTOMER_FRAME_LIMITS
    metric_channel = "socket"
    conversation = None
    hello_timer: asyncio.Task | None = None
    watchdog: asyncio.Task | None = None  # checks quiet streaming replies for a lost end (chat.delivery)
    delivery: Delivery | None = None  # what this socket was sent, to notice what the channel layer lost
    counted = False  # in helpdesk_websocket_connections{kind="customer"}

    async def connect(self) -> None:
        try:
            allowed = await database_sync_to_async(self._origin_allowed)()
        except Exception:
            logger.exception("could not check the origin of a chat socket")
            await self._accept()
            return await self._refuse(
                CLOSE_TRY_AGAIN_LATER, "service_unavailable", "The chat service is unavailable; reconnecting."
            )
        if not allowed:
            return await self.close()  # before accept: the handshake gets HTTP 403
        await self._accept()
        self.hello_timer = asyncio.get_running_loop().create_task(self._close_without_hello())

    async def _accept(self) -> None:
        await self.accept()
        WEBSOCKETS.labels(kind="customer").inc()
        self.counted = True

    def _origin_allowed(self, allowed: set[str] | None = None) -> bool:
        """The page's Origin against `allowed` (a conversation's site's origins) or, at the handshake, against every
        active site's: the same answer for any conversation id, known or not, so the handshake tells nothing about
        which exist. The helpdesk's own pages are allowed under their exact origin."""
        origin = scope_header(self.scope, b"origin")
        if origin is None:  # not a browser
            return True
        if allowed is None:
            allowed = selectors.site_origins_all()
        return origin_allowed(origin=origin, allowed=allowed, own_origin=scope_own_origin(self.scope))

    def _conversation_for_hello(self, secret: str) -> Conversation:
        """The conversation if the secret is its own and the page is one of its site's; ConversationAccessDenied
        otherwise, the same refusal for a wrong origin as for a wrong secret or an unknown id."""
        conversation = selectors.conversation_get_for_customer(
            conversation_id=self.scope["url_route"]["kwargs"]["conversation_id"], secret=secret
        )
        if not self._origin_allowed(conversation.site.origins if conversation.site_id else set()):
            raise selectors.ConversationAccessDenied
        return conversation

    async def disconnect(self, code: int) -> None:
        if self.counted:
            WEBSOCKETS.labels(kind="customer").dec()
            self.counted = False
        if self.hello_timer is not None:
            self.hello_timer.cancel()
        if self.watchdog is not None:
            self.watchdog.cancel()
        if self.conversation is not None:
            await self.channel_layer.group_discard(self.conversation.group_name, self.channel_name)
            # Off the shared database thread: during an outage its write waits out the connect timeout, which must
            # not hold up every other socket's queries behind it.
            await database_sync_to_async(presence.customer_disconnected, thread_sensitive=False)(self.conversation.id)

    async def _close_without_hello(self) -> None:
        await asyncio.sleep(settings.CHAT_HELLO_TIMEOUT)
        if self.conversation is None:
            await self._refuse(CLOSE_HELLO_REQUIRED, "hello_timeout", "Send a hello frame with the secret first.")

    async def _refuse(self, close_code: int, code: str, message: str) -> None:
        await self.send_error(code, message)
        await self.close(code=close_code)

    async def send_json(self, data: dict) -> None:
        await self.send(text_data=json.dumps(data, ensure_ascii=False))

    async def send_error(self, code: str, message: str) -> None:
        await self.send_json({"type": "error", "code": code, "message": message})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frame, problem = frame_decode(text_data)
        kind = frame.get("type") if frame is not None else None
        # A refused message names its client_id, so the widget keeps it and resends it after retry_after.
        client_id = frame.get("client_id") if kind == "message" else None
        extra = {"client_id": client_id} if isinstance(client_id, str) else {}
        if not await self.frame_admitted(kind, **extra):
            return None
        if problem is not None:
            return await self.send_error(*problem)
        if kind == "hello":
            return await self.receive_hello(frame)
        if kind == "ping":
            if self.conversation is not None:
                await database_sync_to_async(presence.customer_still_connected, thread_sensitive=False)(
                    self.conversation.id
                )
            return await self.send_json({"type": "pong"})
        if kind in ("message", "rate", "typing", "contact", "resolve", "transcript"):
            if self.conversation is None:
                return await self._refuse(CLOSE_HELLO_REQUIRED, "hello_required", "Send a hello frame first.")
            if kind == "message":
                return await self.receive_message(frame)
            try:
                return await self.receive_action(kind, frame)
            except Exception as exc:
                logger.exception("%s failed in conversation %s", kind, self.conversation.id)
                if backend_unavailable(exc):  # nothing works until it is back: reconnect with backoff
                    return await self._refuse(CLOSE_TRY_AGAIN_LATER, "service_unavailable", SOCKET_MESSAGE)
                return await self.send_error("service_unavailable", "That did not go through; please try again.")
        await self.send_error("unknown_type", f"Unknown frame type {str(kind)[:40]!r}.")

    async def receive_hello(self, frame: dict) -> None:
        if self.conversation is not None:
            return await self.send_error("already_authenticated", "This socket already said hello.")
        secret = frame.get("secret")
        if not isinstance(secret, str) or not secret:
            return await self._refuse(CLOSE_HELLO_REQUIRED, "secret_required", "The hello frame needs the secret.")
        try:
            conversation = await database_sync_to_async(self._conversation_for_hello)(secret)
        except selectors.ConversationAccessDenied:
            return await self._refuse(
                CLOSE_ACCESS_DENIED, "access_denied", "Unknown conversation or wrong conversation secret."
            )
        except Exception:
            logger.exception("could not look up a conversation")
            return await self._refuse(
                CLOSE_TRY_AGAIN_LATER, "service_unavailable", "The chat service is unavailable; reconnecting."
            )
        last_seq = frame.get("last_seq", 0)
        if not isinstance(last_seq, int) or isinstance(last_seq, bool) or not 0 <= last_seq < 2**31:
            last_seq = 0
        self.hello_timer.cancel()
        try:
            # Join the group before reading the backlog, so nothing falls between the two; the client drops
            # anything it sees twice by sequence number.
            self.delivery = Delivery(sent_seq=last_seq)
            await self.channel_layer.group_add(conversation.group_name, self.channel_name)
            await database_sync_to_async(presence.customer_connected)(conversation.id)
            self.conversation = conversation
            missed = await database_sync_to_async(selectors.messages_visible_to_customer)(
                conversation=conversation, after_seq=last_seq
            )
            summary = await database_sync_to_async(conversation_to_dict)(conversation)
        except Exception:
            logger.exception("hello failed for conversation %s", conversation.id)
            return await self._refuse(
                CLOSE_TRY_AGAIN_LATER, "service_unavailable", "The chat service is unavailable; reconnecting."
            )
        # Everything up to the conversation's last seq is in the backlog, or is a private note.
        self.delivery.sent_seq = max(last_seq, summary["last_seq"])
        await self.send_json({"type": "ready", "conversation": summary})
        for message in missed:
            await self._send_message(message_to_dict(message), from_database=True)

    async def receive_message(self, frame: dict) -> None:
        client_id = frame.get("client_id", "")
        try:
            message, _created = await database_sync_to_async(services.message_post_customer)(
                conversation_id=self.conversation.id, content=frame.get("content"), client_id=client_id
            )
        except services.MessageRejected as exc:
            if exc.code == "rate_limited":
                RATE_LIMITED.labels(channel="socket", limit="messages").inc()
            # Names the message, so the client knows which one to resend later (rate limit) or give back.
            frame = {"type": "error", "code": exc.code, "message": str(exc), "client_id": client_id}
            if exc.retry_after is not None:
                frame["retry_after"] = exc.retry_after
            return await self.send_json(frame)
        except Exception as exc:
            # Not acknowledged: the client keeps the message and resends it (same client_id, stored once).
            logger.exception("could not store a message in conversation %s", self.conversation.id)
            if backend_unavailable(exc):  # resent after the reconnect, once the hello goes through again
                return await self._refuse(CLOSE_TRY_AGAIN_LATER, "service_unavailable", SOCKET_MESSAGE)
            return await self.send_error(
                "service_unavailable", "Your message could not be confirmed; it will be sent again shortly."
            )
        await self.send_json({"type": "ack", "client_id": message.client_id, "seq": message.seq})

    async def receive_action(self, kind: str, frame: dict) -> None:
        if kind == "rate":
            return await self.receive_rate(frame)
        if kind == "contact":
            return await self.receive_contact(frame)
        if kind == "transcript":
            return await self.receive_transcript()
        if kind == "resolve":
            return await database_sync_to_async(services.conversation_resolve)(
                conversation_id=self.conversation.id, by_customer=True
            )
        return await database_sync_to_async(services.typing_signal)(
            conversation_id=self.conversation.id, role="customer", on=bool(frame.get("on"))
        )

    async def receive_contact(self, frame: dict) -> None:
        try:
            await database_sync_to_async(services.conversation_contact_set)(
                conversation_id=self.conversation.id, name=frame.get("name", ""), email=frame.get("email")
            )
        except services.ActionRefused as exc:
            return await self.send_error(exc.code, str(exc))
        await self.send_json({"type": "contact_saved"})

    async def receive_transcript(self) -> None:
        try:
            await database_sync_to_async(transcript_request)(conversation_id=self.conversation.id)
        except services.ActionRefused as exc:
            return await self.send_error(exc.code, str(exc))
        await self.send_json({"type": "transcript_sent"})

    async def receive_rate(self, frame: dict) -> None:
        try:
            await database_sync_to_async(services.rating_create)(
                conversation_id=self.conversation.id, score=frame.get("score"), comment=frame.get("comment", "")
            )
        except services.ActionRefused as exc:
            return await self.send_error(exc.code, str(exc))
        await self.send_json({"type": "rated"})

    # Sending what the conversation's events carry, noticing what the channel layer lost (chat.delivery).

    async def _send_message(self, message: dict, *, from_database: bool = False, kind: str = "message") -> None:
        self.delivery.message_sent(message, asyncio.get_running_loop().time(), from_database=from_database)
        await self.send_json({"type": kind, "message": message})
        if self.delivery.streams and (self.watchdog is None or self.watchdog.done()):
            self.watchdog = asyncio.get_running_loop().create_task(self._watch_streams())

    async def _catch_up(self) -> None:
        """Send again, from the database, every message after the last one this socket was sent."""
        missed = await database_sync_to_async(selectors.messages_visible_to_customer)(
            conversation=self.conversation, after_seq=self.delivery.sent_seq
        )
        for message in missed:
            await self._send_message(message_to_dict(message), from_database=True)

    async def _watch_streams(self) -> None:
        """While replies stream to this socket: one whose news stopped is read from the database, and its lost end
        (done or withdrawn) sent from there."""
        loop = asyncio.get_running_loop()
        while self.delivery.streams:
            await asyncio.sleep(STREAM_QUIET_S / 2)
            for seq in self.delivery.quiet(loop.time()):
                heard_at = self.delivery.heard_at(seq)
                try:
                    message = await database_sync_to_async(selectors.message_visible_to_customer)(
                        conversation_id=self.conversation.id, seq=seq
                    )
                except Exception:
                    logger.exception("could not check reply %s of conversation %s", seq, self.conversation.id)
                    continue
                if self.delivery.heard_at(seq) != heard_at:
                    continue  # news came while the row was read (its end, even): it speaks for itself
                if message is None:
                    self.delivery.done_recovered(seq)
                    await self.send_json({"type": "withdrawn", "seq": seq})
                elif message.state == message.State.STREAMING:
                    self.delivery.still_streaming(seq, loop.time())
                else:
                    self.delivery.done_recovered(seq)
                    await self._send_message(message_to_dict(message), from_database=True, kind="done")

    # Channel-layer events sent by chat services to the conversation's group.

    async def chat_message(self, event: dict) -> None:
        if self.delivery.message_skips(event["message"]["seq"]):
            try:
                return await self._catch_up()  # this message is among those read again
            except Exception:
                logger.exception("could not catch up conversation %s", self.conversation.id)
        await self._send_message(event["message"])

    async def chat_delta(self, event: dict) -> None:
        seq, offset, text = event["seq"], event.get("offset", 0), event["text"]
        missed = self.delivery.delta_missed(seq, offset, text, asyncio.get_running_loop().time())
        if missed == "start":
            try:
                await self._catch_up()  # the reply as stored so far (empty while it streams), and anything before
            except Exception:
                logger.exception("could not catch up conversation %s", self.conversation.id)
        if offset == 0:
            first_delivery_observe(event.get("published_at"))
        await self.send_json({"type": "delta", "seq": seq, "text": text, "offset": offset})

    async def chat_done(self, event: dict) -> None:
        await self._send_message(event["message"], kind="done")

    async def chat_contact_request(self, event: dict) -> None:
        await self.send_json({"type": "contact_request"})

    async def chat_withdrawn(self, event: dict) -> None:
        self.delivery.ended(event["seq"])
        await self.send_json({"type": "withdrawn", "seq": event["seq"]})

    async def chat_status(self, event: dict) -> None:
        frame = {"type": "status", "status": event["status"]}
        if event["status"] == "resolved":  # whether this resolution asks for a rating (once per conversation)
            frame["rate"] = bool(event.get("rate"))
        await self.send_json(frame)

    async def chat_typing(self, event: dict) -> None:
        if event["role"] != "customer":  # not an echo of the customer's own typing
            await self.send_json({"type": "typing", "role": event["role"], "on": event["on"]})


class UnknownRouteConsumer(AsyncWebsocketConsumer):
    """Any other `ws/` path: the handshake is refused (HTTP 403) instead of the router raising a server error."""

    async def connect(self) -> None:
        await self.close()
