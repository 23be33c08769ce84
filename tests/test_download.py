"""The download path, for real: archives served over loopback HTTP, good, corrupt and cut short."""

from __future__ import annotations

import http.server
import io
import tarfile
import tempfile
import threading
import zipfile
from pathlib import Path

import pytest

from course_lib import data, fetch
from course_lib.data import DataChecksumError, DataError


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[bytes, int | None]] = {}

    def do_GET(self):  # noqa: N802 (http.server API)
        body, claimed = self.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(claimed if claimed is not None else len(body)))
        self.end_headers()
        self.wfile.write(body)  # when claimed > len(body) the connection closes early: an interrupted download

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield base, _Handler.routes
    httpd.shutdown()
    _Handler.routes.clear()


def scifact_zip(alter: bool = False) -> bytes:
    """BEIR's scifact.zip layout (scifact/...), qrels with CRLF line endings as upstream ships them."""
    src = data.locate("scifact")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in data.load_manifest()["scifact"]["files"]:
            raw = (src / rel).read_bytes()
            if rel.endswith(".tsv"):
                raw = raw.replace(b"\n", b"\r\n")
            if alter and rel == "corpus.jsonl":
                raw = raw.replace(b"cancer", b"cancers", 1)
            zf.writestr(f"scifact/{rel}", raw)
    return buf.getvalue()


def sts_tarball(alter: bool = False) -> bytes:
    src = data.locate("stsbenchmark")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for rel in data.load_manifest()["stsbenchmark"]["files"]:
            raw = (src / rel).read_bytes()
            if alter and rel == "sts-test.csv":
                raw = raw.replace(b"a", b"e", 1)
            info = tarfile.TarInfo(f"stsbenchmark/{rel}")
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_download_zip_verifies_and_normalizes_line_endings(server, tmp_path):
    base, routes = server
    routes["/scifact.zip"] = (scifact_zip(), None)
    dest = fetch.fetch("scifact", mirror=None, url=f"{base}/scifact.zip", dest_root=tmp_path)
    data.verify("scifact", dest)
    assert b"\r\n" not in (dest / "qrels" / "test.tsv").read_bytes()
    assert _leftovers(tmp_path) == ["scifact"]


@pytest.fixture
def temp_dir(tmp_path, monkeypatch):
    """The process's temporary folder, moved to an empty folder of this test's own so it can be listed."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


def _cut_inside_the_third_file(body: bytes, scratch: Path) -> bytes:
    """The tarball cut short inside sts-test.csv: extracting it writes sts-train.csv and sts-dev.csv, then fails."""
    cut = body[: len(body) * 9 // 10]
    with pytest.raises((EOFError, tarfile.TarError)), tarfile.open(fileobj=io.BytesIO(cut)) as tf:
        tf.extractall(scratch, filter="data")
    assert {"sts-train.csv", "sts-dev.csv"} <= {p.name for p in (scratch / "stsbenchmark").iterdir()}
    return cut


def test_download_tarball_leaves_no_partial_files(server, tmp_path, temp_dir):
    base, routes = server
    url = f"{base}/Stsbenchmark.tar.gz"
    dest_root = tmp_path / "data"
    good = sts_tarball()
    cut = _cut_inside_the_third_file(good, tmp_path / "scratch")
    failures = {
        "interrupted download": ((good[: len(good) // 2], len(good)), DataError, "interrupted"),
        "extraction cut short": ((cut, None), DataError, r"archive from .* is corrupt"),
        "content that does not verify": ((sts_tarball(alter=True), None), DataChecksumError, r"sts-test\.csv"),
    }
    for case, (route, error, match) in failures.items():
        routes["/Stsbenchmark.tar.gz"] = route
        with pytest.raises(error, match=match):
            fetch.fetch("stsbenchmark", url=url, dest_root=dest_root)
        # the data folder and the temporary folder as the failure left them: no archive, staging or half data set
        assert (_leftovers(dest_root), _leftovers(temp_dir)) == ([], []), case
    routes["/Stsbenchmark.tar.gz"] = (good, None)
    dest = fetch.fetch("stsbenchmark", url=url, dest_root=dest_root)
    data.verify("stsbenchmark", dest)
    assert (_leftovers(dest_root), _leftovers(temp_dir)) == (["stsbenchmark"], [])
    assert sorted(p.name for p in dest.iterdir()) == sorted(data.load_manifest()["stsbenchmark"]["files"])


def test_corrupt_archive_content_is_rejected_and_leaves_nothing(server, tmp_path):
    base, routes = server
    routes["/scifact.zip"] = (scifact_zip(alter=True), None)
    with pytest.raises(DataChecksumError, match=r"did not verify.*corpus\.jsonl"):
        fetch.fetch("scifact", url=f"{base}/scifact.zip", dest_root=tmp_path)
    assert _leftovers(tmp_path) == []


def test_interrupted_download_is_rejected_and_leaves_nothing(server, tmp_path):
    base, routes = server
    body = scifact_zip()
    routes["/scifact.zip"] = (body[: len(body) // 3], len(body))
    with pytest.raises(DataError, match="interrupted"):
        fetch.fetch("scifact", url=f"{base}/scifact.zip", dest_root=tmp_path)
    assert _leftovers(tmp_path) == []


def test_garbage_download_is_rejected(server, tmp_path):
    base, routes = server
    routes["/scifact.zip"] = (b"<html>not found</html>", None)
    with pytest.raises(DataError, match="neither a zip nor a tar"):
        fetch.fetch("scifact", url=f"{base}/scifact.zip", dest_root=tmp_path)
    assert _leftovers(tmp_path) == []


def test_failed_download_keeps_a_good_existing_copy_untouched(server, tmp_path):
    base, routes = server
    routes["/scifact.zip"] = (scifact_zip(), None)
    dest = fetch.fetch("scifact", url=f"{base}/scifact.zip", dest_root=tmp_path)
    before = data.sha256_file(dest / "corpus.jsonl")
    routes["/scifact.zip"] = (b"garbage", None)
    # an existing verified copy is kept: no download is even attempted
    assert fetch.fetch("scifact", url=f"{base}/scifact.zip", dest_root=tmp_path) == dest
    assert data.sha256_file(dest / "corpus.jsonl") == before
