"""The baseline on the full SciFact test split agrees with sentence-transformers' own evaluator.

The full-corpus tests are marked slow: on a cold cache they encode the 5,183 SciFact abstracts once (about 3-4
minutes on two CPU cores); `make test` runs them, and every later run reads the cached embeddings.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
from sentence_transformers.util import cos_sim

from course_lib import eval as course_eval
from course_lib.data import document_text, load_beir
from course_lib.embed import encode_corpus

@pytest.fixture(scope="module")
def scifact_test():
    return load_beir("scifact", "test", small=False)


@pytest.mark.slow
def test_cli_prints_the_baseline(capsys):
    assert course_eval.main(["--model", "base", "--dataset", "scifact", "--split", "test", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (figures["docs"], figures["queries"], figures["small"]) == (5183, 300, False)
    assert figures["index_bytes"] == 5183 * 384 * 4
    # all-MiniLM-L6-v2 on SciFact: MTEB reports nDCG@10 = 0.645; anything far off means a broken pipeline
    assert 0.60 < figures["ndcg@10"] < 0.70
    assert figures["recall@100"] > figures["ndcg@10"] and 0 < figures["mrr@10"] <= 1
    assert figures["encode_seconds"] > 0


@pytest.mark.slow
def test_cached_embeddings_equal_a_plain_sentence_transformers_encode(model, scifact_test):
    emb = encode_corpus(model, scifact_test.corpus, show_progress=False)
    ids = list(scifact_test.corpus)
    sample = random.Random(0).sample(range(len(ids)), 48)
    texts = [scifact_test.corpus[ids[i]]["title"] + " " + scifact_test.corpus[ids[i]]["text"] for i in sample]
    np.testing.assert_allclose(emb[sample], model.encode(texts, convert_to_numpy=True), atol=2e-5)


@pytest.mark.slow
def test_ndcg_matches_information_retrieval_evaluator(model, scifact_test):
    ds = scifact_test
    res = course_eval.evaluate_dense(model, ds, show_progress=False)
    evaluator = InformationRetrievalEvaluator(
        queries=ds.queries,
        corpus={d: document_text(doc) for d, doc in ds.corpus.items()},
        relevant_docs={q: {d for d, r in rels.items() if r > 0} for q, rels in ds.qrels.items()},
        ndcg_at_k=[10], mrr_at_k=[10], accuracy_at_k=[1], precision_recall_at_k=[100], map_at_k=[100],
        write_csv=False, batch_size=64, score_functions={"cosine": cos_sim},
    )
    # sentence-transformers encodes the queries itself; the corpus embeddings are the cached ones, whose
    # equality with a plain `model.encode` is checked above (this saves a second 4-minute encoding)
    corpus_emb = torch.from_numpy(encode_corpus(model, ds.corpus, show_progress=False))
    st_scores = next(iter(evaluator.compute_all_metrics(model, corpus_embeddings=corpus_emb).values()))
    assert res["metrics"]["ndcg@10"] == pytest.approx(st_scores["ndcg@k"][10], abs=0.002)
    assert res["metrics"]["mrr@10"] == pytest.approx(st_scores["mrr@k"][10], abs=0.002)
    assert res["metrics"]["recall@100"] == pytest.approx(st_scores["recall@k"][100], abs=0.002)


def test_evaluate_dense_leaves_the_batch_size_to_the_device(model, monkeypatch):
    """``evaluate_dense`` used to pass 64 whatever the device; the encoder now picks (256 on a GPU)."""
    seen = {}

    def spy(name, real):
        def wrapped(m, texts, **kw):
            seen[name] = kw.get("batch_size")
            return real(m, texts, **kw)
        return wrapped

    monkeypatch.setattr(course_eval, "encode_corpus", spy("corpus", course_eval.encode_corpus))
    monkeypatch.setattr(course_eval, "encode_queries", spy("queries", course_eval.encode_queries))
    ds = load_beir("scifact", "test", small=True)
    ds.corpus = dict(list(ds.corpus.items())[:20])
    ds.queries = dict(list(ds.queries.items())[:3])
    course_eval.evaluate_dense(model, ds, k=5, show_progress=False)
    assert seen == {"corpus": None, "queries": None}
    course_eval.evaluate_dense(model, ds, k=5, batch_size=8, show_progress=False)
    assert seen == {"corpus": 8, "queries": 8}
