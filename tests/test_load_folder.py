"""course_lib.data.load_folder and known_item_queries: a learner's own corpus, read or refused with a fix."""

from __future__ import annotations

import csv
import json

import pytest

from course_lib import data
from course_lib.data import BeirDataset, DataError, DataMissingError, known_item_queries, load_folder

DOCS = [{"_id": "d1", "title": "Aspirin", "text": "Aspirin reduces fever."},
        {"_id": "d2", "title": "", "text": "A note without a title."},
        {"_id": "d3", "title": "Vitamin D", "text": "Vitamin D and bone density."}]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path, rows, header=("id", "title", "text")):
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def beir_folder(root, qrels=True):
    write_jsonl(root / "corpus.jsonl", DOCS)
    write_jsonl(root / "queries.jsonl", [{"_id": "q1", "text": "does aspirin lower fever"},
                                         {"_id": "q2", "text": "bones"}, {"_id": "q3", "text": "unjudged"}])
    if qrels:
        (root / "qrels").mkdir()
        (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\n")
    return root


def test_jsonl_file_reads_ids_titles_and_texts(tmp_path):
    ds = load_folder(write_jsonl(tmp_path / "mine.jsonl", [{"id": 7, "text": "int id"}] + DOCS))
    assert isinstance(ds, BeirDataset) and ds.name == "mine"
    assert list(ds.corpus) == ["7", "d1", "d2", "d3"]  # a JSON integer id is read as its str, file order kept
    assert ds.corpus["7"] == {"title": "", "text": "int id"} and ds.corpus["d1"]["title"] == "Aspirin"
    assert ds.queries == {} and ds.qrels == {}


def test_csv_file_with_quotes_and_commas(tmp_path):
    path = write_csv(tmp_path / "mine.csv", [["a", "Title, with comma", 'Text with "quotes",\nand a newline'],
                                             ["b", "", "plain"]])
    ds = load_folder(path)
    assert ds.corpus == {"a": {"title": "Title, with comma", "text": 'Text with "quotes",\nand a newline'},
                         "b": {"title": "", "text": "plain"}}
    assert load_folder(write_csv(tmp_path / "notitle.csv", [["x", "t"]], header=("id", "text"))).corpus == \
        {"x": {"title": "", "text": "t"}}


def test_beir_folder_with_and_without_qrels(tmp_path):
    (tmp_path / "a").mkdir()
    ds = load_folder(beir_folder(tmp_path / "a"))
    assert ds.qrels == {"q1": {"d1": 1}, "q2": {"d3": 1}} and list(ds.queries) == ["q1", "q2"]  # judged queries
    (tmp_path / "b").mkdir()
    ds = load_folder(beir_folder(tmp_path / "b", qrels=False))
    assert ds.qrels == {} and len(ds.queries) == 3 and len(ds.corpus) == 3


@pytest.mark.parametrize("rows, words", [
    ([], ["empty"]),
    ([DOCS[0], DOCS[0]], ["duplicate", "'d1'", ":1"]),
    ([{"_id": "d1", "title": "t"}], ["no text", "'d1'", "Fix"]),
    ([{"_id": "d1", "text": "   "}], ["no text"]),
    ([{"title": "t", "text": "x"}], ["no document id", "Fix"]),
    ([{"_id": " d1", "text": "x"}], ["surrounding spaces"]),
])
def test_bad_jsonl_is_refused_with_the_problem_and_the_fix(tmp_path, rows, words):
    with pytest.raises(DataError) as info:
        load_folder(write_jsonl(tmp_path / "bad.jsonl", rows))
    assert all(w in str(info.value) for w in words), str(info.value)


def test_bad_files_and_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_folder(tmp_path / "nowhere.jsonl")
    with pytest.raises(DataMissingError, match="corpus.jsonl"):
        load_folder(tmp_path)
    (tmp_path / "docs.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"'\.txt'.*Fix"):
        load_folder(tmp_path / "docs.txt")
    with pytest.raises(DataError, match="line 2|:2"):
        (tmp_path / "broken.jsonl").write_text('{"_id": "a", "text": "x"}\n{not json}\n')
        load_folder(tmp_path / "broken.jsonl")
    with pytest.raises(DataError, match="header"):
        load_folder(write_csv(tmp_path / "nohead.csv", [["a", "b"]], header=("doc", "body")))
    with pytest.raises(DataError, match="duplicate"):
        load_folder(write_csv(tmp_path / "dup.csv", [["a", "", "x"], ["a", "", "y"]]))
    with pytest.raises(TypeError, match="path"):
        load_folder(3)
    with pytest.raises(ValueError, match="split"):
        load_folder(tmp_path, split="")
    (tmp_path / "f").mkdir()
    beir_folder(tmp_path / "f")
    (tmp_path / "f" / "queries.jsonl").unlink()
    with pytest.raises(DataMissingError, match="queries.jsonl"):
        load_folder(tmp_path / "f")


def test_known_item_queries_skip_untitled_documents(tmp_path, capsys):
    ds = load_folder(write_jsonl(tmp_path / "mine.jsonl", DOCS))
    ki = known_item_queries(ds)
    assert ki.queries == {"ki:d1": "Aspirin", "ki:d3": "Vitamin D"}
    assert ki.qrels == {"ki:d1": {"d1": 1}, "ki:d3": {"d3": 1}}
    assert ki.corpus == {d: {"title": "", "text": doc["text"]} for d, doc in ds.corpus.items()}  # title to abstract
    assert known_item_queries(ds, keep_titles=True, verbose=False).corpus is ds.corpus
    assert "1 of 3 documents skipped" in capsys.readouterr().out
    one = known_item_queries(ds, n=1, seed=0, verbose=False)
    assert len(one.queries) == 1 and one.queries == known_item_queries(ds, n=1, seed=0, verbose=False).queries
    with pytest.raises(ValueError, match="at most the 2"):
        known_item_queries(ds, n=3)
    with pytest.raises(ValueError, match="n must"):
        known_item_queries(ds, n=0)
    with pytest.raises(TypeError, match="BeirDataset"):
        known_item_queries(ds.corpus)
    with pytest.raises(TypeError, match="keep_titles"):
        known_item_queries(ds, keep_titles="no", verbose=False)
    with pytest.raises(DataError, match="title"):
        known_item_queries(load_folder(write_jsonl(tmp_path / "untitled.jsonl", [DOCS[1]])))


def test_the_scifact_folder_reads_as_load_beir_does():
    root = data.locate("scifact")
    mine, ref = load_folder(root, "test"), data.load_beir("scifact", "test", small=False)
    assert mine.corpus == ref.corpus and mine.queries == ref.queries and mine.qrels == ref.qrels
    ki = known_item_queries(mine, n=200, seed=0, verbose=False)
    assert len(ki.queries) == 200 and all(len(rel) == 1 for rel in ki.qrels.values())
