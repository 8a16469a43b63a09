"""The benches still run: each at its smallest size, as a subprocess with the project's python, its printed
figures present and sane. They make and drop their own PostgreSQL databases (bench/eval_kb.py, bench/retrieval.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow  # each starts a process that migrates a database; eval_kb loads the model


def run_bench(script: str, *args: str, json_path: Path, timeout: float = 120) -> tuple[str, dict]:
    """Run bench/<script> with --json; its stdout and the figures it wrote."""
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL")}
    command = [sys.executable, f"bench/{script}", *args, "--json", str(json_path)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
    assert done.stdout.startswith("$ "), done.stdout[:200]  # the exact command, first
    return done.stdout, json.loads(json_path.read_text())


def _percentage(value) -> bool:
    return value is None or 0 <= value <= 100


def test_eval_kb_runs_on_the_smallest_set(tmp_path):
    stdout, report = run_bench(
        "eval_kb.py", "--limit", "1", "--configs", "extractive-guard", json_path=tmp_path / "eval.json"
    )
    assert "bench/eval_kb.py --limit 1 --configs extractive-guard" in stdout.splitlines()[0]
    assert "extractive-guard" in stdout and "By kind" in stdout and "By language" in stdout
    assert report["items"] == 5  # one of each kind
    assert [(run["config"], run["semantic"]) for run in report["runs"]] == [
        ("extractive-guard", "on"),
        ("extractive-guard", "off"),
    ]
    for run in report["runs"]:
        figures = run["figures"]
        assert figures["items"] == 5
        for name in ("right_pct", "handoff_pct", "overall_pct", "unsupported_pct"):
            assert _percentage(figures[name]), (name, figures)
        assert figures["overall_pct"] is not None
        assert 0 < figures["mean_ms"] and 0 < figures["p95_ms"] < 60_000
        assert set(run["by_kind"]) == {"direct", "paraphrase", "multi_turn", "unanswerable", "adversarial"}
        assert all(_percentage(group["overall_pct"]) for group in run["by_kind"].values())
        # Extractive answers are the articles' own sentences: they never state a fact found in no article.
        assert figures["unsupported"] == 0


def test_retrieval_runs_at_the_smallest_size(tmp_path):
    stdout, report = run_bench("retrieval.py", "--articles", "50", "--queries", "10", json_path=tmp_path / "r.json")
    assert "bench/retrieval.py --articles 50 --queries 10" in stdout.splitlines()[0]
    assert "p95" in stdout and "EXPLAIN ANALYZE" in stdout
    assert report["synthetic"] == 50 and report["articles"] == 68  # and the 18 demo articles
    assert report["passages_en"] > 0 and report["passages_zh"] > 0
    assert report["seed_s"] > 0
    [run] = report["runs"]
    assert run["name"] == "lexical" and run["queries"] == 10
    assert 0 < run["p50_ms"] <= run["p95_ms"] <= run["p99_ms"] <= run["max_ms"] < 10_000
    assert run["cold_ms"]["en"] > 0 and run["cold_ms"]["zh"] > 0
    assert run["with_relevant_hit"] > 0
    assert "tsquery" in report["explain"]  # the plan of the full-text candidate query (the index or a scan: small)


def test_reports_runs_at_the_smallest_size(tmp_path):
    stdout, report = run_bench(
        "reports.py", "--conversations", "200", "--rounds", "1", json_path=tmp_path / "reports.json"
    )
    assert "bench/reports.py --conversations 200 --rounds 1" in stdout.splitlines()[0]
    assert "Target: the page under 1000 ms" in stdout
    assert report["conversations"] == 200 and report["messages"] >= 400 and report["database"] == "postgresql"
    assert set(report["timings"]) == {
        "report_30_days",
        "report_90_days",
        "drill_down_handed_off",
        "export_csv_30_days",
    }
    for name, timing in report["timings"].items():
        assert 0 < timing["p50_ms"] <= timing["max_ms"] < 60_000, (name, timing)
        assert timing["bytes"] > 1000, (name, timing)  # a page with figures, a list, a CSV with rows
    assert isinstance(report["target_met"], bool)


def test_handoff_intent_meets_the_issues_bar(tmp_path):
    stdout, report = run_bench(
        "handoff_intent.py", "--min-precision", "0.95", "--min-recall", "0.9", json_path=tmp_path / "handoff.json"
    )
    assert "bench/handoff_intent.py --min-precision 0.95 --min-recall 0.9" in stdout.splitlines()[0]
    assert "Misclassified (rules):" in stdout and "Misclassified (rules+semantic):" in stdout
    printed = {
        tuple(line.split()[:2]): line.split()[2:]
        for line in stdout.splitlines()
        if line.startswith(("rules ", "rules+semantic "))
    }
    for decision in ("rules", "rules+semantic"):
        assert {group for name, group in printed if name == decision} >= {"en", "zh", "all", "held_out"}
        count, handoff, precision, recall = printed[decision, "all"]
        assert int(count) >= 80 and 0.4 <= int(handoff) / int(count) <= 0.6  # about half must hand off
        assert float(precision) >= 0.95 and float(recall) >= 0.9
        figures = report[decision]
        assert figures["all"]["precision"] >= 0.95 and figures["all"]["recall"] >= 0.9
        assert figures["en"]["count"] >= 30 and figures["zh"]["count"] >= 30
    # The held-out phrases were written after the matcher and are not the semantic check's examples: their figures
    # are printed, not barred, except that the semantic check must not cost precision there.
    held_out = report["rules+semantic"]["held_out"]
    assert held_out["count"] >= 40
    assert report["rules+semantic"]["development"]["count"] + held_out["count"] == report["rules"]["all"]["count"]
    assert held_out["precision"] >= report["rules"]["held_out"]["precision"]
    assert held_out["recall"] >= report["rules"]["held_out"]["recall"]
    # The rules (what the product uses) hand off at most one of the help center's own questions.
    assert report["rules"]["help_center"]["questions"] >= 80
    assert len(report["rules"]["help_center"]["handed_off"]) <= 1
    print(f"handoff intent, held out: {held_out}")
