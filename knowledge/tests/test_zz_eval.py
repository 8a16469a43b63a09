import json
from pathlib import Path

import pytest

from knowledge.grounding import customer_specific
from knowledge.importer import knowledge_import
from knowledge.retrieval import retrieve

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("sem", [False, True])
def test_eval(settings, sem):
    settings.KNOWLEDGE_SEMANTIC = sem
    knowledge_import(Path("knowledge/demo"))
    qs = json.load(open("bench/eval_kb_questions.json"))
    ok = 0
    for q in qs:
        *ctx, turn = q["turns"]
        r = retrieve(turn, language=q["language"], context=ctx)
        got = "handoff" if customer_specific(turn) or r.best is None else r.best.slug
        good = got == q["expect"]
        ok += good
        if not good:
            h = r.hits[0] if r.hits else None
            print(f"  MISS {q['id']}: expect {q['expect']} got {got} top={h and (h.slug, h.score, h.lexical, h.semantic)} terms={r.query_terms}")
    print(f"semantic={sem}: {ok}/{len(qs)}")
