"""The course's data sets, loaded and verified: BEIR SciFact and the STS Benchmark.

Every file is checked against the sha256 manifest that ships in the package (``course_lib/manifest.json``)
each time it is loaded, so a truncated or edited file is reported, never silently used.

Where the files are looked up, in order:

1. ``$COURSE_DATA_DIR/<name>``
2. ``DATA_ROOT/<name>`` (``<clone>/data/<name>`` in a clone; see :mod:`course_lib.paths`), filled by ``make data`` (``python -m course_lib.fetch``, see
   :mod:`course_lib.fetch`) from a mirror folder or the upstream archive.

Licenses: SciFact is CC BY-NC 2.0 (non-commercial use only); STS-B scores are CC BY-SA 4.0 and its
sentences keep their sources' licenses. See ``data/README.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from course_lib.paths import DATA_ROOT, MANIFEST_PATH, small_mode

SMALL_CORPUS_SIZE = 1500
SMALL_SEED = 0
FIX_COMMAND = "make data"

BeirSplit = Literal["train", "test"]
StsSplit = Literal["train", "dev", "test"]


class DataError(RuntimeError):
    """A data set is missing, incomplete or not the file the course was written for."""


class DataMissingError(DataError, FileNotFoundError):
    """A data file is not where the course looks for it."""


class DataChecksumError(DataError):
    """A data file exists but its size or sha256 differs from the manifest."""


def _check_path(name: str, path) -> None:
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(f"{name} must be a str or Path, got {type(path).__name__}")


def load_manifest() -> dict:
    """Return the parsed sha256 manifest of the data sets (``course_lib/manifest.json``)."""
    with open(MANIFEST_PATH, encoding="utf-8") as fh:
        manifest = json.load(fh)
    return {k: v for k, v in manifest.items() if not k.startswith("_")}


def _spec(name: str) -> dict:
    manifest = load_manifest()
    if not isinstance(name, str) or name not in manifest:
        raise ValueError(f"name must be one of {sorted(manifest)}, got {name!r}")
    return manifest[name]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    _check_path("path", path)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify(name: str, root: Path) -> None:
    """Check every manifest file of data set ``name`` under ``root``.

    Raises
    ------
    DataMissingError
        A file is absent; the message names it and the command that fixes it.
    DataChecksumError
        A file's size or sha256 differs; the message names the file, both hashes and the fix.
    """
    spec = _spec(name)
    _check_path("root", root)
    root = Path(root)
    for rel, want in spec["files"].items():
        path = root / rel
        if not path.is_file():
            raise DataMissingError(
                f"{name}: data file {path} is missing. Fix: run `{FIX_COMMAND}` "
                f"(or `python -m course_lib.fetch {name}`) from the course folder."
            )
        got = sha256_file(path)
        if got != want["sha256"]:
            size = path.stat().st_size
            kind = "truncated" if size < want["size"] else "altered"
            raise DataChecksumError(
                f"{name}: data file {path} is {kind} or corrupt: expected sha256 {want['sha256']} "
                f"({want['size']} bytes), got sha256 {got} ({size} bytes). Fix: run `{FIX_COMMAND}` "
                f"(or `python -m course_lib.fetch {name}`), which replaces it with a verified copy."
            )


def locate(name: str) -> Path:
    """Return the verified folder of data set ``name`` (``$COURSE_DATA_DIR/<name>``, then ``DATA_ROOT/<name>``)."""
    _spec(name)
    candidates = []
    env = os.environ.get("COURSE_DATA_DIR")
    if env:
        candidates.append(Path(env) / name)
    candidates.append(DATA_ROOT / name)
    for root in candidates:
        if root.is_dir():
            verify(name, root)
            return root
    raise DataMissingError(
        f"{name}: no data folder found (looked in {', '.join(str(c) for c in candidates)}). "
        f"Fix: run `{FIX_COMMAND}` (or `python -m course_lib.fetch {name}`) from the course folder."
    )


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


@dataclass
class BeirDataset:
    """A BEIR data set restricted to one split.

    Attributes
    ----------
    corpus : dict[str, dict]
        doc id -> ``{"title": str, "text": str}``, in file order.
    queries : dict[str, str]
        query id -> text, only the queries of this split (those in its qrels).
    qrels : dict[str, dict[str, int]]
        query id -> {doc id -> relevance}.
    """

    name: str
    split: str
    corpus: dict[str, dict]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    small: bool = False
    root: Path = field(default=Path("."), repr=False)

    def __repr__(self) -> str:
        return (f"BeirDataset(name={self.name!r}, split={self.split!r}, small={self.small}, "
                f"docs={len(self.corpus)}, queries={len(self.queries)}, "
                f"judgements={sum(len(v) for v in self.qrels.values())})")


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """Read a BEIR qrels TSV (``query-id<TAB>corpus-id<TAB>score``, header line)."""
    _check_path("path", path)
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        if header[:2] != ["query-id", "corpus-id"]:
            raise DataError(f"{path}: expected a header 'query-id<TAB>corpus-id<TAB>score', got {header}")
        for lineno, line in enumerate(fh, start=2):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                raise DataError(f"{path}:{lineno}: expected 3 tab-separated fields, got {len(parts)}")
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return qrels


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def small_doc_ids(all_ids: list[str], judged: set[str], size: int = SMALL_CORPUS_SIZE,
                  seed: int = SMALL_SEED) -> set[str]:
    """The small-mode sub-corpus: every judged document plus a seeded sample of the rest, ``size`` in all."""
    from course_lib import validation as V

    all_ids = V.check_ids("all_ids", all_ids)
    if isinstance(judged, (str, bytes)) or not isinstance(judged, (set, frozenset, list, tuple)):
        raise TypeError(f"judged must be a set of str doc ids, got {type(judged).__name__}")
    for d in judged:
        V.check_id("judged entry", d)
    V.check_int("size", size, low=1)
    V.check_int("seed", seed)
    judged = {d for d in judged if d in set(all_ids)}
    rest = sorted(d for d in all_ids if d not in judged)
    n_extra = max(0, min(size - len(judged), len(rest)))
    return judged | set(random.Random(seed).sample(rest, n_extra))


def load_beir(name: str = "scifact", split: BeirSplit = "test", small: bool | None = None) -> BeirDataset:
    """Load a verified BEIR data set and one split of its queries.

    Parameters
    ----------
    name : str
        Data set name in the manifest (``"scifact"``).
    split : {"train", "test"}
        Which qrels (and so which queries) to load.
    small : bool or None
        Small mode: keep 1,500 documents, every document judged in the train or test qrels plus a
        seeded sample of the rest. ``None`` reads ``COURSE_SMALL``.

    Examples
    --------
    >>> ds = load_beir("scifact", "test", small=True)
    >>> len(ds.corpus), len(ds.queries)
    (1500, 300)
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if small is not None and not isinstance(small, bool):
        raise TypeError(f"small must be a bool or None, got {type(small).__name__}")
    root = locate(name)
    if small is None:
        small = small_mode()
    docs = _read_jsonl(root / "corpus.jsonl")
    corpus = {d["_id"]: {"title": d.get("title", ""), "text": d.get("text", "")} for d in docs}
    qrels = read_qrels(root / "qrels" / f"{split}.tsv")
    all_queries = {q["_id"]: q["text"] for q in _read_jsonl(root / "queries.jsonl")}
    missing = [q for q in qrels if q not in all_queries]
    if missing:
        raise DataError(f"{name}/{split}: {len(missing)} query ids in the qrels are not in queries.jsonl")
    queries = {qid: all_queries[qid] for qid in qrels}
    if small:
        judged = set()
        for s in ("train", "test"):
            for rel in read_qrels(root / "qrels" / f"{s}.tsv").values():
                judged.update(rel)
        keep = small_doc_ids(list(corpus), judged)
        corpus = {d: v for d, v in corpus.items() if d in keep}
    return BeirDataset(name=name, split=split, corpus=corpus, queries=queries, qrels=qrels,
                       small=bool(small), root=root)


def document_text(doc: dict, fields: tuple[str, ...] = ("title", "text")) -> str:
    """The text a model reads for a document: the non-empty ``fields`` joined by one space.

    >>> document_text({"title": "Aspirin", "text": "reduces fever."})
    'Aspirin reduces fever.'
    """
    if not isinstance(doc, dict):
        raise TypeError(f"doc must be a dict of fields (e.g. {{'title': ..., 'text': ...}}), got {type(doc).__name__}")
    if isinstance(fields, str) or not isinstance(fields, (tuple, list)) or not all(isinstance(f, str) for f in fields):
        raise TypeError(f"fields must be a tuple of str field names, got {fields!r}")
    for f in fields:
        if not isinstance(doc.get(f, ""), str):
            raise TypeError(f"doc[{f!r}] must be a str, got {type(doc[f]).__name__}")
    return " ".join(doc[f].strip() for f in fields if doc.get(f, "").strip())


@dataclass
class StsData:
    """One STS-B split: sentence pairs and gold similarity scores in [0, 5]."""

    split: str
    sentence1: list[str]
    sentence2: list[str]
    score: list[float]

    def __len__(self) -> int:
        return len(self.score)


def load_sts(split: StsSplit = "test") -> StsData:
    """Load a verified STS Benchmark split from the original tab-separated files.

    Fields per line: genre, filename, year, id, score, sentence1, sentence2 (some lines carry two
    more source fields, which are ignored). There is no quoting: split on tabs only.

    >>> sts = load_sts("dev")
    >>> len(sts), 0.0 <= min(sts.score) <= max(sts.score) <= 5.0
    (1500, True)
    """
    if split not in ("train", "dev", "test"):
        raise ValueError(f"split must be 'train', 'dev' or 'test', got {split!r}")
    root = locate("stsbenchmark")
    s1, s2, scores = [], [], []
    path = root / f"sts-{split}.csv"
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 7:
                raise DataError(f"{path}:{lineno}: expected at least 7 tab-separated fields, got {len(parts)}")
            scores.append(float(parts[4]))
            s1.append(parts[5])
            s2.append(parts[6])
    return StsData(split=split, sentence1=s1, sentence2=s2, score=scores)


# --------------------------------------------------------------------------------------------
# Your own corpus
# --------------------------------------------------------------------------------------------

FOLDER_FORMATS = ("a BEIR folder (corpus.jsonl, optional queries.jsonl and qrels/<split>.tsv)",
                  "a .jsonl file of documents", "a .csv file of documents")


def _doc_id(value, where: str) -> str:
    """A document id from a file: a str (or a JSON integer, read as its decimal str), non-empty, unpadded."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or value != value.strip():
        raise DataError(f"{where}: the document id must be a non-empty str without surrounding spaces, got "
                        f"{value!r}. Fix: give every document a unique id in the '_id' (or 'id') field.")
    return value


def _add_doc(corpus: dict, first_seen: dict, raw: dict, where: str, id_keys: tuple[str, ...]) -> None:
    key = next((k for k in id_keys if k in raw), None)
    if key is None:
        raise DataError(f"{where}: no document id (expected a field {' or '.join(map(repr, id_keys))}). "
                        f"Fix: give every document a unique id.")
    doc_id = _doc_id(raw[key], where)
    if doc_id in corpus:
        raise DataError(f"{where}: duplicate document id {doc_id!r} (first seen at {first_seen[doc_id]}). "
                        f"Fix: make the ids unique; an id must name one document.")
    title, text = raw.get("title") or "", raw.get("text")
    if not isinstance(title, str) or not isinstance(text, (str, type(None))):
        raise DataError(f"{where}: 'title' and 'text' must be strings, got {type(title).__name__} and "
                        f"{type(text).__name__}")
    if not text or not text.strip():
        raise DataError(f"{where}: document {doc_id!r} has no text. Fix: fill its 'text' field, or drop the row.")
    corpus[doc_id] = {"title": title, "text": text}
    first_seen[doc_id] = where


def _read_corpus_jsonl(path: Path) -> dict[str, dict]:
    corpus, first_seen = {}, {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg}). Fix: one JSON object per line.") from None
            if not isinstance(raw, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object per line, got {type(raw).__name__}")
            _add_doc(corpus, first_seen, raw, f"{path}:{lineno}", ("_id", "id"))
    return corpus


def _read_corpus_csv(path: Path) -> dict[str, dict]:
    import csv

    corpus, first_seen = {}, {}
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        if "id" not in header or "text" not in header:
            raise DataError(f"{path}: expected a header with the columns 'id', 'text' (and optionally 'title'), got "
                            f"{header}. Fix: make the first line of the file `id,title,text`.")
        for row in reader:
            _add_doc(corpus, first_seen, row, f"{path}:{reader.line_num}", ("id",))
    return corpus


def load_folder(path, split: str = "test", name: str | None = None) -> BeirDataset:
    """Read your own corpus (and its queries and relevance judgements, if any) as a :class:`BeirDataset`.

    ``path`` is one of:

    - a **BEIR folder**: ``corpus.jsonl`` (one ``{"_id", "title", "text"}`` a line), optionally
      ``queries.jsonl`` (``{"_id", "text"}``) and ``qrels/<split>.tsv`` (``query-id<TAB>corpus-id<TAB>score``,
      header line). With qrels, the queries are those of the qrels, as in :func:`load_beir`; without them,
      every query of ``queries.jsonl`` and empty qrels;
    - a **.jsonl file** of documents: ``_id`` (or ``id``), optional ``title``, ``text``;
    - a **.csv file** of documents with a header line ``id,title,text`` (``title`` optional; quoted as
      Python's ``csv`` module writes it).

    Ids are str (a JSON integer id is read as its decimal string). No data set is verified against the
    course manifest: this is your data. Without queries, build known-item queries with
    :func:`known_item_queries`.

    Raises
    ------
    DataMissingError (a FileNotFoundError)
        ``path`` or ``corpus.jsonl`` does not exist, or qrels exist without ``queries.jsonl``.
    DataError
        An empty corpus, a duplicate id, a document without text, a bad line; the message names the file,
        the line and the fix.
    ValueError / TypeError
        An unknown file extension, a bad ``split`` or ``path``.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "docs.jsonl").write_text('{"id": "a", "title": "Aspirin", "text": "It reduces fever."}\\n'
    ...                                        '{"id": "b", "text": "Untitled note."}\\n')
    >>> ds = load_folder(folder / "docs.jsonl")
    >>> ds.corpus["a"], len(ds.queries), ds.qrels
    ({'title': 'Aspirin', 'text': 'It reduces fever.'}, 0, {})
    """
    _check_path("path", path)
    if not isinstance(split, str) or not split or "/" in split:
        raise ValueError(f"split must be the name of a qrels file (e.g. 'test' for qrels/test.tsv), got {split!r}")
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError(f"name must be a non-empty str or None, got {name!r}")
    path = Path(path)
    if not path.exists():
        raise DataMissingError(f"{path} does not exist. Fix: give the path of a BEIR folder (with corpus.jsonl), "
                               f"or of a .jsonl or .csv file of documents.")
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    if path.is_dir():
        corpus_path = path / "corpus.jsonl"
        if not corpus_path.is_file():
            raise DataMissingError(f"{path} is a folder without corpus.jsonl. Fix: put the documents in "
                                   f"{corpus_path} (one {{\"_id\", \"title\", \"text\"}} a line), or pass a .jsonl "
                                   f"or .csv file of documents instead.")
        corpus = _read_corpus_jsonl(corpus_path)
        query_path, qrels_path = path / "queries.jsonl", path / "qrels" / f"{split}.tsv"
        all_queries = {}
        if query_path.is_file():
            all_queries = {_doc_id(q.get("_id", q.get("id")), f"{query_path}"): q.get("text", "")
                           for q in _read_jsonl(query_path)}
        if qrels_path.is_file():
            if not query_path.is_file():
                raise DataMissingError(f"{qrels_path} exists but {query_path} does not. Fix: add the queries, "
                                       f"one {{\"_id\", \"text\"}} a line.")
            qrels = read_qrels(qrels_path)
            missing = [q for q in qrels if q not in all_queries]
            unknown = sorted({d for rel in qrels.values() for d in rel if d not in corpus})
            if missing:
                raise DataError(f"{qrels_path}: {len(missing)} query ids are not in {query_path}, e.g. "
                                f"{missing[0]!r}. Fix: add them, or remove their judgements.")
            if unknown:
                raise DataError(f"{qrels_path}: {len(unknown)} judged document ids are not in {corpus_path}, e.g. "
                                f"{unknown[0]!r}. Fix: add the documents, or remove their judgements.")
            queries = {qid: all_queries[qid] for qid in qrels}
        else:
            queries = all_queries
    elif path.suffix.lower() == ".jsonl":
        corpus = _read_corpus_jsonl(path)
    elif path.suffix.lower() == ".csv":
        corpus = _read_corpus_csv(path)
    else:
        raise ValueError(f"path must be {', '.join(FOLDER_FORMATS[:2])} or {FOLDER_FORMATS[2]}; got {path.name!r} "
                         f"with the extension {path.suffix!r}. Fix: convert it to JSONL or CSV.")
    if not corpus:
        raise DataError(f"{path}: the corpus is empty (no documents). Fix: add at least one document with a text.")
    return BeirDataset(name=name or path.stem, split=split if qrels else "none", corpus=corpus, queries=queries,
                       qrels=qrels, root=path if path.is_dir() else path.parent)


def known_item_queries(dataset: BeirDataset, n: int | None = None, seed: int = 0, keep_titles: bool = False,
                       verbose: bool = True) -> BeirDataset:
    """Known-item evaluation for a corpus without relevance judgements: each query is one document's title,
    and that document is its only relevant one (title to abstract).

    Documents without a title are skipped (``verbose`` prints how many). ``n`` picks a seeded sample of the
    titled documents (all of them when None), kept in corpus order; the query id is ``"ki:<doc id>"``. The
    returned corpus holds every document, with its title removed unless ``keep_titles``: a query that is a copy
    of its document's first words would be found by almost any method (nDCG@10 near 1). Known-item queries are
    still easier than real ones and have one relevant document each: compare configurations with them, not
    absolute scores.

    Examples
    --------
    >>> ds = BeirDataset("toy", "none", {"a": {"title": "Aspirin", "text": "Fever."},
    ...                                 "b": {"title": "", "text": "No title."}}, {}, {})
    >>> ki = known_item_queries(ds, verbose=False)
    >>> ki.queries, ki.qrels, ki.corpus["a"]
    ({'ki:a': 'Aspirin'}, {'ki:a': {'a': 1}}, {'title': '', 'text': 'Fever.'})
    """
    from course_lib import validation as V

    if not isinstance(dataset, BeirDataset):
        raise TypeError(f"dataset must be a BeirDataset (from load_folder or load_beir), got {type(dataset).__name__}")
    if not isinstance(keep_titles, bool):
        raise TypeError(f"keep_titles must be a bool, got {type(keep_titles).__name__}")
    titled = [d for d, doc in dataset.corpus.items() if (doc.get("title") or "").strip()]
    skipped = len(dataset.corpus) - len(titled)
    if not titled:
        raise DataError(f"{dataset.name}: none of the {len(dataset.corpus)} documents has a title, so there are no "
                        f"known-item queries. Fix: add titles, or write queries and qrels (a BEIR folder).")
    if n is not None:
        V.check_int("n", n, low=1)
        if n > len(titled):
            raise ValueError(f"n must be at most the {len(titled)} documents with a title, got {n}")
        keep = set(random.Random(V.check_int("seed", seed)).sample(titled, n))
        titled = [d for d in titled if d in keep]
    if verbose:
        print(f"{dataset.name}: {len(titled):,} known-item queries from document titles; {skipped:,} of "
              f"{len(dataset.corpus):,} documents skipped (no title)")
    queries = {f"ki:{d}": dataset.corpus[d]["title"].strip() for d in titled}
    qrels = {f"ki:{d}": {d: 1} for d in titled}
    corpus = dataset.corpus if keep_titles else {d: {"title": "", "text": doc["text"]}
                                                 for d, doc in dataset.corpus.items()}
    return BeirDataset(name=dataset.name, split="known-item", corpus=corpus, queries=queries, qrels=qrels,
                       small=dataset.small, root=dataset.root)
