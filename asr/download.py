"""Downloads with checksum verification, resumption and atomic completion; archive extraction.

``download(url, dest, sha256=...)`` writes ``dest.part`` and resumes it with an HTTP
``Range`` request when the server allows; only a file whose checksum matches is renamed
to ``dest``. A finished ``dest`` that already matches is not fetched again.
``extract(archive, out_dir)`` unpacks tar or zip archives, refusing members that would
land outside ``out_dir``, and marks completion so a re-run skips it.

    python -m asr.download URL DEST --sha256 HEX [--extract-to DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from asr.utils import HelpFormatter, UserError, atomic_open, run_cli

CHUNK = 1 << 20


class DownloadError(UserError):
    """A download or archive that failed; the message names the URL or file and the fix."""


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks."""
    return file_digests(path, [algorithm])[algorithm]


def file_digests(path: str | os.PathLike, algorithms) -> dict[str, str]:
    """Hex digests of a file under each of ``algorithms``, in one pass over it (archives of
    tens of GB are read once however many checksums they are checked against)."""
    hashes = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            for h in hashes.values():
                h.update(block)
    return {name: h.hexdigest() for name, h in hashes.items()}


def _expected(sha256: str | None, md5: str | None) -> dict[str, str]:
    """The checksums to check, by algorithm (both when both are given: a cross-check of the
    pinned sha256 against the MD5 the corpus publishes)."""
    return {name: value.lower() for name, value in (("sha256", sha256), ("md5", md5)) if value}


def _mismatches(path: str | os.PathLike, want: dict[str, str]) -> list[str]:
    got = file_digests(path, want) if want else {}
    return [f"its {name} is {got[name]}, expected {want[name]}" for name in want if got[name] != want[name]]


def verify(path: str | os.PathLike, sha256: str | None = None, md5: str | None = None) -> bool:
    """True when ``path`` matches every checksum given (True if none is given)."""
    return not _mismatches(path, _expected(sha256, md5))


def _open_url(url: str, start: int, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": "asr-download/1"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(request, timeout=timeout)


def fetch(url: str, part: Path, timeout: float = 60.0, progress: bool = True) -> None:
    """Append the rest of ``url`` to ``part`` (resuming from its size when the server
    answers a Range request with 206; starting over otherwise)."""
    start = part.stat().st_size if part.exists() else 0
    try:
        response = _open_url(url, start, timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:  # range past the end: the part file is complete (or wrong)
            return
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}; check the URL or try again later") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"{url}: cannot connect ({reason}); check the network, or download the file "
                            f"yourself and place it at {part.with_suffix('')}") from None
    with response:
        resumed = start and getattr(response, "status", 200) == 206
        total = response.headers.get("Content-Length")
        total = int(total) + (start if resumed else 0) if total else None
        done = start if resumed else 0
        with open(part, "ab" if resumed else "wb") as f:
            while True:
                try:
                    block = response.read(CHUNK)
                except OSError as e:
                    raise DownloadError(f"{url}: connection lost after {done} bytes ({e}); "
                                        "run again to resume") from None
                if not block:
                    break
                f.write(block)
                done += len(block)
                if progress and sys.stderr.isatty():
                    share = f" {100 * done / total:5.1f}%" if total else ""
                    print(f"\r{part.name}: {done / 1e6:.1f} MB{share}", end="", file=sys.stderr)
        if progress and sys.stderr.isatty():
            print(file=sys.stderr)
        if total is not None and done < total:
            raise DownloadError(f"{url}: got {done} of {total} bytes; run again to resume")


def download(url: str, dest: str | os.PathLike, sha256: str | None = None, md5: str | None = None,
             timeout: float = 60.0, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` and verify it; return ``dest``.

    An existing ``dest`` that matches the checksum is kept as is. The data goes to
    ``dest.part`` (resumed on a re-run) and is renamed to ``dest`` only after the
    checksum matches. With no checksum given the file is accepted as downloaded.

    Raises
    ------
    DownloadError
        Network or HTTP failure, or a checksum mismatch (the partial file is then
        deleted so the next run starts afresh).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    want = _expected(sha256, md5)
    if dest.is_file():
        wrong = _mismatches(dest, want)
        if not wrong:
            return dest
        raise DownloadError(f"{dest}: exists but {'; '.join(wrong)}; delete it to download again")
    part = dest.with_name(dest.name + ".part")
    fetch(url, part, timeout, progress)
    wrong = _mismatches(part, want)
    if wrong:
        part.unlink()
        raise DownloadError(f"{url}: the download is wrong: {'; '.join(wrong)}; "
                            "the file was deleted, run again (or check the mirror)")
    os.replace(part, dest)
    return dest


def _inside(root: Path, name: str) -> bool:
    target = (root / name).resolve()
    return target == root or root in target.parents


def extract(archive: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Unpack a ``.tar``, ``.tar.gz``/``.tgz`` or ``.zip`` archive into ``out_dir``.

    Members with absolute paths, ``..`` or links leading outside ``out_dir`` are refused.
    A marker ``.<archive name>.extracted`` in ``out_dir`` makes a re-run skip the work.
    """
    archive, out_dir = Path(archive), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    root = out_dir.resolve()
    marker = out_dir / f".{archive.name}.extracted"
    if marker.exists():
        return out_dir
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            bad = [n for n in z.namelist() if not _inside(root, n)]
            if bad:
                raise DownloadError(f"{archive}: member {bad[0]!r} would be written outside {out_dir}; refused")
            z.extractall(out_dir)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            members = t.getmembers()
            # A symbolic link's target is relative to the link's folder, a hard link's to the
            # archive root (tar semantics).
            bad = [m.name for m in members if not _inside(root, m.name)
                   or (m.issym() and not _inside(root, os.path.join(os.path.dirname(m.name), m.linkname)))
                   or (m.islnk() and not _inside(root, m.linkname))]
            if bad:
                raise DownloadError(f"{archive}: member {bad[0]!r} would be written outside {out_dir}; refused")
            special = [m.name for m in members if m.isdev() or m.isfifo()]
            if special:
                raise DownloadError(f"{archive}: member {special[0]!r} is a device or pipe, not a file a corpus "
                                    "holds; refused (check where the archive came from)")
            t.extractall(out_dir, filter="data")
    else:
        raise DownloadError(f"{archive}: not a tar or zip archive; delete it and download again")
    with atomic_open(marker) as f:
        f.write(f"{archive.name}\n")
    return out_dir


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(formatter_class=HelpFormatter,
        prog="python -m asr.download", description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("dest", help="file to write")
    p.add_argument("--sha256")
    p.add_argument("--md5")
    p.add_argument("--extract-to", help="also unpack the archive into this folder")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    path = download(a.url, a.dest, sha256=a.sha256, md5=a.md5)
    if not (a.sha256 or a.md5):
        print(f"{path}: sha256 {file_digest(path)} (not verified: no checksum given)", file=sys.stderr)
    if a.extract_to:
        extract(path, a.extract_to)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
