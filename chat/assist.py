"""The model helping agents: a summary of a handed-off conversation, and a suggested reply to edit.

With a model trusted with facts (generative mode), both go through the generation pipeline like every bot output;
they differ in their system prompt, their sampling and in having no rule fallback (a keyword rule is an answer to
customers, not a summary or a draft). With a small model (extractive mode) both are built from the conversation
and the knowledge base instead (chat.grounding): a small model's summaries and drafts invent facts.
"""

import uuid

from chat import grounding, services, session_cache
from chat.generation import GenerationRequest, generate
from chat.models import Conversation
from chat.prompting import history_turns
from inference.engines import EngineError, engine_get
from inference.prompt import SUGGEST_PROMPT, SUMMARY_PROMPT, transcript
from inference.types import ChatTurn

# Focused, short outputs: low temperature.
ASSIST_SAMPLING = {"temperature": 0.3, "top_p": 0.9, "frequency_penalty": 0.3}
SUMMARY_MAX_TOKENS = 120
SUGGESTION_MAX_TOKENS = 200
SUMMARY_TRANSCRIPT_CHARS = 6000


def _history(conversation: Conversation) -> list[ChatTurn]:
    turns, _cached = session_cache.turns_before(conversation_id=conversation.id, seq=conversation.last_seq + 1)
    return history_turns(turns)


def _request(conversation: Conversation, purpose: str, history: list[ChatTurn], template: str, max_tokens: int):
    return GenerationRequest(
        purpose=purpose,
        history=history,
        language=conversation.language,
        region=conversation.region,
        template=template,
        overrides={**ASSIST_SAMPLING, "max_tokens": max_tokens},
        rules_fallback=False,
        grounded=False,
        label=f"{purpose} for {conversation.id}",
    )


def _extractive(conversation: Conversation) -> bool:
    """Whether the bot quotes rather than writes (KNOWLEDGE_ANSWER_MODE, or a small model, or none loadable)."""
    try:
        engine = engine_get()
    except EngineError:
        engine = None
    return grounding.answer_mode(engine) == "extractive"


def _site(conversation: Conversation) -> str:
    return conversation.site.key if conversation.site_id else ""


def handoff_summary_generate(*, conversation_id: uuid.UUID) -> str:
    """Write the 2-3 line summary of a handed-off conversation for the agent; empty if the engine cannot."""
    conversation = Conversation.objects.get(pk=conversation_id)
    history = _history(conversation)
    if not history:
        return ""
    if _extractive(conversation):
        summary = grounding.summary_from_knowledge(
            history=history, language=conversation.language, site=_site(conversation)
        )
        services.conversation_summary_set(conversation_id=conversation_id, summary=summary)
        return summary
    the_chat = [ChatTurn("user", transcript(history, max_chars=SUMMARY_TRANSCRIPT_CHARS))]
    result = generate(_request(conversation, "summary", the_chat, SUMMARY_PROMPT, SUMMARY_MAX_TOKENS))
    if result.engine_failed:
        return ""
    services.conversation_summary_set(conversation_id=conversation_id, summary=result.text)
    return result.text


def reply_suggest(*, conversation_id: uuid.UUID, agent_username: str) -> str:
    """Draft a reply for the agent to edit; it goes to the staff, never to the customer."""
    conversation = Conversation.objects.get(pk=conversation_id)
    history = _history(conversation) or [ChatTurn("user", "Hello")]
    if _extractive(conversation):
        draft = grounding.suggestion_from_knowledge(
            history=history, language=conversation.language, site=_site(conversation)
        )
    else:
        result = generate(_request(conversation, "suggestion", history, SUGGEST_PROMPT, SUGGESTION_MAX_TOKENS))
        draft = "" if result.engine_failed else result.text
    services.reply_suggestion_send(conversation_id=conversation_id, agent_username=agent_username, text=draft)
    return draft
