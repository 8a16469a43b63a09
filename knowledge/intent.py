"""Handoff intent by meaning: whether a customer message asks for a person, judged by its nearest labelled examples.

The rules of inference.deferral.handoff_intent run first, at post time, and are exact on the wording they were
written for but miss new wording ("let me speak to whoever is in charge", "我不要跟机器说话"). This check runs in
the reply worker, where the sentence encoder (knowledge.semantic) is already loaded for retrieval:

    score = mean of the 3 best cosines to handoff examples - mean of the 3 best cosines to other examples

and the message asks for a person when the score reaches THRESHOLD. The examples are knowledge/handoff_examples.json,
the "development" split of bench/handoff_intent_phrases.json; THRESHOLD is the lowest value (in steps of 0.01) at
which leave-one-out on that split adds at most 2 false handoffs to the rules. bench/handoff_intent.py measures the
rules alone and rules + this check on the held-out phrases, which none of this saw.
"""

import json
import threading
from pathlib import Path

import numpy as np

from knowledge import semantic

EXAMPLES = Path(__file__).resolve().parent / "handoff_examples.json"
NEIGHBOURS = 3
THRESHOLD = 0.09

_lock = threading.Lock()
_examples: tuple[list[str], np.ndarray, np.ndarray] | None = None


def handoff_score(text: str, *, leave_out: bool = False) -> float:
    """How much nearer the message is to the handoff examples than to the others (cosine, about -0.4 to 0.5).

    `leave_out` drops examples identical to the message, so the bench scores a development phrase as if unseen.
    """
    texts, vectors, labels = _examples_embedded()
    similarities = vectors @ semantic.embed([text])[0]
    keep = np.array([t != text for t in texts]) if leave_out else np.ones(len(texts), dtype=bool)
    return _nearest(similarities[keep & labels]) - _nearest(similarities[keep & ~labels])


def asks_for_person(text: str) -> bool:
    """Whether a customer message asks for a person, by meaning (`handoff_score` reaches THRESHOLD)."""
    return bool(text.strip()) and handoff_score(text) >= THRESHOLD


def _nearest(similarities: np.ndarray) -> float:
    return float(np.sort(similarities)[-NEIGHBOURS:].mean())


def _examples_embedded() -> tuple[list[str], np.ndarray, np.ndarray]:
    """The examples' texts, vectors and labels (True: asks for a person), embedded once per process."""
    global _examples
    with _lock:
        if _examples is None:
            data = json.loads(EXAMPLES.read_text())
            texts = [*data["handoff"], *data["not_handoff"]]
            labels = np.array([True] * len(data["handoff"]) + [False] * len(data["not_handoff"]))
            _examples = (texts, semantic.embed(texts), labels)
        return _examples
