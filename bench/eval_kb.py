"""Answer quality from the knowledge base: the evaluation set (bench/eval_kb_questions.json) through the whole pipeline.

Every item goes through `chat.generation.generate` (retrieval -> plan -> prompt -> engine -> handoff filter -> fact
guard) with the bundled model (or INFERENCE_MODEL), for each configuration: extractive or generative, the fact guard
on or off, semantic search on or off. Figures, per configuration:

- right: answerable items answered (outcome `answered`) citing the expected article, of the answerable items;
- handoff: items that need a person handed to one (outcome `no_knowledge` or `deferred`), of those items;
- overall: right or correctly handed off, of all items (target >= 90 % for extractive with the guard);
- unsupported: answers (every bot text but the no-knowledge message) stating a number, URL or email address found
  in no published article of any language (knowledge.grounding.facts_unsupported, list items' numbers aside, as
  the fact guard does; target 0);
- mean and p95 milliseconds of the evaluated (last) turn, model and caches warmed beforehand;
- per kind and per language, for the main configuration (extractive, guard, semantic on).

An item's earlier turns are run through `generate` too, with the same configuration, and the bot's text becomes the
assistant turn that follows each (as in a real conversation; only the last turn is scored and timed).

The bench makes its own database, dropped at the end: PostgreSQL `helpdesk_bench_eval_<pid>` on 127.0.0.1 (the
production retrieval path, with the full-text GIN index), or with --sqlite a SQLite file in a temporary folder. It
migrates it, imports knowledge/demo with semantic search on (embeddings are computed at index time only then) and
flips KNOWLEDGE_SEMANTIC per run. Needs no network, no Redis and no data present beforehand. Generative answers are
sampled (INFERENCE_TEMPERATURE), so their figures move a little between runs.

    .venv/bin/python bench/eval_kb.py                                  # everything, a few minutes
    .venv/bin/python bench/eval_kb.py --configs extractive-guard --semantic on --verbose
    .venv/bin/python bench/eval_kb.py --limit 1 --configs extractive-guard --json /tmp/eval.json   # smoke test
"""

import argparse
import contextlib
import json
import math
import os
import re
import shlex
import signal
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
QUESTIONS = ROOT / "bench" / "eval_kb_questions.json"
DEMO = ROOT / "knowledge" / "demo"
ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

CONFIGS = {  # name: (mode, fact_guard)
    "extractive-guard": ("extractive", True),
    "extractive-noguard": ("extractive", False),
    "generative-guard": ("generative", True),
    "generative-noguard": ("generative", False),
}
SEMANTIC = ("on", "off")
MAIN = ("extractive-guard", "on")
HANDOFF = "handoff"
HANDED_OFF = ("no_knowledge", "deferred")
ENGINE_FAILED = ("rules", "failed")  # the engine failed or missed a deadline (INFERENCE_GENERATION_TIMEOUT)
# A list item's number ("11. Log in") is not a fact: the fact guard does not take it for one either (chat.grounding).
LIST_MARKER = re.compile(r"^\s*\d{1,2}(?:[.)、]|\s*[.)])(?=\s|$)", re.MULTILINE)
WARM_UP = {"en": "How long does delivery take?", "zh": "退货要多久？"}


def command_line() -> str:
    """The command as typed from the project's folder."""
    python = sys.executable
    with contextlib.suppress(ValueError):
        relative = os.path.relpath(python, ROOT)
        python = python if relative.startswith("..") else relative
    script = os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)
    return shlex.join([python, script, *sys.argv[1:]])


@contextlib.contextmanager
def scratch_database(name: str, *, sqlite: bool = False):
    """A database of the bench's own, created empty, dropped (or deleted) at the end; yields its DATABASE_URL.

    On PostgreSQL it is `<name>_<pid>`, so two runs at once (a smoke test and a developer's) never share one; those
    of runs no longer alive (killed before they could drop theirs) are dropped first. SIGTERM drops it too.
    """
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if sqlite:
        with tempfile.TemporaryDirectory(prefix=f"{name}-") as folder:
            yield f"sqlite:///{folder}/db.sqlite3"
        return
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        for (stale,) in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{name}\\_%"]):
            pid = stale.removeprefix(f"{name}_")
            if pid.isdigit() and not _alive(int(pid)):
                conn.execute(f"DROP DATABASE IF EXISTS {stale} WITH (FORCE)")
        name = f"{name}_{os.getpid()}"
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    host = ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{host}/{name}".replace("postgresql://", "postgres://", 1)
    finally:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def django_setup(database_url: str) -> None:
    """Django on the project's settings and this bench's database; no Redis (local cache, in-process work)."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "helpdesk.settings"
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_URL"] = ""
    os.environ.setdefault("LOG_LEVEL", "ERROR")  # the pipeline logs each guard trip and handoff as a warning
    import django

    django.setup()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def items_load(limit: int | None) -> list[dict]:
    items = json.loads(QUESTIONS.read_text())
    if limit is None:
        return items
    taken: dict[str, int] = defaultdict(int)
    chosen = []
    for item in items:
        if taken[item["kind"]] < limit:
            taken[item["kind"]] += 1
            chosen.append(item)
    return chosen


def knowledge_corpus() -> list[str]:
    """Every published article's title and body, of every language: what a stated fact must be found in."""
    from knowledge.models import Article

    return [f"{title}\n{body}" for title, body in Article.objects.filter(published=True).values_list("title", "body")]


def run_item(item: dict, mode: str, guard: bool, corpus: list[str]) -> dict:
    from chat.generation import GenerationRequest, generate
    from inference.types import ChatTurn
    from knowledge.grounding import facts_unsupported

    def request(history: list) -> "GenerationRequest":
        return GenerationRequest(
            purpose="reply",
            history=list(history),
            language=item["language"],
            site="",
            mode=mode,
            fact_guard=guard,
            label=f"eval {item['id']}",
        )

    history = []
    for earlier in item["turns"][:-1]:
        history.append(ChatTurn("user", earlier))
        history.append(ChatTurn("assistant", generate(request(history)).text or "Let me check that for you."))
    history.append(ChatTurn("user", item["turns"][-1]))
    started = time.perf_counter()
    result = generate(request(history))
    ms = (time.perf_counter() - started) * 1000

    slugs = list(dict.fromkeys(source.slug for source in result.sources))
    answerable = item["expect"] != HANDOFF
    right = answerable and result.outcome == "answered" and item["expect"] in slugs
    handoff_ok = not answerable and result.outcome in HANDED_OFF
    is_answer = result.outcome != "no_knowledge" and bool(result.text.strip())
    return {
        "id": item["id"],
        "kind": item["kind"],
        "language": item["language"],
        "expect": item["expect"],
        "outcome": result.outcome,
        "grounding": result.grounding,
        "sources": slugs,
        "guard_tripped": result.guard_tripped,
        "ok": right or handoff_ok,
        "right": right,
        "handoff_ok": handoff_ok,
        "is_answer": is_answer,
        "unsupported": facts_unsupported(LIST_MARKER.sub("", result.text), corpus) if is_answer else [],
        "ms": round(ms, 1),
        "completion_tokens": result.stats.completion_tokens,
        "text": result.text,
    }


def figures(records: list[dict]) -> dict:
    answerable = [r for r in records if r["expect"] != HANDOFF]
    handoffs = [r for r in records if r["expect"] == HANDOFF]
    answers = [r for r in records if r["is_answer"]]
    times = [r["ms"] for r in records]
    return {
        "items": len(records),
        "right_pct": pct(sum(r["right"] for r in answerable), len(answerable)),
        "handoff_pct": pct(sum(r["handoff_ok"] for r in handoffs), len(handoffs)),
        "overall_pct": pct(sum(r["ok"] for r in records), len(records)),
        "unsupported_pct": pct(sum(bool(r["unsupported"]) for r in answers), len(answers)),
        "unsupported": sum(bool(r["unsupported"]) for r in answers),
        "answers": len(answers),
        "guard_tripped": sum(r["guard_tripped"] for r in records),
        "engine_failed": sum(r["outcome"] in ENGINE_FAILED for r in records),
        "mean_ms": round(sum(times) / len(times), 1) if times else 0.0,
        "p95_ms": round(percentile(times, 95), 1),
    }


def breakdown(records: list[dict], key: str) -> dict:
    groups: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        groups[record[key]].append(record)
    return {name: figures(group) for name, group in sorted(groups.items())}


def warm_up(mode: str) -> None:
    """The engine loaded, the retrieval cache of both languages built and the encoder loaded, before timing."""
    from chat.generation import GenerationRequest, generate
    from inference.types import ChatTurn

    for language, question in WARM_UP.items():
        generate(GenerationRequest(purpose="reply", history=[ChatTurn("user", question)], language=language, mode=mode))


def cell(value: float | None, width: int, suffix: str = "%") -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width - len(suffix)}.1f}{suffix}"


def table(runs: list[dict]) -> None:
    print(
        f"{'config':<20} {'semantic':<8} {'right':>7} {'handoff':>8} {'overall':>8} {'unsupported':>12} "
        f"{'guard':>6} {'failed':>6} {'mean ms':>8} {'p95 ms':>8}"
    )
    for run in runs:
        f = run["figures"]
        unsupported = f"{cell(f['unsupported_pct'], 6)} {f['unsupported']:>2}/{f['answers']:<2}"
        print(
            f"{run['config']:<20} {run['semantic']:<8} {cell(f['right_pct'], 7)} {cell(f['handoff_pct'], 8)} "
            f"{cell(f['overall_pct'], 8)} {unsupported:>12} {f['guard_tripped']:>6} {f['engine_failed']:>6} "
            f"{f['mean_ms']:>8.1f} {f['p95_ms']:>8.1f}"
        )


def breakdown_table(title: str, groups: dict) -> None:
    print(f"\n{title}")
    print(f"  {'':<14} {'items':>5} {'right':>7} {'handoff':>8} {'overall':>8} {'unsupported':>12}")
    for name, f in groups.items():
        unsupported = f"{cell(f['unsupported_pct'], 6)} {f['unsupported']:>2}/{f['answers']:<2}"
        print(
            f"  {name:<14} {f['items']:>5} {cell(f['right_pct'], 7)} {cell(f['handoff_pct'], 8)} "
            f"{cell(f['overall_pct'], 8)} {unsupported:>12}"
        )


def wrong_items(run: dict) -> None:
    wrong = [r for r in run["records"] if not r["ok"] or r["unsupported"]]
    print(f"\n{run['config']}, semantic {run['semantic']}: {len(wrong)} item(s) wrong or stating unsupported facts")
    for r in wrong:
        got = f"{r['outcome']}/{r['grounding'] or '-'} {','.join(r['sources']) or '(no source)'}"
        extra = f"  unsupported: {', '.join(r['unsupported'])}" if r["unsupported"] else ""
        extra += "  [guard tripped]" if r["guard_tripped"] else ""
        text = " ".join(r["text"].split())
        print(f"  {r['id']:<26} expected {r['expect']:<22} got {got}{extra}")
        print(f"  {'':<26} {text[:220]}{'…' if len(text) > 220 else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of: {', '.join(CONFIGS)}")
    parser.add_argument("--semantic", default="on,off", help="on, off or on,off (KNOWLEDGE_SEMANTIC per run)")
    parser.add_argument("--limit", type=int, help="only the first N items of each kind")
    parser.add_argument("--min-score", type=float, help="KNOWLEDGE_MIN_SCORE (default: the setting)")
    parser.add_argument("--json", type=Path, help="write the figures (and every item's result) to this file")
    parser.add_argument("--verbose", action="store_true", help="print each wrong item: id, expected, got, answer")
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file instead of a PostgreSQL database")
    args = parser.parse_args()
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    semantics = [s.strip() for s in args.semantic.split(",") if s.strip()]
    if unknown := [c for c in configs if c not in CONFIGS] + [s for s in semantics if s not in SEMANTIC]:
        parser.error(f"unknown configuration(s): {', '.join(unknown)}")

    print(f"$ {command_line()}", flush=True)
    started = time.perf_counter()
    with scratch_database("helpdesk_bench_eval", sqlite=args.sqlite) as url:
        django_setup(url)
        report = evaluate(args, configs, semantics)
    report["total_s"] = round(time.perf_counter() - started, 1)

    print()
    table(report["runs"])
    main_run = next((r for r in report["runs"] if (r["config"], r["semantic"]) == MAIN), report["runs"][0])
    name = f"{main_run['config']}, semantic {main_run['semantic']}"
    breakdown_table(f"By kind ({name}):", main_run["by_kind"])
    breakdown_table(f"By language ({name}):", main_run["by_language"])
    print(
        "\nright: answerable items answered citing the expected article; handoff: items needing a person handed to "
        "one; overall: either, of all items (target >= 90 % for extractive-guard); unsupported: answers stating a "
        "fact found in no article (target 0); guard: answers the fact guard replaced; failed: engine errors or "
        "timeouts (answered by the fallback, so not counted right); ms: the evaluated turn."
    )
    print(
        f"setup (database, migrate, import with embeddings): {report['setup_s']:.1f} s; "
        f"model and caches warmed in {report['warm_s']:.1f} s; total {report['total_s']:.1f} s"
    )
    if args.verbose:
        for run in report["runs"]:
            wrong_items(run)
    if args.json:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=1))
        print(f"figures written to {args.json}")


def evaluate(args, configs: list[str], semantics: list[str]) -> dict:
    from django.conf import settings
    from django.core.management import call_command
    from django.db import transaction
    from django.test import override_settings

    from inference.engines import engine_get, engine_reset
    from knowledge.importer import knowledge_import
    from knowledge.services import index_version_bump

    started = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    # Embeddings are computed at index time only when semantic search is on: index once with it on.
    with override_settings(KNOWLEDGE_SEMANTIC="on" in semantics):
        imported = knowledge_import(DEMO)
    if imported.refused:
        sys.exit(f"knowledge/demo: refused {imported.refused}")
    setup_s = time.perf_counter() - started
    corpus = knowledge_corpus()
    items = items_load(args.limit)
    min_score = settings.KNOWLEDGE_MIN_SCORE if args.min_score is None else args.min_score

    started = time.perf_counter()
    engine = engine_get()
    model = engine.model_name
    print(
        f"{len(imported.created)} articles imported from knowledge/demo; {len(items)} items; model {model}; "
        f"KNOWLEDGE_MIN_SCORE {min_score}; database {'SQLite' if args.sqlite else 'PostgreSQL'}",
        flush=True,
    )
    runs, warm_s = [], time.perf_counter() - started
    header = {
        "command": command_line(),
        "model": model,
        "database": "sqlite" if args.sqlite else "postgresql",
        "min_score": min_score,
        "semantic_weight": settings.KNOWLEDGE_SEMANTIC_WEIGHT,
        "items": len(items),
        "setup_s": round(setup_s, 1),
    }
    try:
        for semantic in semantics:
            with override_settings(KNOWLEDGE_SEMANTIC=semantic == "on", KNOWLEDGE_MIN_SCORE=min_score):
                with transaction.atomic():
                    index_version_bump()  # the per-process retrieval cache holds vectors or not: rebuild it
                for config in configs:
                    mode, guard = CONFIGS[config]
                    warm_started = time.perf_counter()
                    warm_up(mode)
                    warm_s += time.perf_counter() - warm_started
                    run_started = time.perf_counter()
                    records = [run_item(item, mode, guard, corpus) for item in items]
                    run = {
                        "config": config,
                        "mode": mode,
                        "fact_guard": guard,
                        "semantic": semantic,
                        "figures": figures(records),
                        "by_kind": breakdown(records, "kind"),
                        "by_language": breakdown(records, "language"),
                        "records": records,
                    }
                    runs.append(run)
                    if args.json:  # after each run, so a run killed half-way keeps what it measured
                        args.json.write_text(json.dumps({**header, "partial": True, "runs": runs}, ensure_ascii=False))
                    print(
                        f"  {config:<20} semantic {semantic:<3}  overall {cell(run['figures']['overall_pct'], 6)}  "
                        f"({time.perf_counter() - run_started:.0f} s)",
                        flush=True,
                    )
    finally:
        engine_reset()  # closes llama.cpp while the interpreter can (its __del__ at exit raises)
    return {**header, "warm_s": round(warm_s, 1), "runs": runs}


if __name__ == "__main__":
    main()
