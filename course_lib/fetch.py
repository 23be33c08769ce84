"""Fetch the course's data sets into ``DATA_ROOT/<name>``, verified against the manifest in the package.

    python -m course_lib.fetch [NAME ...] [--mirror ../shared/data] [--url URL] [--dest FOLDER]
    python -m course_lib.fetch --verify [NAME ...]     # check what the course would load

The files come from a mirror folder (``--mirror``: ``<mirror>/<name>/``; ``make data`` passes
``../shared/data``) or, where there is none, from the upstream archive named in the manifest (BEIR's
``scifact.zip``, the original STS-B tarball). Nothing is moved into place before every file has matched
its sha256, so a failed or interrupted fetch leaves no half-written data set. Loading is in
:mod:`course_lib.data`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from course_lib.data import (DATA_ROOT, DataChecksumError, DataError, DataMissingError, _spec, load_manifest, locate,
                             verify)




def _normalize_line_endings(root: Path, rels: list[str]) -> None:
    for rel in rels:
        path = root / rel
        if path.is_file():
            raw = path.read_bytes()
            if b"\r\n" in raw:
                path.write_bytes(raw.replace(b"\r\n", b"\n"))


def _install(name: str, staged: Path, dest: Path) -> None:
    """Verify ``staged`` and swap it in for ``dest`` (never leaves a half-written ``dest``)."""
    verify(name, staged)
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
    os.replace(staged, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _copy_from_mirror(name: str, mirror: Path, dest: Path) -> None:
    spec = _spec(name)
    src = mirror / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=dest.parent))
    try:
        for rel in spec["files"]:
            if not (src / rel).is_file():
                raise DataMissingError(f"{name}: the mirror {src} lacks {rel}; fix the mirror or fetch without it.")
            (staged / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, staged / rel)
        _normalize_line_endings(staged, spec.get("crlf_to_lf", []))
        try:
            _install(name, staged, dest)
        except DataChecksumError as err:
            raise DataChecksumError(f"the mirror {src} holds a bad copy. {err}") from None
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _download(url: str, target: Path, timeout: float = 60.0) -> None:
    """Download ``url`` to ``target`` with a progress bar; reject a short (interrupted) body."""
    from tqdm.auto import tqdm

    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (http(s) only, checked by caller)
        total = resp.headers.get("Content-Length")
        total = int(total) if total is not None else None
        received = 0
        with open(target, "wb") as out, tqdm(total=total, unit="B", unit_scale=True,
                                              desc=f"download {url.rsplit('/', 1)[-1]}") as bar:
            while True:
                try:
                    block = resp.read(1 << 16)
                except Exception as err:  # http.client.IncompleteRead and connection resets
                    raise DataError(f"download of {url} was interrupted after {received} bytes: {err}") from err
                if not block:
                    break
                out.write(block)
                received += len(block)
                bar.update(len(block))
    if total is not None and received != total:
        raise DataError(f"download of {url} was interrupted: got {received} of {total} bytes")


def _extract(archive: Path, into: Path) -> None:
    """Extract a .zip or .tar(.gz) archive, refusing members that would land outside ``into``."""
    into = into.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                if not (into / member).resolve().is_relative_to(into):
                    raise DataError(f"archive {archive.name} has an unsafe member path {member!r}")
            zf.extractall(into)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            tf.extractall(into, filter="data")
    else:
        raise DataError(f"downloaded file {archive.name} is neither a zip nor a tar archive (corrupt download?)")


def _fetch_from_url(name: str, url: str, dest: Path) -> None:
    spec = _spec(name)
    if not url.startswith(("http://", "https://", "file://")):
        raise ValueError(f"url must be http(s):// or file://, got {url!r}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}.download-", dir=dest.parent))
    try:
        archive = work / "archive"
        _download(url, archive)
        try:
            _extract(archive, work / "x")
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
            raise DataError(f"archive from {url} is corrupt: {err}") from err
        root = work / "x" / spec["archive_root"]
        if not root.is_dir():
            raise DataError(f"archive from {url} has no folder {spec['archive_root']!r}")
        staged = work / name
        staged.mkdir()
        for rel in spec["files"]:
            if (root / rel).is_file():
                (staged / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(root / rel, staged / rel)
        _normalize_line_endings(staged, spec.get("crlf_to_lf", []))
        try:
            _install(name, staged, dest)
        except DataError as err:
            raise type(err)(f"the archive from {url} did not verify. {err}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def fetch(name: str, mirror: str | Path | None = None, url: str | None = None,
          dest_root: Path | None = None) -> Path:
    """Make ``<dest_root>/<name>`` hold a verified copy of data set ``name`` and return its path.

    An existing copy that verifies is kept as it is. Otherwise the files come from ``mirror/<name>``
    if that folder exists, else from ``url`` (default: the upstream archive in the manifest).
    Nothing is moved into place before every file has matched its sha256; a failed or interrupted
    fetch leaves no half-written data set behind.
    """
    spec = _spec(name)
    for arg, value in (("mirror", mirror), ("dest_root", dest_root)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"{arg} must be a str or Path or None, got {type(value).__name__}")
    if url is not None and not isinstance(url, str):
        raise TypeError(f"url must be a str or None, got {type(url).__name__}")
    dest = Path(dest_root or DATA_ROOT) / name
    if dest.is_dir():
        try:
            verify(name, dest)
            return dest
        except DataError as err:
            print(f"{name}: existing copy does not verify, replacing it ({err})", file=sys.stderr)
    if mirror is not None and (Path(mirror) / name).is_dir():
        _copy_from_mirror(name, Path(mirror), dest)
        print(f"{name}: copied from mirror {Path(mirror) / name} and verified")
    else:
        _fetch_from_url(name, url or spec["url"], dest)
        print(f"{name}: downloaded from {url or spec['url']} and verified")
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.fetch", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="data sets (default: all in the manifest)")
    parser.add_argument("--mirror", default=None, help="folder holding <name>/ copies (e.g. ../shared/data)")
    parser.add_argument("--url", default=None, help="override the archive URL (one data set only)")
    parser.add_argument("--dest", default=None, type=Path, help="folder to fill (default: the course's data/ in a clone, see course_lib.paths)")
    parser.add_argument("--verify", action="store_true", help="only verify the data sets the course would load")
    if argv is not None and (isinstance(argv, str) or not all(isinstance(a, str) for a in argv)):
        raise TypeError(f"argv must be a list of str arguments or None, got {argv!r}")
    args = parser.parse_args(argv)
    names = args.names or list(load_manifest())
    if args.url and len(names) != 1:
        parser.error("--url needs exactly one data set name")
    try:
        for name in names:
            path = locate(name) if args.verify else fetch(name, mirror=args.mirror, url=args.url, dest_root=args.dest)
            print(f"{name}: ok ({path})")
    except (DataError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
