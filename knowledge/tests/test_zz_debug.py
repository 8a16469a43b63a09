from pathlib import Path
import pytest
from knowledge.importer import knowledge_import
from knowledge import retrieval
from knowledge.retrieval import retrieve

pytestmark = pytest.mark.django_db

def test_debug(settings):
    settings.KNOWLEDGE_SEMANTIC = False
    knowledge_import(Path("knowledge/demo"))
    r = retrieve("运费谁出？", language="zh")
    idx = retrieval._language_index("zh")
    h = r.hits[0]
    print(h)
    print(retrieval._lexical(idx, {"运费": 1.0, "谁": 1.0, "出": 1.0}, h.passage_id), sorted(idx.terms[h.passage_id]))
