"""The bot's reply to a customer message: build the prompt, stream from the engine, publish, persist."""

import logging
import time

from django.conf import settings
from prometheus_client import Counter

from chat import presence, services, session_cache
from chat.models import Message
from inference import selectors as bot_config
from inference.engines import EngineError, engine_get
from inference.fallback import rule_answer
from inference.generation import Generation
from inference.params import sampling_params_build
from inference.prompt import context_fit, system_prompt_render
from inference.text import FullwidthPunctuation
from inference.types import ChatTurn, SamplingParams

logger = logging.getLogger(__name__)

LANGUAGE_NAMES = {"en": "English", "zh": "Chinese (简体中文)"}
MODEL_ROLES = {Message.Role.CUSTOMER: "user", Message.Role.BOT: "assistant", Message.Role.AGENT: "assistant"}

ENGINE_FAILURES = Counter(
    "helpdesk_engine_failures_total", "Replies the engine could not give, by how they were answered", ["answered_by"]
)


def _language(reply: Message) -> str:
    return reply.conversation.language.split("-")[0].lower()


def _prompt_turns(engine, reply: Message, params: SamplingParams) -> list[ChatTurn]:
    conversation = reply.conversation
    system_prompt = system_prompt_render(
        bot_config.system_prompt_active(),
        {
            "company_name": settings.COMPANY_NAME,
            "user_region": conversation.region,
            "language": LANGUAGE_NAMES.get(_language(reply), conversation.language),
        },
    )
    history, _cached = session_cache.turns_before(conversation_id=conversation.id, seq=reply.seq)
    turns = [ChatTurn(MODEL_ROLES[role], content) for role, content in history]
    return context_fit(engine, system_prompt, turns, reserve_tokens=params.max_tokens)


def reply_generate(*, customer_message_id: int) -> Message | None:
    """Answer a customer message as the bot, streaming deltas to the conversation; None if the bot must not.

    When the engine fails or gives no first token within INFERENCE_FIRST_TOKEN_TIMEOUT, a staff-written keyword
    rule answers if one matches; otherwise the reply is stored failed and the customer is told.
    """
    reply = services.reply_start(customer_message_id=customer_message_id)
    if reply is None:
        return None
    parts: list[str] = []
    punctuation = FullwidthPunctuation() if _language(reply) == "zh" else None
    try:
        engine = engine_get()
        params = sampling_params_build(settings)
        generation = Generation(
            engine,
            _prompt_turns(engine, reply, params),
            params,
            timeout_s=settings.INFERENCE_GENERATION_TIMEOUT,
            first_token_timeout_s=settings.INFERENCE_FIRST_TOKEN_TIMEOUT,
        )
        _stream(reply, generation, parts, punctuation)
        if not "".join(parts).strip():
            raise EngineError("the engine returned an empty reply")
    except ReplyAbandoned:
        logger.info("reply %s stopped: the customer left", reply.pk)
        return services.reply_fail(reply_id=reply.pk, content="".join(parts), error="customer left")
    except EngineError as exc:
        return _fallback(reply, customer_message_id, "".join(parts), exc)
    except Exception as exc:
        logger.exception("reply %s to message %s crashed", reply.pk, customer_message_id)
        services.reply_fail(reply_id=reply.pk, content="".join(parts), error=f"internal error: {type(exc).__name__}")
        raise
    stats = generation.stats
    return services.reply_complete(
        reply_id=reply.pk,
        content="".join(parts).strip(),
        stats=services.ReplyStats(
            engine=stats.engine,
            prompt_tokens=stats.prompt_tokens,
            completion_tokens=stats.completion_tokens,
            ttft_ms=stats.ttft_ms,
            tokens_per_s=stats.tokens_per_s,
        ),
    )


def _fallback(reply: Message, customer_message_id: int, streamed: str, error: EngineError) -> Message:
    answer = rule_answer(reply.in_reply_to.content, bot_config.fallback_rules(), language=reply.conversation.language)
    if answer is None:
        ENGINE_FAILURES.labels(answered_by="nobody").inc()
        logger.warning("reply %s to message %s failed, no rule matched: %s", reply.pk, customer_message_id, error)
        return services.reply_fail(reply_id=reply.pk, content=streamed, error=str(error))
    ENGINE_FAILURES.labels(answered_by="rule").inc()
    logger.warning("reply %s to message %s answered by a rule after: %s", reply.pk, customer_message_id, error)
    return services.reply_complete(
        reply_id=reply.pk,
        content=answer,
        stats=services.ReplyStats(
            engine="rules", prompt_tokens=0, completion_tokens=0, ttft_ms=None, tokens_per_s=None
        ),
    )


class ReplyAbandoned(Exception):
    """The customer left: the rest of the reply would be generated for nobody."""


# Seconds between checks that the customer is still there (a cache read, so not per token).
PRESENCE_CHECK_INTERVAL_S = 1.0


def _stream(reply: Message, generation: Generation, parts: list[str], punctuation: FullwidthPunctuation | None) -> None:
    """Publish the generation's text, gathered per CHAT_STREAM_COALESCE_MS; the first piece goes out at once.

    Stops (and so frees the engine) with ReplyAbandoned once the customer has left for good.
    """
    interval = settings.CHAT_STREAM_COALESCE_MS / 1000
    pending: list[str] = []
    last_flush = float("-inf")
    next_presence_check = time.monotonic() + PRESENCE_CHECK_INTERVAL_S
    for text in generation:
        if time.monotonic() >= next_presence_check:
            next_presence_check = time.monotonic() + PRESENCE_CHECK_INTERVAL_S
            if presence.customer_gone(reply.conversation_id):
                raise ReplyAbandoned
        if punctuation is not None:
            text = punctuation.feed(text)
        parts.append(text)
        pending.append(text)
        now = time.monotonic()
        if now - last_flush >= interval:
            services.reply_delta_publish(reply=reply, text="".join(pending))
            pending.clear()
            last_flush = now
    if pending:
        services.reply_delta_publish(reply=reply, text="".join(pending))
