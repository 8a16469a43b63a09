"""The model helping agents: a summary of a handed-off conversation, and a suggested reply to edit."""

import logging
import uuid

from django.conf import settings

from chat import services, session_cache
from chat.models import Conversation
from chat.reply import LANGUAGE_NAMES, MODEL_ROLES
from inference.deferral import HANDOFF_SIGNAL
from inference.engines import EngineError, engine_get
from inference.generation import generation_with_deadlines
from inference.prompt import SUGGEST_PROMPT, SUMMARY_PROMPT, context_fit, system_prompt_render, transcript
from inference.types import ChatTurn, SamplingParams

logger = logging.getLogger(__name__)


def _history(conversation: Conversation) -> list[ChatTurn]:
    turns, _cached = session_cache.turns_before(conversation_id=conversation.id, seq=conversation.last_seq + 1)
    return [ChatTurn(MODEL_ROLES[role], content) for role, content in turns]


def _complete(turns: list[ChatTurn], max_tokens: int) -> str:
    engine = engine_get()
    params = SamplingParams(max_tokens=max_tokens, temperature=0.3, top_p=0.9, frequency_penalty=0.3)
    generation = generation_with_deadlines(engine, turns, params, settings)
    return "".join(generation).replace(HANDOFF_SIGNAL, "").strip()


def handoff_summary_generate(*, conversation_id: uuid.UUID) -> str:
    """Write the 2-3 line summary of a handed-off conversation for the agent; empty if the engine cannot."""
    conversation = Conversation.objects.get(pk=conversation_id)
    history = _history(conversation)
    if not history:
        return ""
    text = transcript(history, max_chars=6000)
    try:
        summary = _complete([ChatTurn("system", SUMMARY_PROMPT), ChatTurn("user", text)], max_tokens=120)
    except EngineError as exc:
        logger.warning("no handoff summary for %s: %s", conversation_id, exc)
        return ""
    services.conversation_summary_set(conversation_id=conversation_id, summary=summary)
    return summary


def reply_suggest(*, conversation_id: uuid.UUID, agent_username: str) -> str:
    """Draft a reply for the agent to edit; it goes to the staff, never to the customer."""
    conversation = Conversation.objects.get(pk=conversation_id)
    language = conversation.language.split("-")[0].lower()
    system = system_prompt_render(
        SUGGEST_PROMPT,
        {
            "company_name": settings.COMPANY_NAME,
            "user_region": conversation.region,
            "language": LANGUAGE_NAMES.get(language, conversation.language),
        },
    )
    try:
        engine = engine_get()
        turns = context_fit(engine, system, _history(conversation) or [ChatTurn("user", "Hello")], reserve_tokens=200)
        draft = _complete(turns, max_tokens=200)
    except EngineError as exc:
        logger.warning("no suggested reply for %s: %s", conversation_id, exc)
        draft = ""
    services.reply_suggestion_send(conversation_id=conversation_id, agent_username=agent_username, text=draft)
    return draft
