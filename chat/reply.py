"""The bot's reply to a customer message: build the prompt, stream from the engine, publish, persist."""

import logging

from django.conf import settings
from django.db import transaction
from prometheus_client import Counter

from chat import availability, presence, services, session_cache
from chat.models import Conversation, HandoffReason, Message
from chat.streaming import stream_publish
from inference import selectors as bot_config
from inference.deferral import DeferralFilter
from inference.engines import EngineError, engine_get
from inference.fallback import rule_answer
from inference.generation import generation_with_deadlines
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


def bot_system_prompt(*, language: str, region: str, template: str | None = None) -> str:
    """The bot's system prompt for a customer: the active version (or `template`, a draft) with its variables."""
    base_language = language.split("-")[0].lower()
    return system_prompt_render(
        bot_config.system_prompt_active() if template is None else template,
        {
            "company_name": settings.COMPANY_NAME,
            "user_region": region,
            "language": LANGUAGE_NAMES.get(base_language, language),
        },
    )


def _prompt_turns(engine, reply: Message, params: SamplingParams) -> list[ChatTurn]:
    conversation = reply.conversation
    system_prompt = bot_system_prompt(language=conversation.language, region=conversation.region)
    history, _cached = session_cache.turns_before(conversation_id=conversation.id, seq=reply.seq)
    turns = [ChatTurn(MODEL_ROLES[role], content) for role, content in history]
    return context_fit(engine, system_prompt, turns, reserve_tokens=params.max_tokens)


def reply_generate(*, customer_message_id: int, overrides: dict | None = None) -> Message | None:
    """Answer a customer message as the bot, streaming deltas to the conversation; None if the bot must not.

    `overrides` are the sampling parameters an API request asked for (clamped like every override).

    When the engine fails or gives no first token within INFERENCE_FIRST_TOKEN_TIMEOUT, a staff-written keyword
    rule answers if one matches; otherwise the reply is stored failed and the customer is told.
    """
    reply = services.reply_start(customer_message_id=customer_message_id)
    if reply is None:
        return None
    parts: list[str] = []  # the text so far, kept if the stream breaks off
    deferral = DeferralFilter()
    try:
        engine = engine_get()
        params = sampling_params_build(settings, overrides)
        generation = generation_with_deadlines(engine, _prompt_turns(engine, reply, params), params, settings)
        text = stream_publish(
            generation,
            publish=lambda text: services.reply_delta_publish(reply=reply, text=text),
            deferral=deferral,
            punctuation=FullwidthPunctuation() if _language(reply) == "zh" else None,
            still_wanted=lambda: _still_wanted(reply),
            received=parts,
        )
        if deferral.deferred:
            logger.info("reply %s: the model deferred to a person", reply.pk)
            services.conversation_hand_off(
                conversation_id=reply.conversation_id,
                reason=HandoffReason.MODEL_DEFERRED,
                message_id=customer_message_id,
            )
            return None
        if not text.strip():
            raise EngineError("the engine returned an empty reply")
    except ReplyStopped as stop:
        logger.info("reply %s stopped: %s", reply.pk, stop)
        return services.reply_fail(reply_id=reply.pk, content="".join(parts), error=str(stop))
    except EngineError as exc:
        availability.bot_failed()  # widgets offer leave-a-message while the bot is down and no agent is on
        return _fallback(reply, customer_message_id, "".join(parts), exc)
    except Exception as exc:
        logger.exception("reply %s to message %s crashed", reply.pk, customer_message_id)
        services.reply_fail(reply_id=reply.pk, content="".join(parts), error=f"internal error: {type(exc).__name__}")
        raise
    availability.bot_recovered()
    stats = generation.stats
    return services.reply_complete(
        reply_id=reply.pk,
        content=text.strip(),
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
        with transaction.atomic():  # one commit: whoever hears of the failure already finds the handoff
            failed = services.reply_fail(reply_id=reply.pk, content=streamed, error=str(error))
            services.conversation_hand_off(
                conversation_id=reply.conversation_id,
                reason=HandoffReason.ENGINE_FAILURE,
                message_id=customer_message_id,
            )
        return failed
    ENGINE_FAILURES.labels(answered_by="rule").inc()
    logger.warning("reply %s to message %s answered by a rule after: %s", reply.pk, customer_message_id, error)
    return services.reply_complete(
        reply_id=reply.pk,
        content=answer,
        stats=services.ReplyStats(
            engine="rules", prompt_tokens=0, completion_tokens=0, ttft_ms=None, tokens_per_s=None
        ),
    )


class ReplyStopped(Exception):
    """The rest of the reply is not wanted: the customer left, or the conversation went to a person."""


def _still_wanted(reply: Message) -> None:
    if presence.customer_gone(reply.conversation_id):
        raise ReplyStopped("customer left")
    status = Conversation.objects.filter(pk=reply.conversation_id).values_list("status", flat=True).first()
    if status != Conversation.Status.BOT:
        raise ReplyStopped("handed off")
