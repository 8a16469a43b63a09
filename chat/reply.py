"""The bot's reply to a customer message: build the prompt, stream from the engine, publish, persist."""

import logging
import time

from django.conf import settings

from chat import selectors, services
from chat.models import Message
from inference.engines import EngineError, engine_get
from inference.generation import Generation
from inference.prompt import DEFAULT_SYSTEM_PROMPT, context_fit, system_prompt_render
from inference.types import ChatTurn, SamplingParams

logger = logging.getLogger(__name__)

# How many earlier messages are read from the database before trimming to the token budget.
HISTORY_LIMIT = 40
LANGUAGE_NAMES = {"en": "English", "zh": "Chinese (简体中文)"}
MODEL_ROLES = {Message.Role.CUSTOMER: "user", Message.Role.BOT: "assistant", Message.Role.AGENT: "assistant"}


def sampling_params_default() -> SamplingParams:
    return SamplingParams(
        max_tokens=settings.INFERENCE_MAX_TOKENS,
        temperature=settings.INFERENCE_TEMPERATURE,
        top_p=settings.INFERENCE_TOP_P,
        frequency_penalty=settings.INFERENCE_FREQUENCY_PENALTY,
    )


def _prompt_turns(engine, reply: Message, params: SamplingParams) -> list[ChatTurn]:
    conversation = reply.conversation
    language = conversation.language.split("-")[0].lower()
    system_prompt = system_prompt_render(
        DEFAULT_SYSTEM_PROMPT,
        {
            "company_name": settings.COMPANY_NAME,
            "user_region": conversation.region,
            "language": LANGUAGE_NAMES.get(language, conversation.language),
        },
    )
    history = selectors.conversation_history(
        conversation_id=conversation.id, before_seq=reply.seq - 1, limit=HISTORY_LIMIT
    )
    turns = [ChatTurn(MODEL_ROLES[m.role], m.content) for m in history]
    return context_fit(engine, system_prompt, turns, reserve_tokens=params.max_tokens)


def reply_generate(*, customer_message_id: int) -> Message | None:
    """Answer a customer message as the bot, streaming deltas to the conversation; None if the bot must not."""
    reply = services.reply_start(customer_message_id=customer_message_id)
    if reply is None:
        return None
    parts: list[str] = []
    try:
        engine = engine_get()
        params = sampling_params_default()
        generation = Generation(
            engine, _prompt_turns(engine, reply, params), params, timeout_s=settings.INFERENCE_GENERATION_TIMEOUT
        )
        _stream(reply, generation, parts)
        if not "".join(parts).strip():
            raise EngineError("the engine returned an empty reply")
    except EngineError as exc:
        logger.warning("reply %s to message %s failed: %s", reply.pk, customer_message_id, exc)
        return services.reply_fail(reply_id=reply.pk, content="".join(parts), error=str(exc))
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


def _stream(reply: Message, generation: Generation, parts: list[str]) -> None:
    """Publish the generation's text, gathered per CHAT_STREAM_COALESCE_MS; the first piece goes out at once."""
    interval = settings.CHAT_STREAM_COALESCE_MS / 1000
    pending: list[str] = []
    last_flush = float("-inf")
    for text in generation:
        parts.append(text)
        pending.append(text)
        now = time.monotonic()
        if now - last_flush >= interval:
            services.reply_delta_publish(reply=reply, text="".join(pending))
            pending.clear()
            last_flush = now
    if pending:
        services.reply_delta_publish(reply=reply, text="".join(pending))
