"""Sparse lexical embeddings: BM25 as a ``scipy.sparse`` document-term matrix.

A document becomes a vector over the vocabulary whose non-zero entries are BM25 term weights;
a query becomes a vector of term counts; the score is their sparse dot product:

    w(t, d) = idf(t) * tf(t, d) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))
    idf(t)  = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))
    score(q, d) = sum_t count(t, q) * w(t, d)

This is the "Lucene" BM25 variant, the default of the ``bm25s`` library; the classic
Robertson form multiplies ``w`` by ``(k1 + 1)``, a constant that changes no ranking. The course
uses ``k1 = 0.9, b = 0.4`` (Anserini's and BEIR's BM25 settings).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from course_lib import validation as V

TOKEN_RE = re.compile(r"[a-z0-9]+")
K1 = 0.9
B = 0.4


def tokenize(text: str) -> list[str]:
    """Lowercase alphanumeric tokens (no stemming, no stop words).

    >>> tokenize("IL-6 levels rose 2.5-fold in COVID-19 patients.")
    ['il', '6', 'levels', 'rose', '2', '5', 'fold', 'in', 'covid', '19', 'patients']
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return TOKEN_RE.findall(text.lower())


def bm25_term_weight(tf, df, doc_len, avg_doc_len, n_docs, k1: float = K1, b: float = B):
    """BM25 weight of a term in a document (Lucene variant); works elementwise on arrays.

    Parameters
    ----------
    tf : int or array
        Occurrences of the term in the document.
    df : int or array
        Number of documents that contain the term (1 <= df <= n_docs).
    doc_len, avg_doc_len : float or array
        Tokens in the document, and the corpus mean.
    n_docs : int
        Documents in the corpus.

    >>> round(bm25_term_weight(tf=2, df=10, doc_len=100, avg_doc_len=120, n_docs=1000), 4)
    3.2094
    """
    n_docs = V.check_int("n_docs", n_docs, low=1)
    V.check_number("k1", k1, low=0)
    V.check_number("b", b, low=0, high=1)
    arrays = {}
    for name, v in (("tf", tf), ("df", df), ("doc_len", doc_len), ("avg_doc_len", avg_doc_len)):
        if isinstance(v, np.ndarray):
            arrays[name] = V.check_array(name, v, kind="real", nonempty=False).astype(np.float64)
        else:
            arrays[name] = np.float64(V.check_number(name, v))
    tf, df, doc_len, avg_doc_len = arrays["tf"], arrays["df"], arrays["doc_len"], arrays["avg_doc_len"]
    if np.any(avg_doc_len <= 0) or np.any(doc_len < 0):
        raise ValueError("avg_doc_len must be > 0 and doc_len >= 0")
    if np.any(df < 1) or np.any(df > n_docs):
        raise ValueError(f"df must lie in [1, n_docs={n_docs}], got {df.min()}..{df.max()}")
    if np.any(tf < 0):
        raise ValueError("tf must be >= 0")
    idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
    norm = k1 * (1.0 - b + b * doc_len / avg_doc_len)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = idf * tf / (tf + norm)
    out = np.where(tf == 0, 0.0, out)  # k1 = 0 with tf = 0: no occurrence, no weight
    return float(out) if out.ndim == 0 else out


@dataclass
class BM25Index:
    """A BM25 document-term matrix and its vocabulary.

    Attributes
    ----------
    matrix : scipy.sparse.csr_matrix
        float32 (N, V): ``matrix[d, t] = w(t, d)``.
    vocab : dict[str, int]
        token -> column.
    """

    matrix: sp.csr_matrix
    vocab: dict[str, int]
    k1: float
    b: float

    @classmethod
    def build(cls, texts: list[str], k1: float = K1, b: float = B) -> "BM25Index":
        """Tokenize ``texts`` (a list or tuple of str, never a bare str) and build the weighted document-term matrix."""
        texts = V.check_texts("texts", texts)
        V.check_number("k1", k1, low=0)
        V.check_number("b", b, low=0, high=1)
        docs = [tokenize(t) for t in texts]
        vocab: dict[str, int] = {}
        rows, cols = [], []
        for i, toks in enumerate(docs):
            for tok in toks:
                cols.append(vocab.setdefault(tok, len(vocab)))
                rows.append(i)
        n, v = len(docs), len(vocab)
        tf = sp.csr_matrix((np.ones(len(rows), dtype=np.float64), (rows, cols)), shape=(n, v))
        tf.sum_duplicates()  # (N, V) raw term counts
        doc_len = np.array([len(t) for t in docs], dtype=np.float64)
        if doc_len.sum() == 0:
            raise ValueError("texts hold no tokens")
        df = np.bincount(tf.indices, minlength=v)
        row_of = np.repeat(np.arange(n), np.diff(tf.indptr))
        tf.data = bm25_term_weight(tf.data, df[tf.indices], doc_len[row_of], doc_len.mean(), n, k1, b)
        return cls(matrix=tf.astype(np.float32), vocab=vocab, k1=k1, b=b)

    def encode_queries(self, queries: list[str]) -> sp.csr_matrix:
        """Queries as sparse term-count vectors (Q, V); tokens outside the vocabulary are dropped."""
        queries = V.check_texts("queries", queries)
        rows, cols = [], []
        for i, q in enumerate(queries):
            for tok in tokenize(q):
                j = self.vocab.get(tok)
                if j is not None:
                    rows.append(i)
                    cols.append(j)
        m = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                          shape=(len(queries), len(self.vocab)))
        m.sum_duplicates()
        return m

    def score(self, queries: list[str]) -> np.ndarray:
        """Dense (Q, N) float32 scores: the sparse dot product of each query with every document."""
        return np.asarray((self.encode_queries(queries) @ self.matrix.T).todense(), dtype=np.float32)

    @property
    def idf(self) -> np.ndarray:
        """idf of every vocabulary term (V,), as in the weight formula."""
        n = self.matrix.shape[0]
        df = np.bincount(self.matrix.indices, minlength=len(self.vocab))
        return np.log1p((n - df + 0.5) / (df + 0.5))

    def nnz_per_doc(self) -> np.ndarray:
        """Non-zero entries (distinct terms) of each document vector."""
        return np.diff(self.matrix.indptr)
