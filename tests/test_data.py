"""SciFact and STS-B load with the published counts, and every kind of damage is reported with its fix."""

from __future__ import annotations

import shutil

import pytest

from course_lib import data, fetch
from course_lib.data import DataChecksumError, DataMissingError, load_beir, load_sts

MIRROR = data.DATA_ROOT  # filled by `make data`


def test_scifact_counts_match_beir():
    test = load_beir("scifact", "test", small=False)
    train = load_beir("scifact", "train", small=False)
    assert len(test.corpus) == 5183
    assert (len(test.queries), sum(map(len, test.qrels.values()))) == (300, 339)
    assert (len(train.queries), sum(map(len, train.qrels.values()))) == (809, 919)
    assert not set(test.queries) & set(train.queries)
    assert all(set(doc) == {"title", "text"} and doc["text"] for doc in test.corpus.values())
    assert all(d in test.corpus for rels in test.qrels.values() for d in rels)


def test_small_mode_keeps_every_judged_doc_and_is_deterministic(monkeypatch):
    monkeypatch.setenv("COURSE_SMALL", "1")
    a = load_beir("scifact", "test")
    b = load_beir("scifact", "train", small=True)
    full = load_beir("scifact", "test", small=False)
    assert a.small and len(a.corpus) == 1500
    assert list(a.corpus) == list(b.corpus)  # same sub-corpus for both splits, file order kept
    judged = {d for ds in (a, b) for rels in ds.qrels.values() for d in rels}
    assert judged <= set(a.corpus)
    assert list(a.corpus) == [d for d in full.corpus if d in a.corpus]
    assert len(a.queries) == 300


def test_sts_counts_and_scores():
    sizes = {s: len(load_sts(s)) for s in ("train", "dev", "test")}
    assert sizes == {"train": 5749, "dev": 1500, "test": 1379}
    sts = load_sts("test")
    assert min(sts.score) >= 0.0 and max(sts.score) <= 5.0
    assert all(sts.sentence1) and all(sts.sentence2)


def test_bad_split_names_are_rejected():
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'dev'"):
        load_beir("scifact", "dev")
    with pytest.raises(ValueError, match="name must be one of"):
        load_beir("msmarco", "test")
    with pytest.raises(ValueError, match="split must be"):
        load_sts("validation")


@pytest.fixture
def scifact_copy(tmp_path, monkeypatch):
    """A private copy of SciFact found through COURSE_DATA_DIR, free to damage."""
    dest = tmp_path / "scifact"
    shutil.copytree(data.locate("scifact"), dest)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    return dest


def test_course_data_dir_is_looked_up_first(scifact_copy):
    assert data.locate("scifact") == scifact_copy
    assert load_beir("scifact", "test").root == scifact_copy


def test_altered_file_names_file_hashes_and_fix(scifact_copy):
    path = scifact_copy / "qrels" / "test.tsv"
    text = path.read_text()
    path.write_text(text.replace("\t1\n", "\t2\n", 1))
    want = data.load_manifest()["scifact"]["files"]["qrels/test.tsv"]["sha256"]
    with pytest.raises(DataChecksumError) as err:
        load_beir("scifact", "test")
    msg = str(err.value)
    assert str(path) in msg and want in msg and data.sha256_file(path) in msg
    assert "altered" in msg and "make data" in msg


def test_truncated_file_is_reported(scifact_copy):
    path = scifact_copy / "corpus.jsonl"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataChecksumError, match=r"corpus\.jsonl is truncated.*make data"):
        load_beir("scifact", "test")


def test_missing_file_is_reported_with_the_fix(scifact_copy):
    (scifact_copy / "queries.jsonl").unlink()
    with pytest.raises(DataMissingError, match=r"queries\.jsonl is missing\. Fix: run `make data`"):
        load_beir("scifact", "test")


def test_missing_folder_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DATA_ROOT", tmp_path / "nothing")
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    with pytest.raises(DataMissingError, match="no data folder found.*make data"):
        load_sts("test")


def test_fetch_from_mirror_and_repair(tmp_path):
    mirror = data.DATA_ROOT  # a verified copy stands in for ../shared/data
    dest = fetch.fetch("scifact", mirror=mirror, dest_root=tmp_path)
    data.verify("scifact", dest)
    (dest / "corpus.jsonl").write_bytes(b"{}\n")  # damage it: the next fetch replaces it
    fetch.fetch("scifact", mirror=mirror, dest_root=tmp_path)
    data.verify("scifact", dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scifact"]  # no temporary folders left


def test_fetch_rejects_a_bad_mirror_and_keeps_nothing(tmp_path):
    mirror = tmp_path / "mirror"
    shutil.copytree(data.DATA_ROOT / "stsbenchmark", mirror / "stsbenchmark")
    with open(mirror / "stsbenchmark" / "sts-dev.csv", "ab") as fh:
        fh.write(b"extra\tline\n")
    with pytest.raises(DataChecksumError, match=r"mirror .* bad copy.*sts-dev\.csv"):
        fetch.fetch("stsbenchmark", mirror=mirror, dest_root=tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_cli_verify_and_fetch(capsys, tmp_path):
    assert fetch.main(["--verify"]) == 0
    assert "scifact: ok" in capsys.readouterr().out
    bad = tmp_path / "empty"
    bad.mkdir()
    # no mirror folder for the name and an unreachable URL: a clear error, exit 1
    code = fetch.main(["stsbenchmark", "--mirror", str(bad), "--url", "ftp://x", "--dest", str(bad)])
    assert code == 1 and "url must be http(s)" in capsys.readouterr().err
    assert list(bad.iterdir()) == []
    assert fetch.main(["stsbenchmark", "--mirror", str(data.DATA_ROOT), "--dest", str(tmp_path / "d")]) == 0
    data.verify("stsbenchmark", tmp_path / "d" / "stsbenchmark")
