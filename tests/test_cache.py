"""The one cache: load-or-compute, damaged entries, two processes filling one key, a read-only shared folder."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from course_lib import cache

DOCS = {"d1": "Aspirin lowers the risk of colorectal cancer.", "d2": "Vitamin D deficiency is common in winter."}


def _array_entry(folder: Path, calls: list):
    path = folder / "entry.npy"

    def compute():
        calls.append(1)
        return np.arange(6, dtype=np.float32).reshape(2, 3)

    def load():
        x = cache.load_array(path)
        if x.shape != (2, 3):
            raise cache.CacheEntryError(f"shape {x.shape}")
        return x

    return [path.with_suffix(".json"), path], dict(
        load=load, compute=compute,
        save=lambda v, staged: (cache.save_json(staged[0], {"n": 2}), cache.save_array(staged[1], v)))


def test_computes_once_then_loads(tmp_path):
    calls = []
    paths, fns = _array_entry(tmp_path, calls)
    first, cached1 = cache.load_or_compute(paths, **fns)
    second, cached2 = cache.load_or_compute(paths, **fns)
    assert (cached1, cached2) == (False, True) and len(calls) == 1
    np.testing.assert_array_equal(first, second)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry.json", "entry.npy"]  # nothing temporary left
    assert cache.load_or_compute(paths, **fns, enabled=False)[1] is False and len(calls) == 2
    assert cache.load_or_compute(paths, **fns, refresh=True)[1] is False and len(calls) == 3


@pytest.mark.parametrize("damage", [b"garbage", b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, "
                                                b"'shape': (5,), }" + b" " * 60 + b"\n"])
def test_a_damaged_entry_warns_once_and_is_recomputed(tmp_path, damage):
    calls = []
    paths, fns = _array_entry(tmp_path, calls)
    cache.load_or_compute(paths, **fns)
    paths[-1].write_bytes(damage)
    with pytest.warns(cache.CacheWarning, match="unreadable or damaged") as record:
        value, cached = cache.load_or_compute(paths, **fns)
    assert len(record) == 1 and not cached and len(calls) == 2
    assert cache.load_or_compute(paths, **fns)[1] is True  # repaired on disk
    np.testing.assert_array_equal(value, np.arange(6, dtype=np.float32).reshape(2, 3))


def test_a_write_that_fails_leaves_no_entry_and_no_temporary_file(tmp_path):
    paths, fns = _array_entry(tmp_path, [])

    def crash(value, staged):
        staged[0].write_text("{}")
        raise KeyboardInterrupt("killed mid-write")

    with pytest.raises(KeyboardInterrupt):
        cache.load_or_compute(paths, **{**fns, "save": crash})
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_folder_computes_warns_and_goes_on(tmp_path, monkeypatch):
    paths, fns = _array_entry(tmp_path, [])

    def refuse(paths, write):
        raise PermissionError(13, "Permission denied", str(tmp_path))

    monkeypatch.setattr(cache, "publish", refuse)
    with pytest.warns(cache.CacheWarning, match="not cached. Fix: make the folder writable"):
        value, cached = cache.load_or_compute(paths, **fns)
    assert not cached and value.shape == (2, 3) and list(tmp_path.iterdir()) == []


def test_read_only_by_intent_reads_entries_computes_the_rest_and_writes_nothing_silently(tmp_path, monkeypatch):
    import warnings

    calls = []
    paths, fns = _array_entry(tmp_path / "filled", calls)
    cache.load_or_compute(paths, **fns)  # one entry written before
    monkeypatch.setenv("COURSE_CACHE_READONLY", "1")
    assert cache.load_or_compute(paths, **fns)[1] is True and len(calls) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    other, fns2 = _array_entry(empty, calls)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no CacheWarning: nothing was meant to be written
        value, cached = cache.load_or_compute(other, **fns2)
    assert not cached and value.shape == (2, 3) and list(empty.iterdir()) == [] and len(calls) == 2
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "missing"))
    assert not cache.cache_dir().exists()  # not even the folder is made
    monkeypatch.setenv("COURSE_CACHE_READONLY", "maybe")
    with pytest.raises(ValueError, match="COURSE_CACHE_READONLY must be 1/0"):
        cache.load_or_compute(other, **fns2)


RACER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    from course_lib import cache

    folder, me, other, kind = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]

    def compute():
        (folder / f"{me}.computing").touch()
        deadline = time.time() + 60
        while not (folder / f"{other}.computing").exists():  # both are computing before either publishes
            assert time.time() < deadline, "the other process never started computing"
            time.sleep(0.01)
        return np.full(1000, 7.0)

    if kind == "files":
        path = folder / "entry.npy"
        paths = [path.with_suffix(".json"), path]
        save = lambda v, s: (cache.save_json(s[0], {"by": me}), cache.save_array(s[1], v))
        load = lambda: cache.load_array(path)
    else:
        path = folder / "model"
        paths = [path]
        def save(v, s):
            s[0].mkdir()
            cache.save_array(s[0] / "weights.npy", v)
            cache.save_json(s[0] / "info.json", {"by": me})
        load = lambda: cache.load_array(path / "weights.npy")
    value, cached = cache.load_or_compute(paths, load=load, compute=compute, save=save)
    assert value.sum() == 7000.0
    print("cached" if cached else "computed")
""")


@pytest.mark.parametrize("kind", ["files", "folder"])
def test_two_processes_filling_one_key_end_with_one_valid_entry(tmp_path, kind):
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    folder = tmp_path / "cache"
    folder.mkdir()
    procs = [subprocess.Popen([sys.executable, str(script), str(folder), me, other, kind], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for me, other in (("a", "b"), ("b", "a"))]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    assert [out.strip() for out, _ in outs] == ["computed", "computed"]
    entries = sorted(p.name for p in folder.iterdir() if not p.name.endswith(".computing"))
    assert entries == (["entry.json", "entry.npy"] if kind == "files" else ["model"])  # no temporary leftovers
    weights = folder / ("entry.npy" if kind == "files" else "model/weights.npy")
    np.testing.assert_array_equal(cache.load_array(weights), np.full(1000, 7.0))
    if kind == "folder":
        assert sorted(p.name for p in (folder / "model").iterdir()) == ["info.json", "weights.npy"]


def test_two_processes_encoding_the_same_texts_share_one_entry(tmp_path):
    """The real thing: two learners on one JupyterHub encode the same texts into one shared cache at once."""
    code = textwrap.dedent(f"""
        import numpy as np
        from course_lib.embed import encode_corpus
        from course_lib.models import load_model
        emb = encode_corpus(load_model(device="cpu"), {DOCS!r}, show_progress=False)
        print(float(emb.sum()))
    """)
    env = {**os.environ, "COURSE_CACHE_DIR": str(tmp_path / "shared")}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    assert outs[0][0] == outs[1][0]
    files = sorted(p.name for p in (tmp_path / "shared" / "embeddings").iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".npy")


# Any write below the cache folder stops the process: the hook sees every open for writing, rename, remove and
# mkdir that Python makes. The tree's hashes before and after catch writes made outside Python too.
READ_ONLY = textwrap.dedent("""
    import os, sys
    root = os.path.realpath(sys.argv[1])
    WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def under(p):
        try:
            return os.path.realpath(os.fsdecode(p)).startswith(root)
        except TypeError:
            return False

    def hook(event, args):
        if event == "open" and args and under(args[0]):
            mode, flags = args[1], args[2]
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & WRITE):
                raise PermissionError(f"write to the read-only cache: {args[0]}")
        elif event in ("os.rename", "os.remove", "os.rmdir", "os.mkdir", "shutil.rmtree", "os.chmod", "os.utime",
                       "os.truncate", "os.link", "os.symlink") and args and any(under(a) for a in args[:2]):
            raise PermissionError(f"{event} in the read-only cache: {args[:2]}")

    sys.addaudithook(hook)
    from course_lib import colbert, embed, models
    model = models.load_model(device="cpu")
    docs = {DOCS}
    embed.encode_corpus(model, docs, show_progress=False)
    colbert.token_embeddings(model, docs, is_query=False, show_progress=False)
    def fail():
        raise AssertionError("retrained instead of loading")
    m, info = models.cached_model("tiny", ["read-only test"], fail, device="cpu")
    assert info["cached"] and info["note"] == "saved once"
    print("read without writing")
""").replace("{DOCS}", repr(DOCS))


def _tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def test_a_read_only_cache_whose_entries_exist_is_used_without_any_write(tmp_path, monkeypatch, model):
    from course_lib import colbert, embed, models

    shared = tmp_path / "shared"
    monkeypatch.setenv("COURSE_CACHE_DIR", str(shared))
    embed.encode_corpus(model, DOCS, show_progress=False)
    colbert.token_embeddings(model, DOCS, is_query=False, show_progress=False)
    models.cached_model("tiny", ["read-only test"], lambda: (model, {"note": "saved once"}), device="cpu")
    before = _tree_digest(shared)
    for p in [shared, *shared.rglob("*")]:  # read-only for everyone (root ignores it: the hook above does not)
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        script = tmp_path / "read_only.py"
        script.write_text(READ_ONLY)
        res = subprocess.run([sys.executable, str(script), str(shared)], capture_output=True, text=True, timeout=300,
                             env={**os.environ, "COURSE_CACHE_DIR": str(shared)})
        assert res.returncode == 0, res.stderr[-3000:]
        assert "read without writing" in res.stdout
        assert _tree_digest(shared) == before
    finally:
        for p in [shared, *shared.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
