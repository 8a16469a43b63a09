"""Handoff intent: how well inference.deferral.handoff_intent tells customers asking for a person from the rest.

Reads bench/handoff_intent_phrases.json, customer messages in English and Chinese labelled `handoff` (asks for a
person: a short request, a paraphrase, frustration with the bot, a complaint) or not (product questions that
mention humans, agents, managers, 客服 or 人工; small talk; thanks). Prints, per language and overall, the count,
precision (of the messages handed off, the share that asked for a person) and recall (of the messages that asked,
the share handed off), then every misclassified phrase. Two decisions are measured: "rules" (the patterns of
inference.deferral, checked when a message is posted) and "rules+semantic" (also knowledge.intent's nearest-neighbour
check on the sentence encoder), an experiment the product does not use: it catches much more new wording, but it
also hands off questions the help center answers ("我要开发票"), which the bench counts on the knowledge benchmark's
questions (bench/eval_kb_questions.json, none of which asks for a person). No database.

Each phrase has a `split`: "development" phrases were seen while the matcher was written, "held_out" ones were
written afterwards and the matcher was not changed after seeing how it did on them, so the held-out figures are the
honest estimate on new wording. The figures are printed per split, and per split and language, too. The semantic
check's examples are the development phrases; each development phrase is scored with itself left out.

    .venv/bin/python bench/handoff_intent.py
    .venv/bin/python bench/handoff_intent.py --min-precision 0.95 --min-recall 0.9   # exits 1 below either
    .venv/bin/python bench/handoff_intent.py --decision rules                         # the patterns only
"""

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.eval_kb import command_line  # noqa: E402
from inference.deferral import handoff_intent  # noqa: E402
from knowledge import intent  # noqa: E402

PHRASES = Path(__file__).resolve().parent / "handoff_intent_phrases.json"
# Customer questions the demo help center answers: none asks for a person, so each one handed off is a false alarm.
HELP_CENTER_QUESTIONS = Path(__file__).resolve().parent / "eval_kb_questions.json"
SEMANTIC = "semantic"  # what `got` says when only the semantic check handed off


def rules(text: str) -> str | None:
    return handoff_intent(text)


def rules_semantic(text: str) -> str | None:
    """The rules, else the semantic check (each example left out when scoring itself)."""
    if handoff_intent(text):
        return handoff_intent(text)
    return SEMANTIC if intent.handoff_score(text, leave_out=True) >= intent.THRESHOLD else None


DECISIONS = {"rules": rules, "rules+semantic": rules_semantic}


@dataclass
class Tally:
    """Counts of one group of phrases: true and false positives, false negatives, and the phrases it got wrong."""

    count: int = 0
    true_positive: int = 0
    false_positive: int = 0
    false_negative: int = 0
    wrong: list = field(default_factory=list)

    def add(self, phrase: dict, got: str | None) -> None:
        self.count += 1
        handed_off = got is not None
        if handed_off and phrase["handoff"]:
            self.true_positive += 1
        elif handed_off:
            self.false_positive += 1
        elif phrase["handoff"]:
            self.false_negative += 1
        if handed_off != phrase["handoff"]:
            self.wrong.append({**phrase, "got": got})

    @property
    def precision(self) -> float:
        handed_off = self.true_positive + self.false_positive
        return self.true_positive / handed_off if handed_off else 1.0

    @property
    def recall(self) -> float:
        asked = self.true_positive + self.false_negative
        return self.true_positive / asked if asked else 1.0

    def figures(self) -> dict:
        return {
            "count": self.count,
            "handoff": self.true_positive + self.false_negative,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
        }


def evaluate(phrases: list[dict], decide=rules) -> dict[str, Tally]:
    """A tally per language ("en"), per split ("held_out"), per split and language ("held_out/en"), and one over all
    phrases ("all"), of `decide` (the intent, or None)."""
    tallies: dict[str, Tally] = {}
    for phrase in phrases:
        got = decide(phrase["text"])
        split = phrase.get("split", "development")
        for group in (phrase["lang"], split, f"{split}/{phrase['lang']}", "all"):
            tallies.setdefault(group, Tally()).add(phrase, got)
    return tallies


def ordered(groups) -> list[str]:
    """The languages, then each split followed by its languages, then "all"."""
    languages = sorted(g for g in groups if "/" not in g and g != "all" and any(f"/{g}" in h for h in groups))
    splits = sorted(set(groups) - set(languages) - {"all"} - {g for g in groups if "/" in g})
    by_split = [name for split in splits for name in (split, *sorted(g for g in groups if g.startswith(f"{split}/")))]
    return [*languages, *by_split, "all"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phrases", type=Path, default=PHRASES, help="the labelled set (JSON)")
    parser.add_argument("--min-precision", type=float, default=0.0, help="exit 1 when --bar's precision is lower")
    parser.add_argument("--min-recall", type=float, default=0.0, help="exit 1 when --bar's recall is lower")
    parser.add_argument("--bar", default="all", help="the group the minimums apply to: all, a split, a language")
    parser.add_argument(
        "--decision", choices=[*DECISIONS, "both"], default="both", help="what to measure; the bar reads the last"
    )
    parser.add_argument("--json", type=Path, help="also write the figures and the misclassified phrases here")
    args = parser.parse_args()

    print(f"$ {command_line()}")
    phrases = json.loads(args.phrases.read_text())["phrases"]
    names = list(DECISIONS) if args.decision == "both" else [args.decision]
    report = {}
    print(f"\n{'decision':<16}{'group':<16}{'phrases':>8}{'handoff':>9}{'precision':>11}{'recall':>8}")
    for name in names:
        tallies = evaluate(phrases, DECISIONS[name])
        for group in ordered(tallies):
            f = tallies[group].figures()
            print(f"{name:<16}{group:<16}{f['count']:>8}{f['handoff']:>9}{f['precision']:>11.3f}{f['recall']:>8.3f}")
        report[name] = {group: tallies[group].figures() for group in ordered(tallies)}
        report[name]["misclassified"] = tallies["all"].wrong
    questions = [turn for item in json.loads(HELP_CENTER_QUESTIONS.read_text()) for turn in item["turns"]]
    print(f"\nHelp-center questions ({HELP_CENTER_QUESTIONS.name}) handed off, each a false alarm:")
    for name in names:
        flagged = [q for q in questions if DECISIONS[name](q)]
        report[name]["help_center"] = {"questions": len(questions), "handed_off": flagged}
        print(f"  {name:<16}{len(flagged)}/{len(questions)}  {flagged}")
    for name in names:
        wrong = report[name]["misclassified"]
        print(f"\nMisclassified ({name}): {len(wrong)}")
        for item in wrong:
            expected = "should hand off" if item["handoff"] else f"should not hand off (got {item['got']})"
            print(f"  [{item.get('split', 'development')} {item['lang']}] {item['text']!r}: {expected}")
    if args.json:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2))
    bar = tallies[args.bar]
    if bar.precision < args.min_precision or bar.recall < args.min_recall:
        minimums = f"precision >= {args.min_precision}, recall >= {args.min_recall}"
        print(f"\nBelow the bar ({names[-1]}, {args.bar}): {minimums}")
        sys.exit(1)


if __name__ == "__main__":
    main()
