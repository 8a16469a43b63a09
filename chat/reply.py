"""The bot's reply to a customer message: the generation pipeline with the conversation as history, its deltas
published to the conversation's sockets, and the outcome stored (complete, failed, or handed to a person)."""

import logging
import time

from django.db import DatabaseError, connection, transaction

from chat import availability, presence, services, session_cache, strings
from chat.generation import GenerationRequest, GenerationResult, GenerationStopped, Outcome, Publisher, generate
from chat.grounding import Grounding
from chat.metrics import reply_timings
from chat.models import Conversation, HandoffReason, Message
from chat.prompting import history_turns

logger = logging.getLogger(__name__)


class ReplyPublisher(Publisher):
    """Deltas go to the conversation's group; the reply stops once the customer left or a person took over."""

    def __init__(self, reply: Message):
        super().__init__()
        self.reply = reply
        self.offset = 0  # characters published so far: each piece says where it starts, so a gap shows

    def delta(self, text: str) -> None:
        services.reply_delta_publish(reply=self.reply, text=text, offset=self.offset)
        self.offset += len(text)

    def started(self, **_engine) -> None:
        _connection_release()  # nothing more to read before the engine's text: the stream must not hold it

    def still_wanted(self) -> None:
        if presence.customer_gone(self.reply.conversation_id):
            raise GenerationStopped("customer left")
        try:
            status = Conversation.objects.filter(pk=self.reply.conversation_id).values_list("status", flat=True).first()
        except DatabaseError as exc:  # a busy pool or a blip: the check is tried again a second later
            logger.warning("reply %s: could not check its conversation (%r); streaming on", self.reply.pk, exc)
            return
        finally:
            _connection_release()
        if status != Conversation.Status.BOT:
            raise GenerationStopped("handed off")


def _connection_release() -> None:
    """Give this thread's database connection back to the pool (DATABASE_POOL_MAX_SIZE) while the engine streams,
    so that a worker's streaming replies do not each hold one for their whole life: the next query borrows again."""
    if connection.settings_dict.get("OPTIONS", {}).get("pool") and not connection.in_atomic_block:
        connection.close()


def reply_generation_request(reply: Message, overrides: dict | None = None) -> GenerationRequest:
    """What the pipeline needs for this reply: the conversation's turns before it (session cache, else database)."""
    conversation = reply.conversation
    history, _cached = session_cache.turns_before(conversation_id=conversation.id, seq=reply.seq)
    return GenerationRequest(
        purpose="reply",
        history=history_turns(history),
        language=conversation.language,
        region=conversation.region,
        site=conversation.site.key if conversation.site_id else "",
        overrides=overrides or {},
        label=f"reply {reply.pk}",
    )


def reply_generate(
    *, customer_message_id: int, overrides: dict | None = None, queued_at: float | None = None
) -> Message | None:
    """Answer a customer message as the bot, streaming deltas to the conversation; None if the bot must not.

    `overrides` are the sampling parameters an API request asked for (clamped like every override). `queued_at`
    (wall-clock seconds) is when the job was queued; the reply stores when each stage ended (Message.timings).

    When nothing relevant is in the knowledge base, the bot says so and the conversation goes to the agents
    (no_knowledge). When the engine fails or gives no first token within INFERENCE_FIRST_TOKEN_TIMEOUT, the
    knowledge base's extract or a staff-written keyword rule answers if one matches; otherwise the reply is stored
    failed and the conversation goes to the agents.
    """
    marks = {"picked_up": time.time()} if queued_at is None else {"queued": queued_at, "picked_up": time.time()}
    reply = services.reply_start(customer_message_id=customer_message_id)
    if reply is None:
        return None
    files = _files_without_words(reply.in_reply_to)
    if files:
        return _files_acknowledged(reply, files)
    publisher = ReplyPublisher(reply)
    try:
        result = generate(reply_generation_request(reply, overrides), publisher)
    except Exception as exc:
        logger.exception("reply %s to message %s crashed", reply.pk, customer_message_id)
        content = "".join(publisher.received)
        services.reply_fail(reply_id=reply.pk, content=content, error=f"internal error: {type(exc).__name__}")
        raise
    timings = reply_timings({**marks, **result.marks}, since=reply.in_reply_to.created_at.timestamp())
    try:
        return _store(reply, result, timings, customer_message_id)
    except Exception as exc:
        # Left streaming, the reply would never end on the customer's screen: it fails with what streamed (a retry
        # after an outage starts it over), and the error propagates as before.
        logger.exception("reply %s to message %s could not be stored", reply.pk, customer_message_id)
        services.reply_fail(reply_id=reply.pk, content=result.text, error=f"internal error: {type(exc).__name__}")
        raise


def _files_without_words(customer_message: Message) -> list[str]:
    """The names of the files a customer message is, when it is nothing but files (no caption)."""
    if customer_message.content:
        return []
    return list(customer_message.attachments.order_by("created_at").values_list("name", flat=True))


def _files_acknowledged(reply: Message, names: list[str]) -> Message | None:
    """A file sent without a word: the bot cannot see it, so it says that it was received, that a person can see it
    and how to reach one, in fixed words (a model asked about a file it was not shown would describe one)."""
    language = reply.conversation.language
    text = strings.text("attachment_received", language, names=", ".join(f"“{name}”" for name in names))
    stats = services.ReplyStats(engine="", prompt_tokens=0, completion_tokens=0, ttft_ms=None, tokens_per_s=None)
    return services.reply_complete(reply_id=reply.pk, content=text, stats=stats, grounding=Grounding.ATTACHMENT)


def _store(reply: Message, result: GenerationResult, timings: dict[str, int], customer_message_id: int):
    """The generation's outcome stored: the reply completed or failed, the conversation handed off if it must be."""
    if result.engine_down:
        availability.bot_failed()  # widgets offer leave-a-message while the bot is down and no agent is on
    elif result.outcome == Outcome.ANSWERED:
        availability.bot_recovered()
    if result.outcome == Outcome.DEFERRED:
        services.conversation_hand_off(
            conversation_id=reply.conversation_id, reason=HandoffReason.MODEL_DEFERRED, message_id=customer_message_id
        )
        return None
    if result.outcome == Outcome.STOPPED:
        return services.reply_fail(reply_id=reply.pk, content=result.text, error=result.error, timings=timings)
    if result.outcome == Outcome.NO_KNOWLEDGE:
        with transaction.atomic():  # the customer reads why, then that a person is coming
            said = _complete(reply, result, timings)
            services.conversation_hand_off(
                conversation_id=reply.conversation_id, reason=HandoffReason.NO_KNOWLEDGE, message_id=customer_message_id
            )
        return said
    if result.outcome == Outcome.FAILED:
        with transaction.atomic():  # one commit: whoever hears of the failure already finds the handoff
            failed = services.reply_fail(reply_id=reply.pk, content=result.text, error=result.error, timings=timings)
            services.conversation_hand_off(
                conversation_id=reply.conversation_id,
                reason=HandoffReason.ENGINE_FAILURE,
                message_id=customer_message_id,
            )
        return failed
    return _complete(reply, result, timings)


def _complete(reply: Message, result: GenerationResult, timings: dict[str, int]) -> Message | None:
    return services.reply_complete(
        reply_id=reply.pk,
        content=result.text,
        stats=services.ReplyStats.from_generation(result.stats),
        grounding=result.grounding,
        sources=[source.as_dict() for source in result.sources],
        fact_guard_tripped=result.guard_tripped,
        timings=timings,
    )
