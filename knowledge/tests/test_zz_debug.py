from pathlib import Path
import pytest
from knowledge.importer import knowledge_import
from knowledge.models import Passage
from knowledge.retrieval import retrieve
from knowledge.text import terms

pytestmark = pytest.mark.django_db

def test_debug(settings):
    settings.KNOWLEDGE_SEMANTIC = False
    knowledge_import(Path("knowledge/demo"))
    print(terms("运费谁出？"), terms("我想退货"))
    for p in Passage.objects.filter(heading="退货运费"):
        print(p.article.slug, p.heading, p.text, "\n   ", p.tokens)
    for q, ctx in [("运费谁出？", ["我想退货"]), ("运费谁出？", [])]:
        r = retrieve(q, language="zh", context=ctx)
        print(q, ctx, r.query_terms, [(h.slug, h.heading, h.score) for h in r.hits[:4]])
