"""course_lib: the tested reference library behind the workbook *Embedding models and Matryoshka tuning*.

Each module teaches one concept and is imported explicitly::

    import course_lib
    from course_lib import data, embed, metrics, search

    cfg = course_lib.setup(seed=0)

Heavy dependencies (torch, sentence-transformers, faiss) are imported lazily inside the functions
that need them, so ``import course_lib`` stays fast.
"""

from course_lib.config import Config, setup

__all__ = ["Config", "setup"]
__version__ = "0.1.0"
