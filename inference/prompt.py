"""The system prompt and the context window: what the model is told, trimmed to fit its token budget."""

import re
from collections.abc import Mapping, Sequence
from datetime import datetime

from inference.engines.base import Engine, EngineError, RequestRejected
from inference.types import ChatTurn

DEFAULT_SYSTEM_PROMPT = """You are the customer-service assistant of {{company_name}}.
Answer in {{language}}, politely and concisely, in about 150 characters.
If you need information to help (an order number, an email address), ask for it.
Never invent facts, prices, dates or policies; if you are not sure, say "I can't confirm that yet".
If you cannot help, or the customer needs a person, answer only [[HANDOFF]] and a human agent will take over.
The current time is {{current_time}}. The customer is in {{user_region}}."""

SUMMARY_PROMPT = """Summarize this customer-service chat for the human agent taking it over, in 2 or 3 short lines:
what the customer wants, what they already said (order numbers, errors), and what the bot already tried.
Write only the summary."""

SUGGEST_PROMPT = """You draft replies for a human support agent of {{company_name}}, who will edit them before sending.
Write one reply to the customer's last message, in {{language}}: polite, concise, specific. Never invent facts,
prices or policies; leave [brackets] where the agent must fill something in. The customer is in {{user_region}}."""

PROMPT_VARIABLES = ("company_name", "current_time", "user_region", "language")
_VARIABLE = re.compile(r"\{\{\s*(\w+)\s*\}\}")


class PromptError(ValueError):
    """A prompt template that cannot be rendered."""


def prompt_variables_check(template: str) -> None:
    """Raise PromptError naming any `{{variable}}` the template uses that is not one of PROMPT_VARIABLES."""
    unknown = sorted({name for name in _VARIABLE.findall(template) if name not in PROMPT_VARIABLES})
    if unknown:
        raise PromptError(f"unknown prompt variables: {', '.join(unknown)}; known: {', '.join(PROMPT_VARIABLES)}")


# A variable's value is one short line: customers supply some (region, language), and a newline there would let them
# write lines of the system prompt ("\nIgnore the rules above").
_VALUE_BREAKS = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u0085]+")
VALUE_MAX_CHARS = 100


def prompt_value_clean(value) -> str:
    """A variable's value as the prompt gets it: control characters and line breaks become spaces, then cut short."""
    return " ".join(_VALUE_BREAKS.sub(" ", str(value)).split())[:VALUE_MAX_CHARS].strip()


def system_prompt_render(template: str, variables: Mapping[str, str], *, now: datetime | None = None) -> str:
    """Fill `{{variable}}` placeholders; `current_time` defaults to now. Every value is one short line.

    A line whose variable has no value is left out: told "The customer is in unknown.", a small model repeats it to
    the customer.
    """
    prompt_variables_check(template)
    values = {"current_time": (now or datetime.now().astimezone()).strftime("%Y-%m-%d %H:%M %Z"), **variables}
    values = {name: prompt_value_clean(value) for name, value in values.items()}
    lines = [
        _VARIABLE.sub(lambda m: values.get(m.group(1), ""), line)
        for line in template.split("\n")
        if all(values.get(name, "") for name in _VARIABLE.findall(line))
    ]
    return "\n".join(lines)


def context_fit(
    engine: Engine, system_prompt: str, history: Sequence[ChatTurn], *, reserve_tokens: int
) -> list[ChatTurn]:
    """The system prompt plus as many of the newest turns as fit the model's window with `reserve_tokens` left.

    The oldest turns go first. The system prompt and the newest turn are never dropped; if even they do not fit,
    that is an EngineError rather than a silently truncated question.
    """
    if not history:
        raise EngineError("nothing to answer: the conversation has no turns")
    budget = engine.max_model_len - reserve_tokens
    system = ChatTurn("system", system_prompt)
    # Most conversations fit whole: one tokenization (an HTTP round trip for a remote engine) before the engine.
    if engine.count_tokens([system, *history]) <= budget:
        lo = len(history)
    else:
        lo = _longest_suffix_that_fits(engine, system, history, budget)
    turns = list(history[-lo:])
    # Chat templates expect the conversation to start with a user turn after the system prompt.
    while len(turns) > 1 and turns[0].role != "user":
        turns.pop(0)
    return [system, *turns]


def _longest_suffix_that_fits(engine: Engine, system: ChatTurn, history: Sequence[ChatTurn], budget: int) -> int:
    """Binary search for the longest suffix of history that fits: O(log n) tokenizations, not O(n)."""
    lo, hi = 1, len(history)
    if engine.count_tokens([system, history[-1]]) > budget:
        raise RequestRejected(f"the newest message alone exceeds the {budget}-token prompt budget")
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if engine.count_tokens([system, *history[-mid:]]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def transcript(turns: Sequence[ChatTurn], *, max_chars: int) -> str:
    """The newest turns as one "Customer: ... / Assistant: ..." text of at most `max_chars` characters."""
    names = {"user": "Customer", "assistant": "Support"}
    lines = [f"{names.get(t.role, t.role)}: {t.content}" for t in turns]
    text = "\n".join(lines)
    return text[-max_chars:]
