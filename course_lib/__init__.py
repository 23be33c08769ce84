"""course_lib: the tested reference library behind the workbook *Embedding models and Matryoshka tuning*.

Each module teaches one concept and is imported explicitly::

    import course_lib
    from course_lib import data, embed, metrics, search

    cfg = course_lib.setup(seed=0)

The layers, each importing only from the layers above it::

    data and models      paths, config, data (loading), fetch (downloading), models
           |
    encoding and cache   cache (the one on-disk cache), embed (dense vectors), colbert.token_embeddings
           |
    kernels              search (exact top-k), binary (Hamming, rescoring), quantization, maxsim, sparse (BM25),
           |             hybrid, metrics
           |
    studies, training    compression, matryoshka (notebook 05), adaptor and csr (07), finetune (06),
                         colbert (04), frontier and backends (08), eval, training (the one trainer call and leakage
                         guard they all use), train (command line)
    ---------------------------------------------------------------------------------------------------------------
    tools                course_lib.tools: notebook build, nbgrader grading, the workbook runner, the figure report.
                         It imports the teaching modules above; they never import it.

No teaching module imports a later notebook's module (``matryoshka`` and ``finetune`` share ``training``).
Heavy dependencies (torch, sentence-transformers, faiss) are imported lazily inside the functions that need
them, so ``import course_lib`` stays fast.
"""

from course_lib.config import Config, setup

__all__ = ["Config", "setup"]
__version__ = "0.1.0"
